// P-256 public keys as bytes. The ATECC608 returns a public key as 64 bytes x || y; certificates and
// sealed envelopes carry the 65-byte SEC 1 uncompressed form 04 || x || y, which node:crypto, noble and
// the EVM precompile take. Only the form is checked here: whether the point is on the curve needs EC
// math, which the host does when it verifies (the meter has no EC code at all).

export const P256_UNCOMPRESSED_BYTES = 65;
export const P256_XY_BYTES = 64;

/** True when key has the uncompressed form: 65 bytes starting 0x04. */
export function isUncompressedPoint(key: Uint8Array): boolean {
  return key instanceof Uint8Array && key.length === P256_UNCOMPRESSED_BYTES && key[0] === 0x04;
}

/** The 65-byte uncompressed form of a public key given as 64-byte x || y (SE) or already as 65 bytes. */
export function uncompressedPoint(key: Uint8Array): Uint8Array {
  if (isUncompressedPoint(key)) return key;
  if (key instanceof Uint8Array && key.length === P256_XY_BYTES) {
    const out = new Uint8Array(P256_UNCOMPRESSED_BYTES);
    out[0] = 0x04;
    out.set(key, 1);
    return out;
  }
  const what =
    key instanceof Uint8Array
      ? key.length + ' bytes' + (key.length === P256_UNCOMPRESSED_BYTES ? ' not starting 0x04' : '')
      : 'not a Uint8Array';
  throw new Error('a P-256 public key must be 64 bytes x||y or 65 bytes 04||x||y (got ' + what + ')');
}
