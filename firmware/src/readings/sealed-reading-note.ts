// Which reading a sealed envelope in the outbox holds. The meter cannot read its sealed readings
// back (only the DSO can open them), but after a power cut between storing a reading in the outbox
// and committing its interval boundary to the journal it must know that reading's seq and interval,
// so that neither is used twice (metering/meter.ts start). So the reading's (seq, interval) goes
// into the same outbox record as the envelope (mqtt/outbox.ts "note"): one write, so a cut leaves
// both or neither, and nothing is written to Storage per reading.

import { bytesToUint, uintToBytes } from '../persist/power-safe-record.ts';

export interface NotedReading {
  seq: number;
  interval: number;
}

const NOTE_BYTES = 8;

/** The note stored with a sealed reading: seq and interval, 4 bytes each, big-endian. */
export function encodeSealedReadingNote(seq: number, interval: number): string {
  return uintToBytes(seq, 4) + uintToBytes(interval, 4);
}

/** The reading a note names, or undefined when it is not such a note. */
export function decodeSealedReadingNote(note: string): NotedReading | undefined {
  if (note.length !== NOTE_BYTES) return undefined;
  return { seq: bytesToUint(note, 0, 4), interval: bytesToUint(note, 4, 4) };
}

/** The readings the outbox's notes name (Outbox.notes()), skipping anything that is not such a note. */
export function notedReadings(notes: string[]): NotedReading[] {
  const out: NotedReading[] = [];
  for (let i = 0; i < notes.length; i++) {
    const noted = decodeSealedReadingNote(notes[i]);
    if (noted) out.push(noted);
  }
  return out;
}
