// GenKey (0x40), Sign (0x41), Verify (0x45) and ECDH (0x43) on P-256, through @noble/curves.
//
// Modelled modes and their rules (ATECC608 data sheet; encodings from calib_command.h):
// - GenKey 0x04 private key into a slot (KeyConfig.Private, KeyType P-256, slot not locked, and
//   once the data zone is locked SlotConfig.WriteConfig bit 1 "GenKey allowed"); 0x04 with
//   param2 0xFFFF creates a private key in TempKey; 0x00 recomputes the public key of a slot (or of
//   TempKey). Needs the config zone locked. Returns the public key X‖Y (64 bytes).
//   Digest mode 0x08 (with 0x04: after making a new key; without: recomputing the slot's public key)
//   also replaces TempKey, which must hold a nonce (Nonce pass-through or random), with
//   SHA-256(TempKey ‖ 40 ‖ mode ‖ KeyID (2, LE) ‖ SN[8] ‖ SN[0:1] ‖ 25 zeros ‖ X‖Y), marking it as GenKey
//   data from that slot (CryptoAuthLib atcah_gen_key_msg). The PubKey-digest mode 0x10 (a public key
//   stored in a slot) and digest of a TempKey key are not modelled (parse error).
// - Sign external 0x80 (message = TempKey, which must come from Nonce pass-through) or 0xA0
//   (message = first 32 bytes of the message digest buffer); the slot must be a P-256 private key
//   with SlotConfig.ReadKey bit 0 (external signatures); both zones locked. Returns R‖S. Like the
//   chip, k is random and S is not normalised to the low half: verifiers must accept high S.
// - Sign internal 0x00 (0x40: serial number included): the slot needs ReadKey bit 1 (internal
//   signatures), TempKey must hold a GenKey digest; the chip signs SHA-256 of the 55-byte message of
//   CryptoAuthLib's atcah_sign_internal_msg: TempKey ‖ 41 ‖ mode ‖ KeyID (2) ‖ SlotConfig and KeyConfig
//   of TempKey's slot ‖ TempKeyFlags ‖ 00 00 ‖ SN[8] ‖ SN[4:7] or zeros ‖ SN[0:1] ‖ SN[2:3] or zeros ‖
//   SlotLocked bit of TempKey's slot ‖ PubKey valid (0: a private key slot) ‖ 00. Invalidate (0x01)
//   is not modelled (parse error).
// - Verify external 0x02 (message = TempKey) or 0x22 (message digest buffer), param2 = key type 4
//   (P-256), data = R‖S ‖ public X‖Y: status 0x00 when the signature is good, 0x01 when not, 0x05
//   when the public key is not a point of the curve. Other Verify modes: parse error.
// - ECDH with the private key of a slot (mode bit 0 = 0) or of TempKey (bit 0 = 1), data = peer
//   X‖Y. Output in the clear (bit 1 = 0) to the output buffer (bits 3:2 = 11, CryptoAuthLib's
//   0x0C / 0x0D), or for a slot in compatibility mode (0x00): to slot N|1 when ReadKey bit 3 is
//   set, else in the clear. The slot needs ReadKey bit 2 (ECDH permitted) and both zones locked; a
//   clear output needs ChipOptions.ECDHProt = 0. Encrypted output and copies to a slot/TempKey are
//   not modelled. Returns the shared X (32 bytes).

import { createHash } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { KEY_TYPE_P256, PRIVATE_KEY_OFFSET, type Eeprom } from '../zones.ts';
import {
  STATUS_ECC_FAULT,
  STATUS_MISCOMPARE,
  executionError,
  ok,
  parseError,
  type Chip,
  type Command,
  type Outcome,
  type TempKey,
} from './chip.ts';

const TEMPKEY_ID = 0xffff;

/** A fresh P-256 private scalar from the chip's RNG. */
function newPrivateKey(chip: Chip): Uint8Array {
  for (;;) {
    const candidate = chip.random(32);
    if (p256.utils.isValidSecretKey(candidate)) return candidate;
  }
}

function publicXY(privateKey: Uint8Array): Uint8Array {
  return p256.getPublicKey(privateKey, false).slice(1);
}

function isP256PrivateSlot(eeprom: Eeprom, slot: number): boolean {
  const kc = eeprom.keyConfig(slot);
  return kc.private && kc.keyType === KEY_TYPE_P256;
}

/** The private key held in a slot, if the slot holds a valid one. */
function slotPrivateKey(eeprom: Eeprom, slot: number): Uint8Array | undefined {
  const key = eeprom.slots[slot].slice(PRIVATE_KEY_OFFSET, PRIVATE_KEY_OFFSET + 32);
  return p256.utils.isValidSecretKey(key) ? key : undefined;
}

function tempKeyPrivateKey(chip: Chip): Uint8Array | undefined {
  return chip.tempKey?.source === 'genkey-private' ? chip.tempKey.value : undefined;
}

function peerPoint(xy: Uint8Array): Uint8Array | undefined {
  const point = new Uint8Array(65);
  point[0] = 0x04;
  point.set(xy, 1);
  return p256.utils.isValidPublicKey(point, false) ? point : undefined;
}

/** TempKey as GenKey in digest mode leaves it: the nonce hashed with the slot's public key. */
function genKeyDigest(chip: Chip, mode: number, slot: number, publicXY: Uint8Array, nonce: TempKey): TempKey {
  const sn = chip.eeprom.serialNumber();
  const message = new Uint8Array(128);
  message.set(nonce.value.subarray(0, 32), 0);
  message.set([0x40, mode, slot & 0xff, slot >> 8, sn[8], sn[0], sn[1]], 32);
  message.set(publicXY, 64);
  return {
    source: 'genkey-digest',
    value: new Uint8Array(createHash('sha256').update(message).digest()),
    keyId: slot,
    sourceInput: nonce.source === 'nonce-passthrough',
  };
}

export function genKey(chip: Chip, cmd: Command): Outcome {
  const mode = cmd.param1;
  if ((mode & ~0x0c) !== 0) return parseError;
  if (cmd.data.length !== 0 && cmd.data.length !== 3) return parseError;
  const digest = (mode & 0x08) !== 0;
  const { eeprom } = chip;
  if (!eeprom.configLocked) return executionError;
  if (cmd.param2 === TEMPKEY_ID) {
    if (digest) return parseError;
    if (mode === 0x04) {
      const key = newPrivateKey(chip);
      chip.tempKey = { source: 'genkey-private', value: key };
      return { data: publicXY(key) };
    }
    const key = tempKeyPrivateKey(chip);
    return key ? { data: publicXY(key) } : executionError;
  }
  const slot = cmd.param2;
  if (slot > 15) return parseError;
  if (!isP256PrivateSlot(eeprom, slot)) return executionError;
  const nonce = chip.tempKey;
  if (digest && (!nonce || (nonce.source !== 'nonce-passthrough' && nonce.source !== 'nonce-random')))
    return executionError;
  let key: Uint8Array | undefined;
  if ((mode & 0x04) === 0) {
    key = slotPrivateKey(eeprom, slot);
    if (!key) return executionError;
  } else {
    if (eeprom.slotLocked(slot) || (eeprom.dataLocked && !eeprom.slotConfig(slot).genKeyAllowed)) return executionError;
    key = newPrivateKey(chip);
    const stored = new Uint8Array(eeprom.slots[slot].length);
    stored.set(key, PRIVATE_KEY_OFFSET);
    eeprom.slots[slot].set(stored);
    chip.eepromChanged();
  }
  const xy = publicXY(key);
  if (digest) chip.tempKey = genKeyDigest(chip, mode, slot, xy, nonce!);
  return { data: xy };
}

/** The 55-byte message Sign internal signs for a GenKey digest in TempKey. */
function internalMessage(chip: Chip, mode: number, slot: number, tempKey: TempKey): Uint8Array {
  const { eeprom } = chip;
  const keyId = tempKey.keyId!;
  const sn = eeprom.serialNumber();
  const slotConfig = eeprom.slotConfig(keyId).raw;
  const keyConfig = eeprom.keyConfig(keyId).raw;
  const m = new Uint8Array(55);
  m.set(tempKey.value.subarray(0, 32), 0);
  m.set([0x41, mode, slot & 0xff, slot >> 8, slotConfig & 0xff, slotConfig >> 8, keyConfig & 0xff, keyConfig >> 8], 32);
  // TempKeyFlags: KeyID (bits 0-3), SourceFlag (4), GenDigData (5), GenKeyData (6), NoMacFlag (7).
  m[40] = keyId | (tempKey.sourceInput ? 0x10 : 0) | 0x40;
  m[43] = sn[8];
  m.set(sn.subarray(0, 2), 48);
  if (mode & 0x40) {
    m.set(sn.subarray(4, 8), 44);
    m.set(sn.subarray(2, 4), 50);
  }
  m[52] = eeprom.slotLocked(keyId) ? 0x00 : 0x01;
  return m;
}

export function sign(chip: Chip, cmd: Command): Outcome {
  const mode = cmd.param1;
  if ((mode & ~0xe1) !== 0 || cmd.data.length !== 0) return parseError;
  if (mode !== 0x80 && mode !== 0xa0 && mode !== 0x00 && mode !== 0x40) return parseError;
  const slot = cmd.param2;
  if (slot > 15) return parseError;
  const { eeprom } = chip;
  if (!eeprom.configLocked || !eeprom.dataLocked) return executionError;
  const internal = (mode & 0x80) === 0;
  if (!isP256PrivateSlot(eeprom, slot)) return executionError;
  if (internal ? !eeprom.slotConfig(slot).internalSignatures : !eeprom.slotConfig(slot).externalSignatures)
    return executionError;
  let message: Uint8Array | undefined;
  if (internal) {
    const tempKey = chip.tempKey;
    if (tempKey?.source !== 'genkey-digest') return executionError;
    message = createHash('sha256')
      .update(internalMessage(chip, mode, slot, tempKey))
      .digest();
  } else if (mode === 0x80)
    message = chip.tempKey?.source === 'nonce-passthrough' ? chip.tempKey.value.subarray(0, 32) : undefined;
  else message = chip.messageDigest?.subarray(0, 32);
  if (!message) return executionError;
  const key = slotPrivateKey(eeprom, slot);
  if (!key) return executionError;
  const signature = p256.sign(message, key, { prehash: false, lowS: false, extraEntropy: chip.random(32) });
  return { data: signature };
}

export function verify(chip: Chip, cmd: Command): Outcome {
  const mode = cmd.param1;
  if (mode !== 0x02 && mode !== 0x22) return parseError;
  if (cmd.param2 !== KEY_TYPE_P256 || cmd.data.length !== 128) return parseError;
  const message =
    mode === 0x02
      ? chip.tempKey && chip.tempKey.source !== 'genkey-private'
        ? chip.tempKey.value.subarray(0, 32)
        : undefined
      : chip.messageDigest?.subarray(0, 32);
  if (!message) return executionError;
  const point = peerPoint(cmd.data.subarray(64, 128));
  if (!point) return { status: STATUS_ECC_FAULT };
  let good = false;
  try {
    good = p256.verify(cmd.data.subarray(0, 64), message, point, { prehash: false, lowS: false });
  } catch {
    good = false; // R or S out of range
  }
  return good ? ok : { status: STATUS_MISCOMPARE };
}

export function ecdh(chip: Chip, cmd: Command): Outcome {
  const mode = cmd.param1;
  if ((mode & 0xf0) !== 0 || cmd.data.length !== 64) return parseError;
  const fromTempKey = (mode & 0x01) !== 0;
  const encrypted = (mode & 0x02) !== 0;
  const copy = mode & 0x0c;
  if (copy === 0x04 || copy === 0x08) return parseError;
  if (fromTempKey && copy === 0x00) return parseError;
  if (encrypted) return executionError;
  const { eeprom } = chip;
  let key: Uint8Array | undefined;
  let toNextSlot = false;
  const slot = cmd.param2;
  if (fromTempKey) {
    key = tempKeyPrivateKey(chip);
  } else {
    if (slot > 15) return parseError;
    if (!eeprom.configLocked || !eeprom.dataLocked) return executionError;
    const slotConfig = eeprom.slotConfig(slot);
    if (!isP256PrivateSlot(eeprom, slot) || !slotConfig.ecdhPermitted) return executionError;
    toNextSlot = copy === 0x00 && slotConfig.ecdhToNextSlot;
    key = slotPrivateKey(eeprom, slot);
  }
  if (!key) return executionError;
  if (!toNextSlot && eeprom.ecdhProtection !== 0) return executionError;
  const point = peerPoint(cmd.data);
  if (!point) return { status: STATUS_ECC_FAULT };
  const sharedX = p256.getSharedSecret(key, point, true).slice(1);
  if (toNextSlot) {
    eeprom.slots[slot | 1].set(sharedX);
    chip.eepromChanged();
    return ok;
  }
  return { data: sharedX };
}
