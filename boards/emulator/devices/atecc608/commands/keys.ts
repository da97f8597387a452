// GenKey (0x40), Sign (0x41), Verify (0x45) and ECDH (0x43) on P-256, through @noble/curves.
//
// Modelled modes and their rules (ATECC608 data sheet; encodings from calib_command.h):
// - GenKey 0x04 private key into a slot (KeyConfig.Private, KeyType P-256, slot not locked, and
//   once the data zone is locked SlotConfig.WriteConfig bit 1 "GenKey allowed"); 0x04 with
//   param2 0xFFFF creates a private key in TempKey; 0x00 recomputes the public key of a slot (or of
//   TempKey). Needs the config zone locked. Returns the public key X‖Y (64 bytes). The digest
//   modes (0x08, 0x10) are not modelled (parse error).
// - Sign external 0x80 (message = TempKey, which must come from Nonce pass-through) or 0xA0
//   (message = first 32 bytes of the message digest buffer); the slot must be a P-256 private key
//   with SlotConfig.ReadKey bit 0 (external signatures); both zones locked. Returns R‖S. Like the
//   chip, k is random and S is not normalised to the low half: verifiers must accept high S.
//   Internal signing (0x00) is not modelled (parse error).
// - Verify external 0x02 (message = TempKey) or 0x22 (message digest buffer), param2 = key type 4
//   (P-256), data = R‖S ‖ public X‖Y: status 0x00 when the signature is good, 0x01 when not, 0x05
//   when the public key is not a point of the curve. Other Verify modes: parse error.
// - ECDH with the private key of a slot (mode bit 0 = 0) or of TempKey (bit 0 = 1), data = peer
//   X‖Y. Output in the clear (bit 1 = 0) to the output buffer (bits 3:2 = 11, CryptoAuthLib's
//   0x0C / 0x0D), or for a slot in compatibility mode (0x00): to slot N|1 when ReadKey bit 3 is
//   set, else in the clear. The slot needs ReadKey bit 2 (ECDH permitted) and both zones locked; a
//   clear output needs ChipOptions.ECDHProt = 0. Encrypted output and copies to a slot/TempKey are
//   not modelled. Returns the shared X (32 bytes).

import { p256 } from '@noble/curves/nist.js';
import { KEY_TYPE_P256, PRIVATE_KEY_OFFSET, type Eeprom } from '../zones.ts';
import { STATUS_ECC_FAULT, STATUS_MISCOMPARE, executionError, ok, parseError, type Chip, type Command, type Outcome } from './chip.ts';

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

export function genKey(chip: Chip, cmd: Command): Outcome {
  const mode = cmd.param1;
  if ((mode & ~0x1c) !== 0 || (mode !== 0x04 && mode !== 0x00)) return parseError;
  if (cmd.data.length !== 0 && cmd.data.length !== 3) return parseError;
  const { eeprom } = chip;
  if (!eeprom.configLocked) return executionError;
  if (cmd.param2 === TEMPKEY_ID) {
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
  if (mode === 0x00) {
    const key = slotPrivateKey(eeprom, slot);
    return key ? { data: publicXY(key) } : executionError;
  }
  if (eeprom.slotLocked(slot) || (eeprom.dataLocked && !eeprom.slotConfig(slot).genKeyAllowed)) return executionError;
  const key = newPrivateKey(chip);
  const stored = new Uint8Array(eeprom.slots[slot].length);
  stored.set(key, PRIVATE_KEY_OFFSET);
  eeprom.slots[slot].set(stored);
  chip.eepromChanged();
  return { data: publicXY(key) };
}

export function sign(chip: Chip, cmd: Command): Outcome {
  const mode = cmd.param1;
  if ((mode & ~0xe1) !== 0 || cmd.data.length !== 0) return parseError;
  if (mode !== 0x80 && mode !== 0xa0) return parseError;
  const slot = cmd.param2;
  if (slot > 15) return parseError;
  const { eeprom } = chip;
  if (!eeprom.configLocked || !eeprom.dataLocked) return executionError;
  if (!isP256PrivateSlot(eeprom, slot) || !eeprom.slotConfig(slot).externalSignatures) return executionError;
  let message: Uint8Array | undefined;
  if (mode === 0x80) message = chip.tempKey?.source === 'nonce-passthrough' ? chip.tempKey.value.subarray(0, 32) : undefined;
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
  const message = mode === 0x02
    ? (chip.tempKey && chip.tempKey.source !== 'genkey-private' ? chip.tempKey.value.subarray(0, 32) : undefined)
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
