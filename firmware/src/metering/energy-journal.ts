// The power-loss-safe energy journal: the meter's registers and its open interval, kept in a ring
// of records on raw flash (persist/flash-ring.ts, outside Storage) so that a power cut at any
// instant leaves the last committed state readable, and no journal write ever makes Storage compact.
//
// Each record holds the whole state, so the newest valid record is all restore needs; the ring's
// record format (persist/power-safe-record.ts) gives it a sequence number and a CRC, and a record
// torn by a cut is skipped. docs/energy-journal.md has the reasoning, the wear and the loss bound.

import type { FlashRing } from '../persist/flash-ring.ts';
import { bytesToUint, uintToBytes } from '../persist/power-safe-record.ts';
import { VeilgridError } from '../protocol/veilgrid-error.ts';

/** What the journal keeps: enough to resume counting and to finish the open interval's reading. */
export interface JournalState {
  /** Index of the interval whose reading is not yet published (0: none opened yet). */
  interval: number;
  /** Reading flags gathered so far for the open interval. */
  flags: number;
  /** Sequence number the next reading gets. */
  nextSeq: number;
  /** Register totals, in S0 pulses. */
  importPulses: number;
  exportPulses: number;
  /** Pulses counted in the open interval so far (part of the totals). */
  intervalImportPulses: number;
  intervalExportPulses: number;
}

/** What restore found. */
export interface JournalRestore {
  /** The newest committed state, or null when there is none. */
  state: JournalState | null;
  /** Journal records were present, valid or not (false on a meter's very first boot). */
  filesFound: boolean;
  /** Torn or corrupt records met while looking for the newest (a cut during a write leaves one). */
  ignoredRecords: number;
}

/** Payload bytes of one journal record. */
export const JOURNAL_PAYLOAD_BYTES = 30;
const FORMAT = 1;
const UINT32_LIMIT = 4294967296;
const UINT48_LIMIT = 281474976710656;

/** The journal could not write its record. The state in RAM is unchanged. */
export class JournalError extends VeilgridError {
  constructor(message: string) {
    super('JournalError', 'journal', message);
  }
}

// Payload layout, big-endian:
//   0 format (1)   1 flags   2-5 interval   6-9 next reading seq   10-15 import pulses
//   16-21 export pulses   22-25 interval import pulses   26-29 interval export pulses

function field(value: number, width: number, limit: number, what: string): string {
  if (!(value >= 0 && value < limit && Math.floor(value) === value)) {
    throw new JournalError('journal: ' + what + ' ' + value + ' does not fit a record');
  }
  return uintToBytes(value, width);
}

/** Encodes a state as a journal record's payload. */
export function encodeJournalState(s: JournalState): string {
  return (
    String.fromCharCode(FORMAT) +
    field(s.flags, 1, 256, 'flags') +
    field(s.interval, 4, UINT32_LIMIT, 'interval') +
    field(s.nextSeq, 4, UINT32_LIMIT, 'reading sequence') +
    field(s.importPulses, 6, UINT48_LIMIT, 'import pulses') +
    field(s.exportPulses, 6, UINT48_LIMIT, 'export pulses') +
    field(s.intervalImportPulses, 4, UINT32_LIMIT, 'interval import pulses') +
    field(s.intervalExportPulses, 4, UINT32_LIMIT, 'interval export pulses')
  );
}

/** Decodes a journal payload; null when it is of another format or inconsistent. */
export function decodeJournalState(p: string): JournalState | null {
  if (p.length !== JOURNAL_PAYLOAD_BYTES || p.charCodeAt(0) !== FORMAT) return null;
  const state: JournalState = {
    flags: bytesToUint(p, 1, 1),
    interval: bytesToUint(p, 2, 4),
    nextSeq: bytesToUint(p, 6, 4),
    importPulses: bytesToUint(p, 10, 6),
    exportPulses: bytesToUint(p, 16, 6),
    intervalImportPulses: bytesToUint(p, 22, 4),
    intervalExportPulses: bytesToUint(p, 26, 4),
  };
  if (state.intervalImportPulses > state.importPulses || state.intervalExportPulses > state.exportPulses) return null;
  return state;
}

export class EnergyJournal {
  private readonly ring: FlashRing;
  /** Records written since construction (for wear figures). */
  commits: number;

  constructor(ring: FlashRing) {
    this.ring = ring;
    this.commits = 0;
  }

  /** Reads the ring and returns the newest committed state. */
  restore(): JournalRestore {
    const ring = this.ring;
    ring.recover();
    const newest = ring.newest();
    const state = newest === undefined ? null : decodeJournalState(newest);
    return { state: state, filesFound: ring.headSeq() > 0 || ring.tornRecords > 0, ignoredRecords: ring.tornRecords };
  }

  /**
   * Makes `state` the committed state. When this returns, a power cut leaves `state` readable; a cut
   * during the call leaves either `state` or the previous committed state. Throws when the flash
   * write fails; the previous state stays readable.
   */
  commit(state: JournalState): void {
    // Only the newest record is needed, so the ring can always take one (it is never full).
    this.ring.append(encodeJournalState(state));
    this.commits++;
  }
}
