// Read (0x02), Write (0x12) and Lock (0x17): access to the EEPROM zones under the lock state and
// the slot permissions.
//
// Addresses (param2) as calib_get_addr builds them: config/OTP = block << 3 | word; data =
// block << 8 | slot << 3 | word, with 4-byte words and 32-byte blocks; param1 bit 7 selects a
// 32-byte access (then word must be 0). A 32-byte access may start in the last, partial block of
// a slot (calib_write_pubkey writes block 2 of a 72-byte slot that way): a write keeps the bytes
// that fit, a read pads with zeros.
//
// Rules modelled (ATECC608 data sheet, zone access tables):
// - config: always readable; writable until the config zone is locked, except bytes 0–15
//   (serial number, revision) and 84–87 (UserExtra, Selector, LockValue, LockConfig, which only
//   UpdateExtra/Lock change): a write touching them is refused, so a 32-byte write is possible
//   for blocks 1 and 3 only (CryptoAuthLib writes 16–31 and 64–95 in words, skipping word 21).
// - OTP and data: nothing can be written before the config zone is locked; until the data zone
//   is locked they can be written with 32-byte writes only and cannot be read.
// - after the data lock: OTP is read-only; a slot is readable unless it holds a private key
//   (KeyConfig.Private) or is secret (SlotConfig.IsSecret: encrypted reads are not modelled);
//   writable if WriteConfig is Always or PubInvalid, the slot is not locked and it is not a
//   private key (private keys come only from GenKey). Encrypted writes are not modelled (0x0F).
// - Lock: config (0x00) or data+OTP (0x01) with the summary CRC in param2 (config: all 128 bytes;
//   data: every slot but private-key slots, then OTP) or with bit 7 set to skip it; a single slot
//   (0x02 | slot << 2) once the data zone is locked, if KeyConfig.Lockable. Locking twice, a wrong
//   summary or a missing precondition is an execution error.

import { crc16 } from '../crc16.ts';
import {
  CFG,
  CONFIG_SIZE,
  LOCKED,
  OTP_SIZE,
  SLOT_COUNT,
  ZONE_CONFIG,
  ZONE_DATA,
  ZONE_OTP,
  slotSize,
  type Eeprom,
} from '../zones.ts';
import { executionError, ok, parseError, type Chip, type Command, type Outcome } from './chip.ts';

interface Location {
  zone: number;
  /** Data zone slot (data zone only). */
  slot: number;
  /** Byte offset in the zone (config/OTP) or in the slot (data). */
  offset: number;
  length: 4 | 32;
}

function locate(param1: number, param2: number): Location | undefined {
  const zone = param1 & 0x03;
  const length = param1 & 0x80 ? 32 : 4;
  const word = param2 & 0x07;
  if (length === 32 && word !== 0) return undefined;
  if (zone === ZONE_CONFIG || zone === ZONE_OTP) {
    const block = param2 >> 3;
    const offset = block * 32 + word * 4;
    const size = zone === ZONE_CONFIG ? CONFIG_SIZE : OTP_SIZE;
    if (offset + length > size) return undefined;
    return { zone, slot: 0, offset, length };
  }
  if (zone === ZONE_DATA) {
    const slot = (param2 >> 3) & 0x0f;
    const offset = (param2 >> 8) * 32 + word * 4;
    if (offset >= slotSize(slot) || (length === 4 && offset + 4 > slotSize(slot))) return undefined;
    return { zone, slot, offset, length };
  }
  return undefined;
}

export function read(chip: Chip, cmd: Command): Outcome {
  if ((cmd.param1 & ~0x83) !== 0 || cmd.data.length !== 0) return parseError;
  const loc = locate(cmd.param1, cmd.param2);
  if (!loc) return parseError;
  const { eeprom } = chip;
  if (loc.zone === ZONE_CONFIG) return { data: eeprom.config.slice(loc.offset, loc.offset + loc.length) };
  if (!eeprom.dataLocked) return executionError;
  if (loc.zone === ZONE_OTP) return { data: eeprom.otp.slice(loc.offset, loc.offset + loc.length) };
  if (eeprom.keyConfig(loc.slot).private || eeprom.slotConfig(loc.slot).isSecret) return executionError;
  const out = new Uint8Array(loc.length);
  out.set(eeprom.slots[loc.slot].subarray(loc.offset, loc.offset + loc.length));
  return { data: out };
}

/** Config bytes only UpdateExtra/Lock change, and the read-only ones. */
function touchesProtectedConfig(offset: number, length: number): boolean {
  const end = offset + length;
  return offset < 16 || (offset < 88 && end > 84);
}

export function write(chip: Chip, cmd: Command): Outcome {
  if ((cmd.param1 & ~0xc3) !== 0) return parseError;
  const { eeprom } = chip;
  if (cmd.param1 & 0x40) {
    // Encrypted write: value + 32-byte MAC. Needs GenDig/the write key's MAC, which is not modelled.
    return cmd.data.length === 64 && cmd.param1 & 0x80 ? executionError : parseError;
  }
  const loc = locate(cmd.param1, cmd.param2);
  if (!loc || cmd.data.length !== loc.length) return parseError;
  if (loc.zone === ZONE_CONFIG) {
    if (eeprom.configLocked || touchesProtectedConfig(loc.offset, loc.length)) return executionError;
    eeprom.config.set(cmd.data, loc.offset);
    chip.eepromChanged();
    return ok;
  }
  if (!eeprom.configLocked) return executionError;
  if (!eeprom.dataLocked) {
    if (loc.length !== 32) return executionError;
  } else {
    if (loc.zone === ZONE_OTP) return executionError;
    const slotConfig = eeprom.slotConfig(loc.slot);
    if (eeprom.keyConfig(loc.slot).private || eeprom.slotLocked(loc.slot)) return executionError;
    if (slotConfig.writeAccess !== 'always' && slotConfig.writeAccess !== 'pub-invalid') return executionError;
  }
  const target = loc.zone === ZONE_OTP ? eeprom.otp : eeprom.slots[loc.slot];
  target.set(cmd.data.subarray(0, Math.min(loc.length, target.length - loc.offset)), loc.offset);
  chip.eepromChanged();
  return ok;
}

/** CRC over every slot that is not a private key, then OTP (calib_lock_data_zone_crc). */
function dataSummary(eeprom: Eeprom): number {
  const parts: Uint8Array[] = [];
  for (let slot = 0; slot < SLOT_COUNT; slot++) if (!eeprom.keyConfig(slot).private) parts.push(eeprom.slots[slot]);
  parts.push(eeprom.otp);
  return crc16(Buffer.concat(parts));
}

export function lock(chip: Chip, cmd: Command): Outcome {
  if ((cmd.param1 & 0x40) !== 0 || cmd.data.length !== 0) return parseError;
  const { eeprom } = chip;
  const zone = cmd.param1 & 0x03;
  const checkSummary = (cmd.param1 & 0x80) === 0;
  const slot = (cmd.param1 >> 2) & 0x0f;
  if (zone !== 0x02 && slot !== 0) return parseError;
  if (zone === 0x00) {
    if (eeprom.configLocked) return executionError;
    if (checkSummary && crc16(eeprom.config) !== cmd.param2) return executionError;
    eeprom.config[CFG.LOCK_CONFIG] = LOCKED;
  } else if (zone === 0x01) {
    if (!eeprom.configLocked || eeprom.dataLocked) return executionError;
    if (checkSummary && dataSummary(eeprom) !== cmd.param2) return executionError;
    eeprom.config[CFG.LOCK_VALUE] = LOCKED;
  } else if (zone === 0x02) {
    if (!eeprom.dataLocked || !eeprom.keyConfig(slot).lockable || eeprom.slotLocked(slot)) return executionError;
    eeprom.lockSlot(slot);
  } else {
    return parseError;
  }
  chip.eepromChanged();
  return ok;
}
