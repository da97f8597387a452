// Info (0x30), Random (0x1B), Nonce (0x16) and Counter (0x24).
//
// - Info mode 0x00 returns RevNum (config bytes 4–7). Other Info modes are not modelled.
// - Random returns 32 bytes; while the config zone is unlocked the chip's RNG is not running and
//   it returns the fixed pattern FF FF 00 00 repeated, as real parts do.
// - Nonce pass-through (mode 0x03, param2 0): bit 5 = 64 bytes instead of 32; bits 7:6 = target
//   TempKey (0x00), message digest buffer (0x40) or alternate key buffer (0x80, 32 bytes only).
//   Random mode (0x00 seed update / 0x01 no update, 20-byte NumIn): returns RandOut and sets
//   TempKey = SHA-256(RandOut ‖ NumIn ‖ 0x16 ‖ mode ‖ 0x00), the chip's nonce calculation.
// - Counter read (0x00) / increment (0x01) of counter 0 or 1 (param2), stored in the config zone
//   (bytes 52–67, CryptoAuthLib's encoding) and returned as 4 bytes little-endian. Incrementing
//   past 2,097,151 is an execution error.

import { createHash } from 'node:crypto';
import { COUNTER_MAX } from '../zones.ts';
import { executionError, ok, parseError, type Chip, type Command, type Outcome } from './chip.ts';

export function info(chip: Chip, cmd: Command): Outcome {
  if (cmd.param1 !== 0x00 || cmd.data.length !== 0) return parseError;
  return { data: chip.eeprom.config.slice(4, 8) };
}

function rngOutput(chip: Chip): Uint8Array {
  if (chip.eeprom.configLocked) return chip.random(32);
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i += 4) out.set([0xff, 0xff, 0x00, 0x00], i);
  return out;
}

export function random(chip: Chip, cmd: Command): Outcome {
  if ((cmd.param1 !== 0x00 && cmd.param1 !== 0x01) || cmd.param2 !== 0 || cmd.data.length !== 0) return parseError;
  return { data: rngOutput(chip) };
}

export function nonce(chip: Chip, cmd: Command): Outcome {
  const mode = cmd.param1;
  if ((mode & 0x03) === 0x03) {
    if ((mode & 0x1c) !== 0 || cmd.param2 !== 0) return parseError;
    const length = mode & 0x20 ? 64 : 32;
    const target = mode & 0xc0;
    if (cmd.data.length !== length || target === 0xc0 || (target === 0x80 && length !== 32)) return parseError;
    const value = cmd.data.slice();
    if (target === 0x00) chip.tempKey = { source: 'nonce-passthrough', value };
    else if (target === 0x40) {
      chip.messageDigest = new Uint8Array(64);
      chip.messageDigest.set(value);
    } else chip.alternateKey = value;
    return ok;
  }
  if ((mode !== 0x00 && mode !== 0x01) || cmd.param2 !== 0 || cmd.data.length !== 20) return parseError;
  const randOut = rngOutput(chip);
  const value = createHash('sha256')
    .update(randOut)
    .update(cmd.data)
    .update(Uint8Array.of(0x16, mode, 0x00))
    .digest();
  chip.tempKey = { source: 'nonce-random', value: new Uint8Array(value) };
  return { data: randOut };
}

export function counter(chip: Chip, cmd: Command): Outcome {
  if ((cmd.param1 !== 0x00 && cmd.param1 !== 0x01) || cmd.param2 > 1 || cmd.data.length !== 0) return parseError;
  const { eeprom } = chip;
  let value = eeprom.counter(cmd.param2);
  if (cmd.param1 === 0x01) {
    if (value >= COUNTER_MAX) return executionError;
    value += 1;
    eeprom.setCounter(cmd.param2, value);
    chip.eepromChanged();
  }
  return { data: Uint8Array.of(value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, (value >>> 24) & 0xff) };
}
