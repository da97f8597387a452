// The power-loss-safe energy journal: the meter's registers and its open interval, kept in Storage
// so that a power cut at any instant leaves the last committed state readable.
//
// How (see docs/energy-journal.md for the reasoning, the wear figures and the loss bound):
// - Two Storage files, `<base>0` and `<base>1`, each created once with room for SLOTS_PER_FILE
//   fixed-size records and then filled slot by slot with Storage.write(name, record, offset). A file
//   is never rewritten in place: Espruino writes at an offset only into erased (0xFF) bytes.
// - A record is self-contained (the whole state) with a commit sequence number and a CRC-32. A cut
//   while a record is written leaves a slot that fails its CRC: it is skipped, never written again,
//   and the record before it is the committed state.
// - When a file is full, the next record goes to slot 0 of the other file (Storage creates it anew),
//   and only after that write returned is the full file erased. A cut in between leaves two files;
//   restore takes the record with the highest sequence number and erases the other file.

import { crc32 } from './crc32.ts';

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
  /** Journal files were present (false on a meter's very first boot). */
  filesFound: boolean;
  /** Slots holding a torn or corrupt record (a cut during a write leaves one). */
  ignoredRecords: number;
}

export const JOURNAL_BASE_NAME = 'vg.j';
export const RECORD_BYTES = 40;
export const SLOTS_PER_FILE = 400;
export const JOURNAL_FILE_BYTES = RECORD_BYTES * SLOTS_PER_FILE;
const FORMAT = 1;
const UINT32_LIMIT = 4294967296;
const UINT48_LIMIT = 281474976710656;

/** The journal could not write to Storage (full, or failing). The state in RAM is unchanged. */
export class JournalError extends Error {
  constructor(message: string) {
    super(message);
    this.message = message;
    this.name = 'JournalError';
  }
}

// Record layout, big-endian:
//   0 format (1)   1 flags   2-5 commit seq   6-9 interval   10-13 next reading seq
//   14-19 import pulses   20-25 export pulses   26-29 interval import pulses
//   30-33 interval export pulses   34-35 zero   36-39 CRC-32 of bytes 0-35

function putUint(bytes: number[], value: number, width: number, limit: number, what: string): void {
  if (!(value >= 0 && value < limit && Math.floor(value) === value)) {
    throw new JournalError('journal: ' + what + ' ' + value + ' does not fit a record');
  }
  // Arithmetic, not bit operations: values above 2^31 must not pass through int32.
  for (let shift = width - 1; shift >= 0; shift--) {
    const unit = Math.pow(256, shift);
    const byte = Math.floor(value / unit);
    bytes.push(byte);
    value -= byte * unit;
  }
}

function getUint(record: string, offset: number, width: number): number {
  let value = 0;
  for (let i = 0; i < width; i++) value = value * 256 + (record.charCodeAt(offset + i) & 0xff);
  return value;
}

/** Encodes one record (RECORD_BYTES chars of an 8-bit string). */
export function encodeJournalRecord(commitSeq: number, s: JournalState): string {
  const bytes: number[] = [FORMAT];
  putUint(bytes, s.flags, 1, 256, 'flags');
  putUint(bytes, commitSeq, 4, UINT32_LIMIT, 'commit sequence');
  putUint(bytes, s.interval, 4, UINT32_LIMIT, 'interval');
  putUint(bytes, s.nextSeq, 4, UINT32_LIMIT, 'reading sequence');
  putUint(bytes, s.importPulses, 6, UINT48_LIMIT, 'import pulses');
  putUint(bytes, s.exportPulses, 6, UINT48_LIMIT, 'export pulses');
  putUint(bytes, s.intervalImportPulses, 4, UINT32_LIMIT, 'interval import pulses');
  putUint(bytes, s.intervalExportPulses, 4, UINT32_LIMIT, 'interval export pulses');
  bytes.push(0, 0);
  let record = '';
  for (let i = 0; i < bytes.length; i++) record += String.fromCharCode(bytes[i]);
  const crc = crc32(record, 0, record.length);
  return record + String.fromCharCode((crc >>> 24) & 0xff, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff);
}

/** Decodes a record; null when it is torn, corrupt or of another format. */
export function decodeJournalRecord(record: string): { commitSeq: number; state: JournalState } | null {
  if (record.length !== RECORD_BYTES || record.charCodeAt(0) !== FORMAT) return null;
  if (getUint(record, RECORD_BYTES - 4, 4) !== crc32(record, 0, RECORD_BYTES - 4)) return null;
  const state: JournalState = {
    flags: getUint(record, 1, 1),
    interval: getUint(record, 6, 4),
    nextSeq: getUint(record, 10, 4),
    importPulses: getUint(record, 14, 6),
    exportPulses: getUint(record, 20, 6),
    intervalImportPulses: getUint(record, 26, 4),
    intervalExportPulses: getUint(record, 30, 4),
  };
  if (state.intervalImportPulses > state.importPulses || state.intervalExportPulses > state.exportPulses) return null;
  return { commitSeq: getUint(record, 2, 4), state: state };
}

function isErased(chunk: string): boolean {
  for (let i = 0; i < chunk.length; i++) if (chunk.charCodeAt(i) !== 0xff) return false;
  return true;
}

/** One file's contents as restore sees them. */
interface FileScan {
  best: { commitSeq: number; state: JournalState } | null;
  /** First never-written slot (SLOTS_PER_FILE when full). */
  freeSlot: number;
  ignored: number;
}

export class EnergyJournal {
  private storage: StorageModule;
  private names: string[];
  /** Index into names of the file being filled, -1 before the first commit. */
  private active: number;
  private nextSlot: number;
  private commitSeq: number;
  /** Records written since construction (for wear figures). */
  commits: number;
  /** Files started since construction. */
  rotations: number;

  constructor(storage: StorageModule, baseName?: string) {
    const base = baseName ?? JOURNAL_BASE_NAME;
    this.storage = storage;
    this.names = [base + '0', base + '1'];
    this.active = -1;
    this.nextSlot = 0;
    this.commitSeq = 0;
    this.commits = 0;
    this.rotations = 0;
  }

  /** Reads both files, returns the newest committed state and prepares the next write. */
  restore(): JournalRestore {
    const scans: (FileScan | null)[] = [this.scan(this.names[0]), this.scan(this.names[1])];
    let chosen = -1;
    let ignored = 0;
    for (let f = 0; f < 2; f++) {
      const scan = scans[f];
      if (!scan) continue;
      ignored += scan.ignored;
      if (scan.best && (chosen < 0 || scan.best.commitSeq > (scans[chosen] as FileScan).best!.commitSeq)) chosen = f;
    }
    const filesFound = scans[0] !== null || scans[1] !== null;
    // The file not chosen is either the full one a rotation finished with, or a new one whose first
    // record was torn: either way nothing in it is needed.
    for (let f = 0; f < 2; f++) {
      if (scans[f] && f !== chosen) this.storage.erase(this.names[f]);
    }
    if (chosen < 0) {
      this.active = -1;
      this.nextSlot = 0;
      this.commitSeq = 0;
      return { state: null, filesFound: filesFound, ignoredRecords: ignored };
    }
    const scan = scans[chosen] as FileScan;
    this.active = chosen;
    this.nextSlot = scan.freeSlot;
    this.commitSeq = scan.best!.commitSeq;
    return { state: scan.best!.state, filesFound: true, ignoredRecords: ignored };
  }

  /**
   * Makes `state` the committed state. When this returns, a power cut leaves `state` readable; a cut
   * during the call leaves either `state` or the previous committed state. Throws (Storage's error,
   * or JournalError) when Storage refuses the write, e.g. when full; the previous state stays readable.
   */
  commit(state: JournalState): void {
    const seq = this.commitSeq + 1;
    const record = encodeJournalRecord(seq, state);
    if (this.active >= 0 && this.nextSlot < SLOTS_PER_FILE) {
      const slot = this.nextSlot;
      // Whatever happens, this slot is not written again: it may now hold part of a record.
      this.nextSlot++;
      this.write(this.names[this.active], record, slot * RECORD_BYTES, 0);
    } else {
      const next = this.active < 0 ? 0 : 1 - this.active;
      this.write(this.names[next], record, 0, JOURNAL_FILE_BYTES);
      // Only now, with a committed record in the new file, may the full one go.
      if (this.active >= 0) this.storage.erase(this.names[this.active]);
      this.active = next;
      this.nextSlot = 1;
      this.rotations++;
    }
    this.commitSeq = seq;
    this.commits++;
  }

  /** Storage's own exceptions pass through as they are: they say what went wrong (e.g. "Unable to find or create file"). */
  private write(name: string, record: string, offset: number, size: number): void {
    const ok = size > 0 ? this.storage.write(name, record, offset, size) : this.storage.write(name, record, offset);
    if (!ok) throw new JournalError('journal: Storage refused to write ' + name + ' (is it full? see Storage.getFree())');
  }

  private scan(name: string): FileScan | null {
    // One read of the whole file: on the device it is a view of memory-mapped flash, not a RAM copy.
    const contents = this.storage.read(name);
    if (contents === undefined) return null;
    const scan: FileScan = { best: null, freeSlot: SLOTS_PER_FILE, ignored: 0 };
    for (let slot = 0; slot < SLOTS_PER_FILE; slot++) {
      const record = contents.substring(slot * RECORD_BYTES, (slot + 1) * RECORD_BYTES);
      if (record.length < RECORD_BYTES || isErased(record)) {
        scan.freeSlot = slot;
        break;
      }
      const decoded = decodeJournalRecord(record);
      if (!decoded) scan.ignored++;
      else if (!scan.best || decoded.commitSeq > scan.best.commitSeq) scan.best = decoded;
    }
    return scan;
  }
}
