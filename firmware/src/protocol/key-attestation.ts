// The ATECC608's attestation of a key it generated, and the message the DSO recomputes to check it.
//
// The identity key (slot 0) cannot sign a digest handed to it (SlotConfig.ReadKey bit 0 clear): it signs
// only messages the chip builds itself (bit 1, Sign internal). To certify a new reading key the meter runs,
// within one wake:
//   Nonce pass-through  TempKey = nonce (32 bytes: SHA-256 of the certificate's Sig_structure)
//   GenKey mode 0x08    TempKey = SHA-256(genKeyDigestMessage): the public key of the private key in the
//                       reading key's slot, recomputed by the chip, hashed with the nonce
//   Sign mode 0x00      ECDSA by slot 0 over SHA-256(signInternalMessage): TempKey plus the chip's own
//                       SlotConfig and KeyConfig of the slot that public key came from
// So a valid signature says: this chip holds, in that slot and under that configuration (private, never
// readable, never written from outside), the private half of this public key, and certifies it with these
// certificate fields. A key made anywhere else cannot be certified, whoever drives the chip.
//
// The layouts are CryptoAuthLib's (lib/host/atca_host.c atcah_gen_key_msg, atcah_sign_internal_msg). Only
// SN[0:1] and SN[8] of the serial number enter them (Sign without mode bit 6), and those are the same on
// every ATECC608 (01 23 .. EE), so the verifier needs no per-chip serial number.

import type { Sha256 } from './crypto/sha256.ts';
import { keyConfigFor, slotConfigFor } from './se-config-zone.ts';
import { IDENTITY_SLOT } from './slot-map.ts';

const OP_GENKEY = 0x40;
const OP_SIGN = 0x41;
/** GenKey mode: recompute the public key of the slot's private key and put its digest in TempKey. */
export const GENKEY_MODE_DIGEST = 0x08;
/** Sign mode: internal message, serial number not included. */
export const SIGN_MODE_INTERNAL = 0x00;
const SN_0 = 0x01;
const SN_1 = 0x23;
const SN_8 = 0xee;
/** TempKeyFlags bit 4: TempKey came from a pass-through (input) nonce, not the chip's RNG. */
const TEMPKEY_SOURCE_INPUT = 0x10;
/** TempKeyFlags bit 6: TempKey holds a GenKey digest. */
const TEMPKEY_GENKEY_DATA = 0x40;

export const GENKEY_DIGEST_MESSAGE_BYTES = 128;
export const SIGN_INTERNAL_MESSAGE_BYTES = 55;

function checkBytes(name: string, bytes: Uint8Array, length: number): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new Error(
      'attestation: ' +
        name +
        ' must be ' +
        length +
        ' bytes, got ' +
        (bytes instanceof Uint8Array ? bytes.length + ' bytes' : typeof bytes),
    );
  }
}

/**
 * What GenKey in digest mode hashes into TempKey (128 bytes): TempKey (the nonce) | opcode | mode |
 * KeyID (2 bytes, little-endian) | SN[8] | SN[0:1] | 25 zero bytes | public key x || y.
 */
export function genKeyDigestMessage(nonce: Uint8Array, slot: number, publicXY: Uint8Array): Uint8Array {
  checkBytes('nonce', nonce, 32);
  checkBytes('public key x || y', publicXY, 64);
  const m = new Uint8Array(GENKEY_DIGEST_MESSAGE_BYTES);
  m.set(nonce, 0);
  m[32] = OP_GENKEY;
  m[33] = GENKEY_MODE_DIGEST;
  m[34] = slot & 0xff;
  m[35] = (slot >> 8) & 0xff;
  m[36] = SN_8;
  m[37] = SN_0;
  m[38] = SN_1;
  m.set(publicXY, GENKEY_DIGEST_MESSAGE_BYTES - 64);
  return m;
}

/**
 * What Sign in internal mode signs the SHA-256 of (55 bytes): TempKey | opcode | mode | KeyID of the
 * signing key (2) | SlotConfig (2) and KeyConfig (2) of the slot TempKey was made from | TempKeyFlags |
 * 2 zero bytes | SN[8] | 4 zero bytes (SN[4:7] without mode bit 6) | SN[0:1] | 2 zero bytes (SN[2:3]) |
 * that slot's SlotLocked bit (1 = not locked) | PubKey valid (0: a private-key slot) | 0.
 */
export function signInternalMessage(
  tempKey: Uint8Array,
  signerSlot: number,
  keySlot: number,
  slotConfig: number,
  keyConfig: number,
  tempKeyFlags: number,
  slotUnlocked: boolean,
): Uint8Array {
  checkBytes('TempKey', tempKey, 32);
  const m = new Uint8Array(SIGN_INTERNAL_MESSAGE_BYTES);
  m.set(tempKey, 0);
  m[32] = OP_SIGN;
  m[33] = SIGN_MODE_INTERNAL;
  m[34] = signerSlot & 0xff;
  m[35] = (signerSlot >> 8) & 0xff;
  m[36] = slotConfig & 0xff;
  m[37] = (slotConfig >> 8) & 0xff;
  m[38] = keyConfig & 0xff;
  m[39] = (keyConfig >> 8) & 0xff;
  m[40] = tempKeyFlags | (keySlot & 0x0f);
  m[43] = SN_8;
  m[48] = SN_0;
  m[49] = SN_1;
  m[52] = slotUnlocked ? 0x01 : 0x00;
  return m;
}

/**
 * The message the identity key signs (ECDSA over its SHA-256) when this firmware's chip attests the
 * public key (65 bytes uncompressed) of the key in keySlot for `nonce`: the slot configured as
 * protocol/se-config-zone.ts writes it, a pass-through nonce, no slot individually locked.
 */
export function attestationMessage(
  sha256: Sha256,
  nonce: Uint8Array,
  keySlot: number,
  publicKey: Uint8Array,
): Uint8Array {
  checkBytes('public key', publicKey, 65);
  const tempKey = sha256(genKeyDigestMessage(nonce, keySlot, publicKey.subarray(1)));
  return signInternalMessage(
    tempKey,
    IDENTITY_SLOT,
    keySlot,
    slotConfigFor(keySlot),
    keyConfigFor(keySlot),
    TEMPKEY_SOURCE_INPUT | TEMPKEY_GENKEY_DATA,
    true,
  );
}
