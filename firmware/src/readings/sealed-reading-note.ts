// Which reading went into the outbox last, kept in Storage. The meter cannot read its sealed readings
// back (only the DSO can open them), but after a power cut between storing a reading in the outbox and
// committing its interval boundary to the journal it must know that reading's seq and interval, so
// that neither is used twice (metering/meter.ts start). So before a sealed reading is appended to the
// outbox, its (seq, interval) is noted here. A cut after the note and before the append costs that
// seq number (the DSO sees a gap; the energy stays in the register totals), never a duplicate.
//
// Cut-safe like the key records: reading seq n is noted in file "vg.sn<n mod 2>", so the note of the
// reading before it (the other file) is never touched while this one is written; each note carries a
// CRC-32, and the valid note with the higher seq wins.

import { crc32 } from '../metering/crc32.ts';

export const NOTE_BASE_NAME = 'vg.sn';

export interface NotedReading {
  seq: number;
  interval: number;
}

export interface NoteStorage {
  read(name: string): string | undefined;
  write(name: string, data: string): boolean;
}

function parseNote(text: string | undefined): NotedReading | undefined {
  if (!text || text.length < 10) return undefined;
  const json = text.substring(8);
  if (parseInt(text.substring(0, 8), 16) !== crc32(json, 0, json.length)) return undefined;
  try {
    const raw = JSON.parse(json);
    if (typeof raw.s === 'number' && typeof raw.i === 'number') return { seq: raw.s, interval: raw.i };
  } catch (e) {
    // torn: ignored
  }
  return undefined;
}

export class SealedReadingNote {
  declare private readonly storage: NoteStorage;

  constructor(storage: NoteStorage) {
    this.storage = storage;
  }

  /** Notes a reading about to be appended to the outbox; throws if Storage cannot take it. */
  note(seq: number, interval: number): void {
    const json = JSON.stringify({ s: seq, i: interval });
    const name = NOTE_BASE_NAME + (seq % 2);
    if (!this.storage.write(name, ('0000000' + crc32(json, 0, json.length).toString(16)).slice(-8) + json)) {
      throw new Error('cannot write ' + name + ' (Storage full?)');
    }
  }

  /** The last reading noted, or undefined when there is none. */
  last(): NotedReading | undefined {
    const a = parseNote(this.storage.read(NOTE_BASE_NAME + '0'));
    const b = parseNote(this.storage.read(NOTE_BASE_NAME + '1'));
    if (!a) return b;
    if (!b) return a;
    return a.seq > b.seq ? a : b;
  }
}
