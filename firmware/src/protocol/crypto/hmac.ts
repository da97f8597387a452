// HMAC-SHA256 (RFC 2104, test vectors RFC 4231) over a given SHA-256. Espruino has no HMAC API, but its
// SHA-256 is native and fast, so HMAC is two hash calls (three when the key is longer than a block)
// around a little byte copying in JS.

import { SHA256_BLOCK_BYTES, type Sha256 } from './sha256.ts';

const IPAD = 0x36;
const OPAD = 0x5c;

/** HMAC-SHA256(key, data): 32 bytes. Truncated tags (RFC 4231 case 5) are a prefix of this. */
export function hmacSha256(sha256: Sha256, key: Uint8Array, data: Uint8Array): Uint8Array {
  // A key longer than a block is replaced by its hash; shorter keys are zero-padded by the loops below.
  const k = key.length > SHA256_BLOCK_BYTES ? sha256(key) : key;
  const inner = new Uint8Array(SHA256_BLOCK_BYTES + data.length);
  for (let i = 0; i < SHA256_BLOCK_BYTES; i++) inner[i] = (i < k.length ? k[i] : 0) ^ IPAD;
  inner.set(data, SHA256_BLOCK_BYTES);
  const innerHash = sha256(inner);
  const outer = new Uint8Array(SHA256_BLOCK_BYTES + innerHash.length);
  for (let i = 0; i < SHA256_BLOCK_BYTES; i++) outer[i] = (i < k.length ? k[i] : 0) ^ OPAD;
  outer.set(innerHash, SHA256_BLOCK_BYTES);
  return sha256(outer);
}
