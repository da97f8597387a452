// The interval reading a meter sends at every interval boundary, and its wire format: a deterministic
// CBOR map with small integer keys (compact on the wire and in the outbox). Shared by the firmware and
// the collector. docs/protocol-readings.md describes the same format for readers of the protocol.
//
// Key table (keys are fixed; a reading carries all eight, and no others):
//   1  meterId        text, 1..64 chars of A-Z a-z 0-9 . _ -   (see topics.ts)
//   2  interval       uint, index of the interval (its start time / interval length)
//   3  importWh       uint, energy imported during the interval, Wh
//   4  exportWh       uint, energy exported during the interval, Wh
//   5  importTotalWh  uint, import register after the interval, Wh (>= importWh)
//   6  exportTotalWh  uint, export register after the interval, Wh (>= exportWh)
//   7  seq            uint, reading sequence number: +1 per reading, never reused
//   8  flags          uint, bit set of the FLAG_ constants below
// uint = integer 0..2^53-1. The keys sort as 1..8, so the encoding is a8 01 <meterId> 02 <interval> ...

import { CborError, CborMap, decode, encode, type CborValue } from './cbor.ts';
import { describeValue, uintProblem } from './field-problems.ts';
import { meterIdProblem } from './topics.ts';
import { VeilgridError } from './veilgrid-error.ts';

export interface Reading {
  meterId: string;
  interval: number;
  importWh: number;
  exportWh: number;
  importTotalWh: number;
  exportTotalWh: number;
  seq: number;
  flags: number;
}

/** The meter lost power during this interval: its energy may be short by at most the journal bound. */
export const FLAG_POWER_LOSS = 1;
/** The meter started part-way through this interval (first reading after boot). */
export const FLAG_PARTIAL = 2;
/** The intervals before this one have no reading because the meter was off. */
export const FLAG_AFTER_OUTAGE = 4;
const KNOWN_FLAGS = FLAG_POWER_LOSS | FLAG_PARTIAL | FLAG_AFTER_OUTAGE;

/** Field names in key order: FIELDS[k - 1] is the field stored under CBOR map key k. */
const FIELDS = ['meterId', 'interval', 'importWh', 'exportWh', 'importTotalWh', 'exportTotalWh', 'seq', 'flags'];

export class ReadingFormatError extends VeilgridError {
  /** Every problem found, one sentence each. */
  declare readonly problems: string[];
  constructor(problems: string[]) {
    const message = 'invalid reading: ' + problems.join('; ');
    super('ReadingFormatError', 'reading-format', message);
    this.problems = problems;
  }
}

/** Everything wrong with r as a Reading, one sentence per problem; empty when it is a valid reading. */
export function readingProblems(value: unknown): string[] {
  if (value === null || typeof value !== 'object')
    return ['a reading must be an object (got ' + describeValue(value) + ')'];
  const r = value as { [field: string]: unknown };
  const problems: string[] = [];
  for (let k = 0; k < FIELDS.length; k++) {
    if (r[FIELDS[k]] === undefined) problems.push(FIELDS[k] + ' (key ' + (k + 1) + ') is missing');
  }
  if (problems.length > 0) return problems;
  const idProblem = meterIdProblem(r.meterId);
  if (idProblem) problems.push(idProblem);
  for (let k = 1; k < FIELDS.length; k++) {
    const problem = uintProblem(FIELDS[k], r[FIELDS[k]]);
    if (problem) problems.push(problem);
  }
  if (problems.length > 0) return problems;
  const flags = r.flags as number;
  // Bit operators see only the low 32 bits, so larger values are refused before masking.
  if (flags > 0x7fffffff || (flags & ~KNOWN_FLAGS) !== 0)
    problems.push('flags ' + flags + ' has unknown bits (known: 1 power loss, 2 partial, 4 after outage)');
  if ((r.importWh as number) > (r.importTotalWh as number))
    problems.push('importWh ' + r.importWh + ' exceeds the register importTotalWh ' + r.importTotalWh);
  if ((r.exportWh as number) > (r.exportTotalWh as number))
    problems.push('exportWh ' + r.exportWh + ' exceeds the register exportTotalWh ' + r.exportTotalWh);
  return problems;
}

/** The reading's wire bytes (deterministic CBOR). Throws ReadingFormatError if r is not a valid reading. */
export function encodeReading(r: Reading): Uint8Array {
  const problems = readingProblems(r);
  if (problems.length > 0) throw new ReadingFormatError(problems);
  const fields = r as unknown as { [field: string]: string | number };
  const entries: Array<[number, string | number]> = [];
  for (let k = 0; k < FIELDS.length; k++) entries.push([k + 1, fields[FIELDS[k]]]);
  return encode(new CborMap(entries));
}

/** The reading in bytes; throws ReadingFormatError naming every problem (CBOR, keys, field values). */
export function decodeReading(bytes: Uint8Array): Reading {
  let item: CborValue;
  try {
    item = decode(bytes);
  } catch (err) {
    if (err instanceof CborError) throw new ReadingFormatError(['not deterministic CBOR: ' + err.message]);
    throw err;
  }
  if (!(item instanceof CborMap)) {
    throw new ReadingFormatError(['expected a CBOR map with integer keys 1..8 (got ' + describeValue(item) + ')']);
  }
  const fields: { [field: string]: unknown } = {};
  const problems: string[] = [];
  for (let i = 0; i < item.entries.length; i++) {
    const key = item.entries[i][0];
    if (typeof key === 'number' && key >= 1 && key <= FIELDS.length && key === Math.floor(key)) {
      fields[FIELDS[key - 1]] = item.entries[i][1];
    } else {
      problems.push('unknown key ' + describeValue(key) + ' (a reading has keys 1..8)');
    }
  }
  const fieldProblems = readingProblems(fields);
  for (let i = 0; i < fieldProblems.length; i++) problems.push(fieldProblems[i]);
  if (problems.length > 0) throw new ReadingFormatError(problems);
  return {
    meterId: fields.meterId as string,
    interval: fields.interval as number,
    importWh: fields.importWh as number,
    exportWh: fields.exportWh as number,
    importTotalWh: fields.importTotalWh as number,
    exportTotalWh: fields.exportTotalWh as number,
    seq: fields.seq as number,
    flags: fields.flags as number,
  };
}
