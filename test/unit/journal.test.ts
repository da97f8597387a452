// The energy journal on its raw-flash ring (emulated NOR flash and Espruino Flash module): the record,
// commit/restore, wrap-around, torn records, and a power cut at every byte of a commit, including the
// commits that erase the next page.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PowerLoss } from '../../boards/emulator/flash.ts';
import {
  EnergyJournal,
  JournalError,
  decodeJournalState,
  encodeJournalState,
  JOURNAL_PAYLOAD_BYTES,
  type JournalState,
} from '../../firmware/src/metering/energy-journal.ts';
import { recordBytes } from '../../firmware/src/persist/power-safe-record.ts';
import { emulatedPartition, PAGE_BYTES, PARTITION, type EmulatedPartition } from '../support/flash-rings.ts';

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

function commitStates(journal: EnergyJournal, from: number, to: number): void {
  for (let n = from; n <= to; n++) journal.commit(stateAt(n));
}

function restoreFrom(p: EmulatedPartition) {
  return new EnergyJournal(p.journalRing()).restore();
}

const records = suite('journal records');

records('a state round-trips, values above 2^31 included; out-of-range values are refused', () => {
  const payload = encodeJournalState(stateAt(99));
  assert.is(payload.length, JOURNAL_PAYLOAD_BYTES);
  assert.equal(decodeJournalState(payload), stateAt(99));
  assert.equal(decodeJournalState(encodeJournalState({ ...stateAt(1), importPulses: 2 ** 48 - 1 })), {
    ...stateAt(1),
    importPulses: 2 ** 48 - 1,
  });
  assert.throws(
    () => encodeJournalState({ ...stateAt(1), importPulses: 2 ** 48 }),
    (e: unknown) => e instanceof JournalError,
  );
  assert.throws(
    () => encodeJournalState({ ...stateAt(1), flags: 1.5 }),
    (e: unknown) => e instanceof JournalError,
  );
  assert.is(decodeJournalState(payload.slice(0, -1)), null);
  assert.is(decodeJournalState('\x02' + payload.slice(1)), null, 'another format');
  assert.is(
    decodeJournalState(
      encodeJournalState({ ...stateAt(3), intervalImportPulses: 0 }).slice(0, 22) +
        '\xff\xff\xff\xff' +
        payload.slice(26),
    ),
    null,
    'interval beyond the register',
  );
});

const journal = suite('journal');

journal('a fresh partition restores nothing; commits restore the newest state', () => {
  const p = emulatedPartition();
  assert.equal(restoreFrom(p), { state: null, filesFound: false, ignoredRecords: 0 });
  const j = new EnergyJournal(p.journalRing());
  j.restore();
  commitStates(j, 1, 12);
  assert.equal(restoreFrom(p), { state: stateAt(12), filesFound: true, ignoredRecords: 0 });
});

journal('commits wrap around the journal pages for ever, one erase per page filled', () => {
  const p = emulatedPartition();
  const ring = p.journalRing();
  const j = new EnergyJournal(ring);
  j.restore();
  const perPage = Math.floor(PAGE_BYTES / recordBytes(JOURNAL_PAYLOAD_BYTES));
  const total = perPage * p.journalArea.pages * 3 + 5;
  for (let n = 1; n <= total; n++) {
    j.commit(stateAt(n));
    if (n % 333 === 0) assert.equal(restoreFrom(p).state, stateAt(n));
  }
  assert.is(ring.erases, Math.ceil(total / perPage));
  assert.equal(restoreFrom(p).state, stateAt(total));
  // The outbox's pages are untouched.
  assert.ok(p.flash.read(p.outboxArea.addr - PARTITION.addr, p.outboxArea.pages * PAGE_BYTES).every((b) => b === 0xff));
});

journal(
  'a power cut at every byte of a commit, and of the commits that erase a page, leaves the old or the new state',
  () => {
    const perPage = Math.floor(PAGE_BYTES / recordBytes(JOURNAL_PAYLOAD_BYTES));
    // Commit number `at` is the last in a page (plain write) or the first of the next (erase + write).
    for (const at of [7, perPage, perPage + 1, perPage * 4 + 1]) {
      const setup = () => {
        const p = emulatedPartition();
        const j = new EnergyJournal(p.journalRing());
        j.restore();
        commitStates(j, 1, at - 1);
        return { p, j };
      };
      const units = (() => {
        const { p, j } = setup();
        const before = p.flash.bytesWritten;
        j.commit(stateAt(at));
        return p.flash.bytesWritten - before;
      })();
      let newer = 0;
      for (let k = 1; k <= units; k += units > PAGE_BYTES && k < PAGE_BYTES ? 13 : 1) {
        const { p, j } = setup();
        p.flash.cutPowerAfterBytes(k);
        assert.throws(
          () => j.commit(stateAt(at)),
          (e: unknown) => e instanceof PowerLoss,
        );
        p.flash.restorePower();
        const restored = restoreFrom(p);
        if (restored.state && restored.state.importPulses === stateAt(at).importPulses) {
          assert.equal(restored.state, stateAt(at));
          newer++;
        } else assert.equal(restored.state, stateAt(at - 1), `commit ${at}, cut at unit ${k} of ${units}`);
        // And the journal goes on from there.
        const again = new EnergyJournal(p.journalRing());
        again.restore();
        again.commit(stateAt(at + 1));
        assert.equal(restoreFrom(p).state, stateAt(at + 1));
      }
      assert.ok(newer >= 1 && newer <= 4, `only cuts after the CRC keep commit ${at} (${newer})`);
    }
  },
);

records.run();
journal.run();
