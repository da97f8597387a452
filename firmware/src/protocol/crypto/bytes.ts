// Byte-array helpers the crypto and codec code needs: copying a range, joining parts, and comparing
// secrets (MAC tags) without leaking where they first differ. Device-safe (no spread, no Array.from) and
// shared with the host.

/**
 * A new Uint8Array holding bytes[start..end). Not bytes.slice(): on Espruino a typed array's slice
 * returns a plain Array (src/jswrap_arraybuffer.c), which then fails every `instanceof Uint8Array`.
 */
export function copyBytes(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(bytes.subarray(start, end));
}

/** The parts joined into one new array. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (let i = 0; i < parts.length; i++) size += parts[i].length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i], offset);
    offset += parts[i].length;
  }
  return out;
}

/**
 * True when a and b hold the same bytes. Every byte is looked at whatever the first difference, so the
 * time taken does not tell an attacker how much of a forged tag was right (lengths are not secret).
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
