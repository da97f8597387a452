// Hex text for bytes: how keys travel in the configuration, on the console and in key records.

const DIGITS = '0123456789abcdef';

/** Lower-case hex of bytes. */
export function bytesToHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += DIGITS.charAt(bytes[i] >> 4) + DIGITS.charAt(bytes[i] & 15);
  return out;
}

/** Bytes of hex text (either case); undefined when text is not an even number of hex digits. */
export function hexToBytes(text: string): Uint8Array | undefined {
  if (typeof text !== 'string' || text.length % 2 !== 0) return undefined;
  const lower = text.toLowerCase();
  const out = new Uint8Array(lower.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = DIGITS.indexOf(lower.charAt(2 * i));
    const lo = DIGITS.indexOf(lower.charAt(2 * i + 1));
    if (hi < 0 || lo < 0) return undefined;
    out[i] = hi * 16 + lo;
  }
  return out;
}
