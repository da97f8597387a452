// The host's SHA-256 and AES-128-CTR (node:crypto), in the shapes the shared firmware crypto code takes
// (firmware/src/crypto/sha256.ts, aes-ctr.ts), so host tools run the exact same HMAC/HKDF/COSE/envelope
// code as the meter with these primitives swapped in.
import { createCipheriv, createHash } from 'node:crypto';
import type { Aes128Ctr } from '../../firmware/src/crypto/aes-ctr.ts';
import { AES128_KEY_BYTES } from '../../firmware/src/crypto/aes-ctr.ts';
import type { Sha256 } from '../../firmware/src/crypto/sha256.ts';

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
