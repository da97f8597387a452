// The host's SHA-256 and AES-128-CTR (node:crypto), in the shapes the shared firmware crypto code takes
// (firmware/src/protocol/crypto/sha256.ts, aes-ctr.ts), so host tools run the exact same HMAC/HKDF/COSE/envelope
// code as the meter with these primitives swapped in; and ES256 verification for the DSO.
import { createCipheriv, createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { Aes128Ctr } from '../../firmware/src/protocol/crypto/aes-ctr.ts';
import { AES128_KEY_BYTES } from '../../firmware/src/protocol/crypto/aes-ctr.ts';
import type { Sha256 } from '../../firmware/src/protocol/crypto/sha256.ts';

/** A plain Uint8Array copy (not a Buffer), as the device returns, so deep comparisons match. */
function plain(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
}

export const nodeSha256: Sha256 = (data) => plain(createHash('sha256').update(data).digest());

const ZERO_COUNTER = Buffer.alloc(16);

/** aes-128-ctr from an all-zero counter block, matching Espruino (which ignores the IV). */
export const nodeAes128Ctr: Aes128Ctr = (key16, data) => {
  if (key16.length !== AES128_KEY_BYTES) throw new Error(`AES-128-CTR needs a 16-byte key (got ${key16.length} bytes)`);
  const cipher = createCipheriv('aes-128-ctr', key16, ZERO_COUNTER);
  return plain(Buffer.concat([cipher.update(data), cipher.final()]));
};

/** Both primitives, as sealEnvelope/openEnvelope take them. */
export const nodeCryptoPrimitives = { sha256: nodeSha256, aes128Ctr: nodeAes128Ctr };

/** Public keys already parsed, by hex: a DSO verifies many readings under each meter's few keys. */
const publicKeys = new Map<string, KeyObject | null>();
const MAX_CACHED_KEYS = 65_536;

function p256PublicKey(publicKey: Uint8Array): KeyObject | null {
  const hex = Buffer.from(publicKey).toString('hex');
  let key = publicKeys.get(hex);
  if (key !== undefined) return key;
  try {
    if (publicKey.length !== 65 || publicKey[0] !== 4) throw new Error('not an uncompressed point');
    const x = Buffer.from(publicKey.subarray(1, 33)).toString('base64url');
    const y = Buffer.from(publicKey.subarray(33)).toString('base64url');
    key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x, y }, format: 'jwk' });
  } catch {
    key = null; // OpenSSL refuses points off the curve: nothing verifies under them
  }
  if (publicKeys.size >= MAX_CACHED_KEYS) publicKeys.clear();
  publicKeys.set(hex, key);
  return key;
}

/**
 * ES256 (ECDSA P-256 with SHA-256 of `message`) by OpenSSL; signature is r || s, 64 bytes. Accepts high-S
 * signatures, as the ATECC608 makes them. False for a malformed key or signature.
 */
export function nodeVerifyEs256(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const key = p256PublicKey(publicKey);
  if (!key || signature.length !== 64) return false;
  return verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, signature);
}
