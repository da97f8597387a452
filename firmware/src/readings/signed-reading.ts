// A reading as it leaves the meter: signed by the current reading key in the secure element, then
// sealed to the DSO's public key, so the broker and everyone on the way see neither the values nor
// which key signed them (issue 3 item 3).
//
//   COSE_Sign1 ES256 { alg -7, kid = kidOf(reading key) } over encodeReading(reading)
//   sealEnvelope(shared x of ECDH(SE TempKey, DSO key), TempKey's public key, that COSE_Sign1)
//
// SE commands per reading (no rotation): Sign = Random + Nonce + Sign (3), GenKey TempKey (1),
// ECDH TempKey (1): 5. A rotation adds 5 (keys/reading-keys.ts). The reading is signed first: Sign
// uses the message digest buffer, so it would not disturb TempKey either way, but this way TempKey
// lives only from GenKey to the ECDH right after it.

import type { ReadingKeys } from '../keys/reading-keys.ts';
import { signSign1 } from '../protocol/cose.ts';
import { uncompressedPoint, P256_XY_BYTES } from '../protocol/crypto/p256-point.ts';
import type { SecureElement } from '../se/secure-element.ts';
import { encodeReading, type Reading } from '../protocol/reading.ts';
import { sealEnvelope, type SealPrimitives } from '../protocol/sealed-reading.ts';

/** The DSO's public key as the SE's ECDH takes it: 64 bytes x || y (from 65-byte 04||x||y or 64 bytes). */
export function dsoKeyForEcdh(dsoPublicKey: Uint8Array): Uint8Array {
  return uncompressedPoint(dsoPublicKey).subarray(1, 1 + P256_XY_BYTES);
}

/**
 * The sealed, signed reading to publish on readingTopic(meterId). dsoPublicKey: the DSO's key, 65 bytes
 * 04||x||y (or 64 bytes x||y). May rotate the reading key first (which queues its certificate).
 */
export function signAndSealReading(
  se: SecureElement,
  keys: ReadingKeys,
  dsoPublicKey: Uint8Array,
  reading: Reading,
  primitives: SealPrimitives,
): Uint8Array {
  const key = keys.keyFor(reading.interval);
  const signed = signSign1(
    primitives.sha256,
    function (digest) {
      return se.sign(key.slot, digest);
    },
    key.kid,
    encodeReading(reading),
  );
  const ephemeral = uncompressedPoint(se.genTempKey());
  const shared = se.ecdh('tempkey', dsoKeyForEcdh(dsoPublicKey));
  return sealEnvelope(primitives, shared, ephemeral, signed);
}
