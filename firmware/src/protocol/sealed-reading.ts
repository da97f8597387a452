// The encrypt-to-DSO envelope around a reading (issue 3 item 3): what the broker and everyone on the
// way sees instead of the signed reading. Encrypt-then-MAC with keys from an ephemeral ECDH:
//
//   envelope = CBOR [1, ephemeralPub (bstr 65, 04||x||y), ciphertext (bstr), tag (bstr 32)]
//   okm      = HKDF-SHA256(ikm = shared x (32 B), salt = empty, info = "veilgrid sealed v1" || ephemeralPub, 48)
//   aesKey   = okm[0..16),  macKey = okm[16..48)
//   ciphertext = AES-128-CTR(aesKey, plaintext) from a zero counter (Espruino ignores the IV)
//   tag      = HMAC-SHA256(macKey, ephemeralPub || ciphertext)
//
// The counter is always zero, so each aesKey must encrypt one message only. That holds because every
// envelope has its own ephemeral key pair (the SE's GenKey into TempKey on the meter), hence its own
// shared secret and keys; putting ephemeralPub into info binds the keys to it as well. The ECDH is not
// done here: the meter's SE computes the shared x (ECDH with TempKey and the DSO's public key), the DSO
// computes it from its private key and the envelope's ephemeral key (read it with decodeEnvelope).
//
// Cost of sealing (or opening) n plaintext bytes: 8 SHA-256 calls (HKDF: 2 extract + 2 x 2 expand;
// HMAC: 2) and one AES call, whatever n is.

import { CborError, decode, encode, encodeUtf8, type CborValue } from './cbor.ts';
import type { Aes128Ctr } from './crypto/aes-ctr.ts';
import { AES128_KEY_BYTES } from './crypto/aes-ctr.ts';
import { concatBytes, equalBytes } from './crypto/bytes.ts';
import { hkdfSha256 } from './crypto/hkdf.ts';
import { hmacSha256 } from './crypto/hmac.ts';
import { isUncompressedPoint } from './crypto/p256-point.ts';
import { SHA256_BYTES, type Sha256 } from './crypto/sha256.ts';
import { VeilgridError } from './veilgrid-error.ts';

export const SEALED_ENVELOPE_VERSION = 1;
const INFO_PREFIX = encodeUtf8('veilgrid sealed v1');
const SHARED_SECRET_BYTES = 32;
const TAG_BYTES = SHA256_BYTES;

export interface SealPrimitives {
  sha256: Sha256;
  aes128Ctr: Aes128Ctr;
}

export interface SealedEnvelope {
  ephemeralPublicKey: Uint8Array;
  ciphertext: Uint8Array;
  tag: Uint8Array;
}

/** Why an envelope could not be opened: 'bad-envelope' (its form) or 'bad-mac' (tampered or wrong key). */
export type SealedEnvelopeFailure = 'bad-envelope' | 'bad-mac';

export class SealedEnvelopeError extends VeilgridError {
  declare readonly reason: SealedEnvelopeFailure;
  constructor(reason: SealedEnvelopeFailure, message: string) {
    super('SealedEnvelopeError', reason, message);
    this.reason = reason;
  }
}

function checkSharedSecret(shared32: Uint8Array): void {
  if (!(shared32 instanceof Uint8Array) || shared32.length !== SHARED_SECRET_BYTES) {
    throw new Error(
      'the ECDH shared secret must be the 32-byte x coordinate (got ' +
        (shared32 instanceof Uint8Array ? shared32.length + ' bytes' : typeof shared32) +
        ')',
    );
  }
}

/** [aesKey, macKey] for this shared secret and ephemeral key. */
function envelopeKeys(sha256: Sha256, shared32: Uint8Array, ephemeralPub: Uint8Array): Uint8Array[] {
  const okm = hkdfSha256(
    sha256,
    shared32,
    new Uint8Array(0),
    concatBytes([INFO_PREFIX, ephemeralPub]),
    AES128_KEY_BYTES + SHA256_BYTES,
  );
  return [okm.subarray(0, AES128_KEY_BYTES), okm.subarray(AES128_KEY_BYTES)];
}

function envelopeTag(sha256: Sha256, macKey: Uint8Array, ephemeralPub: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return hmacSha256(sha256, macKey, concatBytes([ephemeralPub, ciphertext]));
}

/**
 * plaintext encrypted to the holder of the private key matching the DSO public key that shared32 was
 * computed with (shared32 = x of ECDH(ephemeral private key, DSO public key)). ephemeralPub65 is the
 * ephemeral public key, 04||x||y (the SE returns x||y: prefix 04, see protocol/crypto/p256-point.ts).
 * Never call this twice with the same ephemeral key.
 */
export function sealEnvelope(
  primitives: SealPrimitives,
  shared32: Uint8Array,
  ephemeralPub65: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  checkSharedSecret(shared32);
  if (!isUncompressedPoint(ephemeralPub65)) {
    throw new Error(
      'the ephemeral public key must be 65 bytes 04||x||y (got ' +
        (ephemeralPub65 instanceof Uint8Array ? ephemeralPub65.length + ' bytes' : typeof ephemeralPub65) +
        ')',
    );
  }
  const keys = envelopeKeys(primitives.sha256, shared32, ephemeralPub65);
  const ciphertext = primitives.aes128Ctr(keys[0], plaintext);
  const tag = envelopeTag(primitives.sha256, keys[1], ephemeralPub65, ciphertext);
  return encode([SEALED_ENVELOPE_VERSION, ephemeralPub65, ciphertext, tag]);
}

/** The parts of an envelope, checked for form only. Throws SealedEnvelopeError 'bad-envelope'. */
export function decodeEnvelope(envelope: Uint8Array): SealedEnvelope {
  let item: CborValue;
  try {
    item = decode(envelope);
  } catch (err) {
    if (err instanceof CborError)
      throw new SealedEnvelopeError('bad-envelope', 'sealed envelope is not deterministic CBOR: ' + err.message);
    throw err;
  }
  if (!Array.isArray(item) || item.length !== 4) {
    throw new SealedEnvelopeError(
      'bad-envelope',
      'a sealed envelope is a CBOR array [version, ephemeralPub, ciphertext, tag]',
    );
  }
  if (item[0] !== SEALED_ENVELOPE_VERSION) {
    throw new SealedEnvelopeError(
      'bad-envelope',
      'sealed envelope version ' +
        String(item[0]) +
        ' is not supported (this code reads version ' +
        SEALED_ENVELOPE_VERSION +
        ')',
    );
  }
  const ephemeralPublicKey = item[1];
  const ciphertext = item[2];
  const tag = item[3];
  if (!(ephemeralPublicKey instanceof Uint8Array) || !isUncompressedPoint(ephemeralPublicKey)) {
    throw new SealedEnvelopeError('bad-envelope', 'sealed envelope ephemeral key must be a 65-byte bstr 04||x||y');
  }
  if (!(ciphertext instanceof Uint8Array))
    throw new SealedEnvelopeError('bad-envelope', 'sealed envelope ciphertext must be a bstr');
  if (!(tag instanceof Uint8Array) || tag.length !== TAG_BYTES) {
    throw new SealedEnvelopeError('bad-envelope', 'sealed envelope tag must be a ' + TAG_BYTES + '-byte bstr');
  }
  return { ephemeralPublicKey: ephemeralPublicKey, ciphertext: ciphertext, tag: tag };
}

/**
 * The plaintext of envelope, given shared32 = x of ECDH(DSO private key, the envelope's ephemeral key).
 * Throws SealedEnvelopeError: 'bad-envelope' for a malformed envelope, 'bad-mac' when the tag does not
 * match (tampered, or sealed for another key). Nothing is decrypted before the tag checks out.
 */
export function openEnvelope(primitives: SealPrimitives, shared32: Uint8Array, envelope: Uint8Array): Uint8Array {
  checkSharedSecret(shared32);
  const parts = decodeEnvelope(envelope);
  const keys = envelopeKeys(primitives.sha256, shared32, parts.ephemeralPublicKey);
  const expected = envelopeTag(primitives.sha256, keys[1], parts.ephemeralPublicKey, parts.ciphertext);
  if (!equalBytes(expected, parts.tag)) {
    throw new SealedEnvelopeError(
      'bad-mac',
      'sealed envelope MAC does not match: it was altered, or sealed for a different key',
    );
  }
  return primitives.aes128Ctr(keys[0], parts.ciphertext);
}
