// The device's native hashing and AES (Espruino's crypto module, mbedtls in C). The one place the
// firmware names require("crypto"); logic modules receive these functions as parameters.

import type { Aes128Ctr } from '../protocol/crypto/aes-ctr.ts';
import { AES128_KEY_BYTES } from '../protocol/crypto/aes-ctr.ts';
import type { Sha256 } from '../protocol/crypto/sha256.ts';

/** SHA-256 by crypto.SHA256 (native, about 30 us per KB). Takes a Uint8Array, views included. */
export const nativeSha256: Sha256 = function (data) {
  return new Uint8Array(require('crypto').SHA256(data));
};

/**
 * AES-128-CTR by crypto.AES.encrypt with mode CTR, whose counter always starts at zero (it ignores iv:
 * see protocol/crypto/aes-ctr.ts for why every key must be used once). Always encrypt, also to decrypt: CTR is
 * its own inverse, and AES.decrypt would set up mbedtls' decryption key schedule, which CTR must not use.
 */
export const nativeAes128Ctr: Aes128Ctr = function (key16, data) {
  if (key16.length !== AES128_KEY_BYTES) {
    throw new Error('AES-128-CTR needs a 16-byte key (got ' + key16.length + ' bytes)');
  }
  // Espruino cannot allocate a zero-length result buffer ("Not enough memory for result").
  if (data.length === 0) return new Uint8Array(0);
  return new Uint8Array(require('crypto').AES.encrypt(data, key16, { mode: 'CTR' }));
};
