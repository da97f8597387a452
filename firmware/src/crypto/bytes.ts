// Byte-array helpers the crypto code needs: joining parts, and comparing secrets (MAC tags) without
// leaking where they first differ. Device-safe (no spread, no Array.from) and shared with the host.

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
