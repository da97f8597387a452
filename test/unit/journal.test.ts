// The energy journal over the emulator's faithful Espruino Storage and NOR flash: commit/restore,
// rotation, torn and corrupt records, and power cuts at every byte of a commit and of a rotation.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Flash, PowerLoss } from '../../boards/emulator/flash.ts';
import { EspruinoStorage } from '../../boards/emulator/storage.ts';
import {
  EnergyJournal,
  JournalError,
  decodeJournalRecord,
  encodeJournalRecord,
  JOURNAL_FILE_BYTES,
  RECORD_BYTES,
  SLOTS_PER_FILE,
  type JournalState,
} from '../../firmware/src/metering/energy-journal.ts';
import { crc32 } from '../../firmware/src/metering/crc32.ts';

const STORAGE_BYTES = 917504; // boards/esp32-meter.json
const PAGE_BYTES = 4096;

function newStorage(sizeBytes = STORAGE_BYTES): { flash: Flash; storage: EspruinoStorage } {
  const flash = new Flash({ sizeBytes, pageBytes: PAGE_BYTES });
  return { flash, storage: new EspruinoStorage(flash) };
}

/** The n-th state of a meter whose registers only grow. */
function stateAt(n: number): JournalState {
  return {
    interval: 1_990_000 + Math.floor(n / 7),
    flags: n % 8,
    nextSeq: 1 + Math.floor(n / 7),
    importPulses: 10 * n + 3_000_000_000, // above 2^31: must survive the record's arithmetic
    exportPulses: 3 * n,
    intervalImportPulses: 10 * (n % 7),
    intervalExportPulses: 3 * (n % 7),
  };
}

function sameState(a: JournalState | null, b: JournalState): boolean {
  return a !== null && (Object.keys(b) as (keyof JournalState)[]).every((key) => a[key] === b[key]);
}

function commitStates(journal: EnergyJournal, from: number, to: number): void {
  for (let n = from; n <= to; n++) journal.commit(stateAt(n));
}

/** Powers the storage back on as the board does (Espruino's boot-time storage check), then restores. */
function bootAndRestore(flash: Flash, storage: EspruinoStorage) {
  flash.restorePower();
  const wiped = storage.checkAtPowerOn();
  const journal = new EnergyJournal(storage);
  return { journal, restored: journal.restore(), wiped };
}

const records = suite('journal records');

records('a record round-trips and is RECORD_BYTES long, with a standard CRC-32', () => {
  const record = encodeJournalRecord(123456, stateAt(99));
  assert.is(record.length, RECORD_BYTES);
  assert.equal(decodeJournalRecord(record), { commitSeq: 123456, state: stateAt(99) });
  // CRC-32 check value of "123456789" (the catalogue's check for CRC-32/ISO-HDLC, as zlib and E.CRC32)
  assert.is(crc32('123456789', 0, 9), 0xcbf43926);
});

records('every single-bit change of a record is detected', () => {
  const record = encodeJournalRecord(7, stateAt(5));
  for (let i = 0; i < record.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const flipped = record.slice(0, i) + String.fromCharCode(record.charCodeAt(i) ^ (1 << bit)) + record.slice(i + 1);
      assert.is(decodeJournalRecord(flipped), null, `byte ${i} bit ${bit}`);
    }
  }
});

records('values that do not fit a record are refused with JournalError, not truncated', () => {
  assert.throws(() => encodeJournalRecord(1, { ...stateAt(1), importPulses: 2 ** 48 }), (e: unknown) => e instanceof JournalError && /import pulses/.test((e as Error).message));
  assert.throws(() => encodeJournalRecord(1, { ...stateAt(1), interval: -1 }), (e: unknown) => e instanceof JournalError);
  assert.throws(() => encodeJournalRecord(1, { ...stateAt(1), flags: 1.5 }), (e: unknown) => e instanceof JournalError);
});

const journal = suite('energy journal');

journal('an empty storage restores nothing and says no files were found', () => {
  const { storage } = newStorage();
  assert.equal(new EnergyJournal(storage).restore(), { state: null, filesFound: false, ignoredRecords: 0 });
});

journal('restore returns the last committed state, and commits continue after it', () => {
  const { storage } = newStorage();
  const j = new EnergyJournal(storage);
  j.restore();
  commitStates(j, 1, 10);
  const again = new EnergyJournal(storage);
  assert.equal(again.restore().state, stateAt(10));
  commitStates(again, 11, 12);
  assert.equal(new EnergyJournal(storage).restore().state, stateAt(12));
});

journal('rotation: a full file is followed by the other one and then erased; one journal file remains', () => {
  const { storage } = newStorage();
  const j = new EnergyJournal(storage);
  j.restore();
  const total = SLOTS_PER_FILE * 2 + 17;
  commitStates(j, 1, total);
  assert.is(j.rotations, 3);
  assert.equal(storage.list(/^vg\.j/), ['vg.j0']);
  const r = new EnergyJournal(storage).restore();
  assert.equal(r.state, stateAt(total));
  assert.is(r.ignoredRecords, 0);
});

journal('restore after a cut between rotation and erase takes the newer file and erases the older', () => {
  const { storage } = newStorage();
  const j = new EnergyJournal(storage);
  j.restore();
  commitStates(j, 1, SLOTS_PER_FILE);
  // What a cut just before the erase leaves: the full file and the new one with its first record.
  storage.write('vg.j1', encodeJournalRecord(SLOTS_PER_FILE + 1, stateAt(SLOTS_PER_FILE + 1)), 0, JOURNAL_FILE_BYTES);
  const again = new EnergyJournal(storage);
  assert.equal(again.restore().state, stateAt(SLOTS_PER_FILE + 1));
  assert.equal(storage.list(/^vg\.j/), ['vg.j1']);
  commitStates(again, SLOTS_PER_FILE + 2, SLOTS_PER_FILE + 5);
  assert.equal(new EnergyJournal(storage).restore().state, stateAt(SLOTS_PER_FILE + 5));
});

journal('a corrupt or torn tail record is ignored and never written over', () => {
  const { storage } = newStorage();
  const j = new EnergyJournal(storage);
  j.restore();
  commitStates(j, 1, 5);
  // A torn sixth record: its first 13 bytes reached the flash.
  storage.write('vg.j0', encodeJournalRecord(6, stateAt(6)).slice(0, 13), 5 * RECORD_BYTES);
  const again = new EnergyJournal(storage);
  const r = again.restore();
  assert.equal(r.state, stateAt(5));
  assert.is(r.ignoredRecords, 1);
  commitStates(again, 6, 8); // would throw "File already written with different data" if slot 6 were reused
  const last = new EnergyJournal(storage).restore();
  assert.equal(last.state, stateAt(8));
  assert.is(last.ignoredRecords, 1);
});

journal('garbage in a journal file never becomes state; a file of only garbage restores nothing but is noticed', () => {
  const { storage } = newStorage();
  storage.write('vg.j0', 'not a journal at all'.padEnd(RECORD_BYTES * 3, '!'), 0, JOURNAL_FILE_BYTES);
  const j = new EnergyJournal(storage);
  assert.equal(j.restore(), { state: null, filesFound: true, ignoredRecords: 3 });
  assert.equal(storage.list(/^vg\.j/), []);
  commitStates(j, 1, 2);
  assert.equal(new EnergyJournal(storage).restore().state, stateAt(2));
});

journal('a full Storage makes commit throw a clear error and keeps the last committed state', () => {
  const { storage } = newStorage(64 * 1024);
  const j = new EnergyJournal(storage);
  j.restore();
  commitStates(j, 1, 3);
  // Fill what is left with a file that cannot be compacted away.
  storage.write('filler', 'x'.repeat(storage.getFree() - 64));
  let error: unknown;
  try {
    commitStates(j, 4, SLOTS_PER_FILE + 10);
  } catch (e) {
    error = e;
  }
  assert.instance(error, Error);
  assert.match((error as Error).message, /Unable to find or create file|Storage/);
  assert.equal(new EnergyJournal(storage).restore().state, stateAt(SLOTS_PER_FILE));
});

/**
 * Cuts power at every byte that committing state `k + 1` programs or erases (after k commits), boots,
 * and checks that the restored state is state k or k + 1 and that commits continue from it.
 */
function sweepCommit(k: number, label: string, prepare?: (storage: EspruinoStorage) => void): { bytes: number; outcomes: Record<string, number> } {
  const measure = newStorage();
  prepare?.(measure.storage);
  const mj = new EnergyJournal(measure.storage);
  mj.restore();
  commitStates(mj, 1, k);
  const before = measure.flash.bytesWritten;
  mj.commit(stateAt(k + 1));
  const bytes = measure.flash.bytesWritten - before;
  const outcomes: Record<string, number> = { previous: 0, new: 0 };
  for (let n = 1; n <= bytes; n++) {
    const { flash, storage } = newStorage();
    prepare?.(storage);
    const j = new EnergyJournal(storage);
    j.restore();
    commitStates(j, 1, k);
    flash.cutPowerAfterBytes(n);
    let cut = false;
    try {
      j.commit(stateAt(k + 1));
    } catch (e) {
      cut = e instanceof PowerLoss;
      if (!cut) throw e;
    }
    assert.ok(cut || n === bytes, `${label}: a cut after ${n} of ${bytes} bytes must interrupt the commit`);
    const boot = bootAndRestore(flash, storage);
    assert.is(boot.wiped, '', `${label}: cut after byte ${n}/${bytes}: Espruino found Storage corrupt and erased it`);
    const state = boot.restored.state;
    const which = sameState(state, stateAt(k + 1)) ? 'new' : sameState(state, stateAt(k)) ? 'previous' : 'other';
    assert.is.not(which, 'other', `${label}: cut after byte ${n}/${bytes} restored ${JSON.stringify(state)}`);
    outcomes[which]++;
    // The journal keeps working from there, and never goes backwards past what it restored.
    commitStates(boot.journal, k + 2, k + 3);
    const after = new EnergyJournal(storage).restore().state;
    assert.equal(after, stateAt(k + 3), `${label}: commits after the cut at byte ${n}`);
  }
  return { bytes, outcomes };
}

journal('a power cut at any byte of a commit leaves the previous or the new state', () => {
  const { bytes, outcomes } = sweepCommit(5, 'slot commit');
  assert.is(bytes, RECORD_BYTES);
  assert.is(outcomes.new, 1); // only the cut after the last byte (power gone as the commit completes)
});

journal('a power cut at any byte of a rotation leaves the previous or the new state, and Storage stays valid', () => {
  const { bytes, outcomes } = sweepCommit(SLOTS_PER_FILE, 'rotation');
  // header (32) + first record (40) + erasing the old file's name (4)
  assert.is(bytes, 32 + RECORD_BYTES + 4);
  assert.ok(outcomes.new >= 5 && outcomes.previous >= 70, JSON.stringify(outcomes));
});

journal.run();
records.run();
