// What a command handler sees of the chip, and what it returns.

import type { Eeprom } from '../zones.ts';

export const STATUS_OK = 0x00;
export const STATUS_MISCOMPARE = 0x01;
export const STATUS_PARSE_ERROR = 0x03;
export const STATUS_ECC_FAULT = 0x05;
export const STATUS_EXECUTION_ERROR = 0x0f;
export const STATUS_WAKE = 0x11;
export const STATUS_COMM_ERROR = 0xff;

/**
 * Who loaded TempKey; commands check it (Sign external needs a pass-through Nonce, Sign internal a
 * GenKey digest).
 */
export type TempKeySource = 'nonce-passthrough' | 'nonce-random' | 'genkey-private' | 'genkey-digest';

export interface TempKey {
  source: TempKeySource;
  /** 32 or 64 bytes; for 'genkey-private' the 32-byte private scalar (it never leaves the chip). */
  value: Uint8Array;
  /** For 'genkey-digest', TempKeyFlags: the slot whose public key was hashed (KeyID) and SourceFlag (1: the nonce was an input). */
  keyId?: number;
  sourceInput?: boolean;
}

/** Volatile and non-volatile state the commands act on. */
export interface Chip {
  readonly eeprom: Eeprom;
  tempKey: TempKey | undefined;
  /** Message digest buffer (64 bytes), loaded by Nonce pass-through with target 0x40. */
  messageDigest: Uint8Array | undefined;
  /** Alternate key buffer (32 bytes), loaded by Nonce pass-through with target 0x80. */
  alternateKey: Uint8Array | undefined;
  random(length: number): Uint8Array;
  /** The EEPROM changed: persist it. */
  eepromChanged(): void;
}

export interface Command {
  opcode: number;
  param1: number;
  param2: number;
  data: Uint8Array;
}

/** A status byte, or response data (which implies success). */
export type Outcome = { status: number } | { data: Uint8Array };

export type Handler = (chip: Chip, cmd: Command) => Outcome;

export const ok: Outcome = { status: STATUS_OK };
export const parseError: Outcome = { status: STATUS_PARSE_ERROR };
export const executionError: Outcome = { status: STATUS_EXECUTION_ERROR };
