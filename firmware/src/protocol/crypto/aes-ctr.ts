// AES-128 in counter mode as a parameter, with the counter rule Espruino imposes.
//
// Espruino's crypto.AES.encrypt(data, key, { mode: 'CTR' }) ignores the iv option: the counter block is
// a zeroed local in libs/crypto/jswrap_crypto.c (docs/espruino-differences.md). So this type has no nonce: the
// keystream is AES-ECB(key, counter) with a 128-bit big-endian counter starting at zero
// (00..00, 00..01, ...), XORed with data; the last partial block uses the front of its keystream block.
// With a fixed counter the key alone decides the keystream, so **a key must encrypt exactly one
// message**: reuse under two messages reveals their XOR. Every caller derives a fresh key per message
// (the sealed envelope derives it from a fresh ephemeral ECDH).
//
// Encryption and decryption are the same operation. Implementations: platform/crypto.ts (device),
// host-tools/crypto/node-primitives.ts (node:crypto aes-128-ctr with an all-zero iv).

/** data XOR AES-128-CTR keystream of key16 from a zero counter: a new array of data's length. */
export type Aes128Ctr = (key16: Uint8Array, data: Uint8Array) => Uint8Array;

export const AES128_KEY_BYTES = 16;
