// Opcode → handler for every command the model implements (calib_command.h opcodes).

import type { Handler } from './chip.ts';
import { ecdh, genKey, sign, verify } from './keys.ts';
import { lock, read, write } from './memory.ts';
import { counter, info, nonce, random } from './misc.ts';

export const OPCODE = {
  READ: 0x02,
  WRITE: 0x12,
  NONCE: 0x16,
  LOCK: 0x17,
  RANDOM: 0x1b,
  COUNTER: 0x24,
  INFO: 0x30,
  GENKEY: 0x40,
  SIGN: 0x41,
  ECDH: 0x43,
  VERIFY: 0x45,
} as const;

export const HANDLERS: Record<number, Handler> = {
  [OPCODE.READ]: read,
  [OPCODE.WRITE]: write,
  [OPCODE.NONCE]: nonce,
  [OPCODE.LOCK]: lock,
  [OPCODE.RANDOM]: random,
  [OPCODE.COUNTER]: counter,
  [OPCODE.INFO]: info,
  [OPCODE.GENKEY]: genKey,
  [OPCODE.SIGN]: sign,
  [OPCODE.ECDH]: ecdh,
  [OPCODE.VERIFY]: verify,
};
