// SHA-256 as a parameter: the firmware passes Espruino's native crypto.SHA256 (platform/crypto.ts), the
// host tools pass node:crypto (host-tools/crypto/node-primitives.ts). HMAC, HKDF, COSE and the sealed
// envelope take it as an argument instead of importing one, so the same code runs on both sides.

/** SHA-256 of data: a new 32-byte array. Must not keep or change data. */
export type Sha256 = (data: Uint8Array) => Uint8Array;

export const SHA256_BYTES = 32;
/** SHA-256 works on 64-byte blocks; HMAC pads its key to this size. */
export const SHA256_BLOCK_BYTES = 64;
