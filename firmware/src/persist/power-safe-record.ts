// The one power-safe record format of the firmware (docs/energy-journal.md, "The record"): every
// record that the meter writes to raw flash (energy journal, outbox messages with their notes) is
// framed like this, so that a power cut at any byte leaves either the whole record or one that
// fails its check, never a record that reads as something else.
//
//   0-1    payload length L (big-endian); 0xFFFF = never written (erased flash)
//   2-5    sequence number (1, 2, 3 ... per ring; never reused)
//   6-9    keep-from: the lowest sequence number still needed when this record was written
//   10..   payload (L bytes)
//   10+L   CRC-32 (IEEE, as E.CRC32) of bytes 0 .. 10+L-1, big-endian
//   then 0xFF padding (left unwritten) up to a multiple of 4: records start on flash words, so
//   Espruino's word-aligned writes (jshFlashWriteAligned) never touch the record before.
//
// Big-endian fields are written with arithmetic, not bit operations, so values above 2^31 survive
// Espruino's 32-bit integers.

import { crc32 } from './crc32.ts';

export const RECORD_HEADER_BYTES = 10;
export const RECORD_CRC_BYTES = 4;
/** The length field of erased flash. */
export const UNWRITTEN_LENGTH = 0xffff;
/** Largest sequence number: the field is 32 bits and 0xFFFFFFFF is erased flash. */
export const MAX_RECORD_SEQ = 4294967294;

export interface RecordHeader {
  length: number;
  seq: number;
  keepFrom: number;
}

/** Bytes a record with `payloadLength` bytes of payload takes in flash, padding included. */
export function recordBytes(payloadLength: number): number {
  return Math.ceil((RECORD_HEADER_BYTES + payloadLength + RECORD_CRC_BYTES) / 4) * 4;
}

/** `value` as `width` big-endian bytes of an 8-bit string. */
export function uintToBytes(value: number, width: number): string {
  let out = '';
  for (let shift = width - 1; shift >= 0; shift--) {
    const unit = Math.pow(256, shift);
    const byte = Math.floor(value / unit);
    out += String.fromCharCode(byte);
    value -= byte * unit;
  }
  return out;
}

/** The unsigned big-endian number in `width` chars of `data` from `offset`. */
export function bytesToUint(data: string, offset: number, width: number): number {
  let value = 0;
  for (let i = 0; i < width; i++) value = value * 256 + (data.charCodeAt(offset + i) & 0xff);
  return value;
}

/** The record's bytes (without padding: the flash keeps 0xFF there). */
export function encodeRecord(seq: number, keepFrom: number, payload: string): string {
  if (payload.length >= UNWRITTEN_LENGTH)
    throw new Error('record payload of ' + payload.length + ' bytes is too long (at most 65534)');
  if (!(seq >= 1 && seq <= MAX_RECORD_SEQ && keepFrom >= 0 && keepFrom <= seq)) {
    throw new Error('record seq ' + seq + ' / keep-from ' + keepFrom + ' out of range');
  }
  const body = uintToBytes(payload.length, 2) + uintToBytes(seq, 4) + uintToBytes(keepFrom, 4) + payload;
  return body + uintToBytes(crc32(body, 0, body.length), 4);
}

/** The header fields in the first RECORD_HEADER_BYTES chars of `data` (not yet checked). */
export function decodeRecordHeader(data: string): RecordHeader {
  return { length: bytesToUint(data, 0, 2), seq: bytesToUint(data, 2, 4), keepFrom: bytesToUint(data, 6, 4) };
}

/** The payload of a whole record read back from flash, or undefined when it is torn or corrupt. */
export function recordPayload(record: string): string | undefined {
  if (record.length < RECORD_HEADER_BYTES + RECORD_CRC_BYTES) return undefined;
  const length = bytesToUint(record, 0, 2);
  const end = RECORD_HEADER_BYTES + length;
  if (length === UNWRITTEN_LENGTH || end + RECORD_CRC_BYTES > record.length) return undefined;
  if (bytesToUint(record, end, 4) !== crc32(record, 0, end)) return undefined;
  return record.substring(RECORD_HEADER_BYTES, end);
}
