// HKDF-SHA256 (RFC 5869, test vectors in its appendix A.1-A.3) over a given SHA-256.
// Cost: 2 SHA-256 calls to extract plus 2 per 32 output bytes (e.g. 6 calls for 48 bytes).

import { hmacSha256 } from './hmac.ts';
import { SHA256_BYTES, type Sha256 } from './sha256.ts';

/** RFC 5869 caps the output at 255 blocks of the hash length. */
export const HKDF_SHA256_MAX_LENGTH = 255 * SHA256_BYTES;

/**
 * HKDF-Extract: PRK = HMAC(salt, ikm). An empty salt acts as 32 zero bytes, as RFC 5869 says for "not
 * provided" (HMAC pads short keys with zeros, so the two are the same key).
 */
export function hkdfExtract(sha256: Sha256, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmacSha256(sha256, salt, ikm);
}

/** HKDF-Expand: length bytes of T(1) || T(2) || ... with T(i) = HMAC(prk, T(i-1) || info || i). */
export function hkdfExpand(sha256: Sha256, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!(length >= 0 && length <= HKDF_SHA256_MAX_LENGTH && length === Math.floor(length))) {
    throw new Error(
      'HKDF-SHA256 output length ' + length + ' is out of range: ask for 0 to ' + HKDF_SHA256_MAX_LENGTH + ' bytes',
    );
  }
  const out = new Uint8Array(length);
  // Block input: previous T (empty for the first block), info, then the one-byte counter.
  const input = new Uint8Array(SHA256_BYTES + info.length + 1);
  let previous: Uint8Array = new Uint8Array(0);
  let filled = 0;
  for (let counter = 1; filled < length; counter++) {
    input.set(previous, 0);
    input.set(info, previous.length);
    input[previous.length + info.length] = counter;
    previous = hmacSha256(sha256, prk, input.subarray(0, previous.length + info.length + 1));
    const take = length - filled < SHA256_BYTES ? length - filled : SHA256_BYTES;
    out.set(previous.subarray(0, take), filled);
    filled += take;
  }
  return out;
}

/** HKDF-SHA256(ikm, salt, info) -> length bytes (RFC 5869 section 2: extract, then expand). */
export function hkdfSha256(
  sha256: Sha256,
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  return hkdfExpand(sha256, hkdfExtract(sha256, salt, ikm), info, length);
}
