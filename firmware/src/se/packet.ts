// ATECC608 command and response packets on I2C (CryptoAuthLib calib_command.h / calib_command.c).
//
// Command (one I2C write): [0x03 word address] [count] [opcode] [param1] [param2 lo] [param2 hi]
// [data …] [crc lo] [crc hi], where count = 7 + data length covers count byte through CRC.
// Response (one I2C read): [count] [payload …] [crc lo] [crc hi]; a 4-byte response carries a
// status byte instead of a payload. A read while the chip is asleep or busy gets no ACK: on the
// ESP32 that is an exception, and whatever bytes come back (0x00/0xFF) are not a packet.

import { atCrc16 } from './crc16.ts';

/** Word addresses: the first byte of every write to the chip. */
export const WORD_RESET = 0x00; // reset the I/O buffer's read pointer to the start
export const WORD_SLEEP = 0x01; // sleep: lowest power, clears TempKey and the message digest buffer
export const WORD_IDLE = 0x02; // idle: keeps TempKey; needs a wake before the next command
export const WORD_COMMAND = 0x03;

export const OP_READ = 0x02;
export const OP_WRITE = 0x12;
export const OP_NONCE = 0x16;
export const OP_LOCK = 0x17;
export const OP_RANDOM = 0x1b;
export const OP_COUNTER = 0x24;
export const OP_INFO = 0x30;
export const OP_GENKEY = 0x40;
export const OP_SIGN = 0x41;
export const OP_ECDH = 0x43;
export const OP_VERIFY = 0x45;

export const STATUS_SUCCESS = 0x00;
export const STATUS_MISCOMPARE = 0x01;
export const STATUS_PARSE_ERROR = 0x03;
export const STATUS_ECC_FAULT = 0x05;
export const STATUS_SELF_TEST_ERROR = 0x07;
export const STATUS_HEALTH_TEST_ERROR = 0x08;
export const STATUS_EXECUTION_ERROR = 0x0f;
export const STATUS_AFTER_WAKE = 0x11;
export const STATUS_WATCHDOG_EXPIRING = 0xee;
export const STATUS_COMM_ERROR = 0xff;

/** What a status byte means, for error messages. */
export function statusName(status: number): string {
  switch (status) {
    case STATUS_SUCCESS:
      return 'success';
    case STATUS_MISCOMPARE:
      return 'verify/checkmac miscompare';
    case STATUS_PARSE_ERROR:
      return 'parse error (bad length, opcode or parameter)';
    case STATUS_ECC_FAULT:
      return 'ECC fault (computation failed, try again)';
    case STATUS_SELF_TEST_ERROR:
      return 'self-test error (chip is in failure mode)';
    case STATUS_HEALTH_TEST_ERROR:
      return 'random number generator health test error';
    case STATUS_EXECUTION_ERROR:
      return 'execution error (not permitted by the configuration or lock state)';
    case STATUS_AFTER_WAKE:
      return 'chip has just woken (the command was not executed)';
    case STATUS_WATCHDOG_EXPIRING:
      return 'watchdog about to expire';
    case STATUS_COMM_ERROR:
      return 'CRC or communication error (the chip did not receive the command intact)';
    default:
      return 'unknown status 0x' + hexByte(status);
  }
}

export function hexByte(b: number): string {
  return (b < 16 ? '0' : '') + b.toString(16);
}

/** Zone numbers of Read/Write; bit 7 of param1 selects a 32-byte block instead of a 4-byte word. */
export const ZONE_CONFIG = 0;
export const ZONE_OTP = 1;
export const ZONE_DATA = 2;
export const ZONE_32_BYTES = 0x80;

/**
 * param2 of Read/Write (calib_get_addr): config and OTP are addressed as block<<3 | word;
 * the data zone as block<<8 | slot<<3 | word. A word is 4 bytes, a block 32 bytes.
 */
export function zoneAddress(zone: number, slot: number, block: number, word: number): number {
  if (zone === ZONE_DATA) return (block << 8) | (slot << 3) | (word & 7);
  return (block << 3) | (word & 7);
}

/** The full I2C write for one command: word address 0x03, count, opcode, params, data, CRC. */
export function buildCommand(opcode: number, param1: number, param2: number, data?: Uint8Array): Uint8Array {
  const dataLength = data ? data.length : 0;
  const count = 7 + dataLength;
  const out = new Uint8Array(1 + count);
  out[0] = WORD_COMMAND;
  out[1] = count;
  out[2] = opcode;
  out[3] = param1 & 0xff;
  out[4] = param2 & 0xff;
  out[5] = (param2 >> 8) & 0xff;
  if (data) out.set(data, 6);
  const crc = atCrc16(out, 1, 1 + count - 2);
  out[count - 1] = crc & 0xff;
  out[count] = crc >> 8;
  return out;
}

/** How a read of the response buffer turned out. */
export const RESPONSE_OK = 0;
/** Nothing there (asleep, busy, or not a packet): count byte outside 4..bytes read. */
export const RESPONSE_EMPTY = 1;
/** A packet whose CRC does not match: corrupted on the bus. */
export const RESPONSE_BAD_CRC = 2;

export function checkResponse(raw: Uint8Array): number {
  const count = raw.length > 0 ? raw[0] : 0;
  if (count < 4 || count > raw.length) return RESPONSE_EMPTY;
  const crc = atCrc16(raw, 0, count - 2);
  if (raw[count - 2] !== (crc & 0xff) || raw[count - 1] !== crc >> 8) return RESPONSE_BAD_CRC;
  return RESPONSE_OK;
}

/** A checked 4-byte response carries a status; longer ones carry a payload (status success). */
export function responseStatus(raw: Uint8Array): number {
  return raw[0] === 4 ? raw[1] : STATUS_SUCCESS;
}

/** The payload of a checked response (a copy): the bytes between count and CRC. */
export function responsePayload(raw: Uint8Array): Uint8Array {
  return new Uint8Array(raw.subarray(1, raw[0] - 2));
}
