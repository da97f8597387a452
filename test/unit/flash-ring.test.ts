// The power-safe record format and the flash ring (firmware/src/persist/) on the emulator's NOR flash
// and Espruino Flash module model: append/recover, wrap-around, a full ring, and power cuts at every
// byte of a record write and inside page erases (a cut erase leaves the page partially erased).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { Flash } from '../../boards/emulator/flash.ts';
import { EspruinoFlashModule } from '../../boards/emulator/flash-module.ts';
import { PARTITION } from '../support/flash-rings.ts';
import { cutDuring } from '../support/power-cut.ts';
import { FlashRing, RingFullError, type RingArea } from '../../firmware/src/persist/flash-ring.ts';
import {
  encodeRecord,
  recordBytes,
  recordPayload,
  RECORD_HEADER_BYTES,
} from '../../firmware/src/persist/power-safe-record.ts';
import { NamedRecords } from '../../firmware/src/persist/named-records.ts';

const PAGE = 4096;
const BASE = PARTITION.addr;

function newRing(pages = 4) {
  const flash = new Flash({ sizeBytes: pages * PAGE, pageBytes: PAGE });
  const module = new EspruinoFlashModule(flash, BASE);
  const area: RingArea = { addr: BASE, pageBytes: PAGE, pages };
  return {
    flash,
    module,
    area,
    ring: new FlashRing(module, area),
    reopen: () => {
      const r = new FlashRing(module, area);
      r.recover();
      return r;
    },
  };
}

function payloadOf(n: number, length = 30): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode((n * 31 + i * 7) & 0xff);
  return s;
}

function live(ring: FlashRing): string[] {
  const out: string[] = [];
  ring.forEach(0, (r) => void out.push(r.payload));
  return out;
}

const format = suite('power-safe record');

format('a record is header + payload + standard CRC-32, padded to whole words', () => {
  const record = encodeRecord(7, 5, 'hello');
  assert.is(record.length, RECORD_HEADER_BYTES + 5 + 4);
  assert.is(recordBytes(5), 20);
  const crc = zlibCrc32(Buffer.from(record.slice(0, -4), 'latin1'));
  assert.is(Buffer.from(record.slice(-4), 'latin1').readUInt32BE(0), crc);
  assert.is(recordPayload(record + '\xff\xff\xff'), 'hello');
  for (let i = 0; i < record.length; i++) {
    const flipped = record.slice(0, i) + String.fromCharCode(record.charCodeAt(i) ^ 0x10) + record.slice(i + 1);
    assert.is(recordPayload(flipped), undefined, `a flipped bit in byte ${i} is detected`);
  }
  assert.throws(() => encodeRecord(3, 4, 'x'), /out of range/);
});

const ring = suite('flash ring');

ring('an empty ring has no records; appends come back in order after re-opening', () => {
  const r = newRing();
  r.ring.recover();
  assert.is(r.ring.headSeq(), 0);
  assert.is(r.ring.newest(), undefined);
  for (let n = 1; n <= 5; n++) assert.is(r.ring.append(payloadOf(n), 1), n);
  const again = r.reopen();
  assert.is(again.headSeq(), 5);
  assert.equal(
    live(again),
    [1, 2, 3, 4, 5].map((n) => payloadOf(n)),
  );
  assert.is(again.newest(), payloadOf(5));
  assert.is(again.append(payloadOf(6), 4), 6);
  assert.equal(
    live(r.reopen()),
    [4, 5, 6].map((n) => payloadOf(n)),
    'keep-from hides what is no longer needed',
  );
});

ring('journal use (only the newest matters) wraps around the pages for ever, one erase per page filled', () => {
  const r = newRing(4);
  r.ring.recover();
  const perPage = Math.floor(PAGE / recordBytes(30));
  const total = perPage * 4 * 3 + 17; // three times round and a bit
  for (let n = 1; n <= total; n++) {
    r.ring.append(payloadOf(n));
    if (n % 211 === 0) assert.is(r.reopen().newest(), payloadOf(n), `newest after ${n}`);
  }
  assert.is(r.ring.erases, Math.ceil(total / perPage));
  const again = r.reopen();
  assert.is(again.newest(), payloadOf(total));
  assert.equal(live(again), [payloadOf(total)]);
});

ring('a full ring refuses a record without writing anything, and takes more once keep-from moves on', () => {
  const r = newRing(3);
  r.ring.recover();
  let n = 0;
  let error: unknown;
  try {
    for (;;) r.ring.append(payloadOf(++n, 200), 1);
  } catch (e) {
    error = e;
  }
  assert.instance(error, RingFullError);
  const stored = n - 1;
  const perPage = Math.floor(PAGE / recordBytes(200));
  assert.is(stored, perPage * 3, 'every page full');
  const before = r.flash.bytesWritten;
  assert.throws(
    () => r.ring.append(payloadOf(999, 200), 1),
    (e: unknown) => e instanceof RingFullError,
  );
  assert.is(r.flash.bytesWritten, before, 'nothing written');
  assert.is(r.reopen().headSeq(), stored);
  // Everything in the first page is no longer needed: the ring goes on there.
  const seq = r.ring.append(payloadOf(1000, 200), perPage + 1);
  assert.is(seq, stored + 1);
  const again = r.reopen();
  assert.is(live(again).length, stored + 1 - perPage);
  assert.is(again.newest(), payloadOf(1000, 200));
});

ring('a record too large for a page is refused with a clear error', () => {
  const r = newRing();
  r.ring.recover();
  assert.throws(() => r.ring.append('x'.repeat(PAGE)), /does not fit a 4096-byte flash page/);
});

ring('a power cut at every byte of a record write leaves the previous records, or the new one too', () => {
  const setup = () => {
    const r = newRing(3);
    r.ring.recover();
    for (let n = 1; n <= 4; n++) r.ring.append(payloadOf(n, 60), 1);
    return r;
  };
  const units = recordBytes(60);
  const outcomes = { previous: 0, newest: 0 };
  for (let k = 1; k <= units; k++) {
    const r = setup();
    assert.ok(
      cutDuring(r.flash, k, () => r.ring.append(payloadOf(5, 60), 1)),
      `cut at ${k}`,
    );
    const after = r.reopen();
    const expected = [1, 2, 3, 4].map((n) => payloadOf(n, 60));
    if (after.headSeq() === 5) {
      outcomes.newest++;
      expected.push(payloadOf(5, 60));
    } else {
      outcomes.previous++;
      assert.is(after.headSeq(), 4);
    }
    assert.equal(live(after), expected, `records after a cut at byte ${k}`);
    // The meter goes on: the next record is readable, and so is everything before it.
    const seq = after.append(payloadOf(6, 60), 1);
    assert.equal(live(r.reopen()), [...expected, payloadOf(6, 60)], `append after a cut at byte ${k} (seq ${seq})`);
  }
  // Bytes go in ascending order, the CRC last: only a cut after the CRC's last byte keeps the new record
  // (the padding after it is part of the last word Espruino writes).
  const written = RECORD_HEADER_BYTES + 60 + 4;
  assert.equal(outcomes, { previous: written - 1, newest: units - written + 1 });
});

ring('a power cut inside the erase of the next page (left partially erased) loses nothing that is still needed', () => {
  const perPage = Math.floor(PAGE / recordBytes(200));
  const setup = () => {
    const r = newRing(3);
    r.ring.recover();
    // Three full pages; the first one's records are no longer needed, the others are.
    for (let n = 1; n <= perPage * 3; n++) r.ring.append(payloadOf(n, 200), 1);
    return r;
  };
  const keepFrom = perPage + 1;
  const expected = (extra: number[]) => [
    ...Array.from({ length: perPage * 2 }, (_, i) => payloadOf(keepFrom + i, 200)),
    ...extra.map((n) => payloadOf(n, 200)),
  ];
  const units = PAGE + recordBytes(200);
  let cuts = 0;
  for (let k = 1; k <= units; k += k < PAGE ? 97 : 1) {
    const r = setup();
    assert.ok(
      cutDuring(r.flash, k, () => r.ring.append(payloadOf(9000, 200), keepFrom)),
      `cut at ${k}`,
    );
    cuts++;
    const after = r.reopen();
    const got = live(after);
    // Before keep-from was persisted, the first page's old records may read as needed again (sent twice: at-least-once).
    const needed = got.filter((p) => expected([]).includes(p) || p === payloadOf(9000, 200));
    assert.equal(needed.slice(0, perPage * 2), expected([]), `needed records after a cut at unit ${k}`);
    after.append(payloadOf(9001, 200), keepFrom);
    const final = live(r.reopen());
    assert.ok(
      expected([]).every((p) => final.includes(p)) && final.includes(payloadOf(9001, 200)),
      `after a cut at unit ${k} the ring goes on`,
    );
  }
  assert.ok(cuts > 100);
});

ring(
  'a page left partially erased by a cut, with no keep-from beyond it, never blocks the ring or yields garbage',
  () => {
    const r = newRing(2);
    r.ring.recover();
    const perPage = Math.floor(PAGE / recordBytes(30));
    for (let n = 1; n <= perPage * 2; n++) r.ring.append(payloadOf(n));
    for (let k = 1; k < PAGE; k += 331) {
      const copy = new Flash({ sizeBytes: 2 * PAGE, pageBytes: PAGE });
      copy.program(0, r.flash.read(0, 2 * PAGE));
      const module = new EspruinoFlashModule(copy, BASE);
      const area = { addr: BASE, pageBytes: PAGE, pages: 2 };
      const ring1 = new FlashRing(module, area);
      ring1.recover();
      assert.ok(cutDuring(copy, k, () => ring1.append(payloadOf(5000))));
      const ring2 = new FlashRing(module, area);
      ring2.recover();
      assert.is(ring2.newest(), payloadOf(perPage * 2), `newest after an erase cut at ${k}`);
      ring2.append(payloadOf(5001));
      const ring3 = new FlashRing(module, area);
      ring3.recover();
      assert.equal(live(ring3), [payloadOf(5001)]);
    }
  },
);

const named = suite('named records');

named(
  'two names written in turn for ever (key records) keep the newest of each, also after a cut at every byte',
  () => {
    const r = newRing(2);
    let store = new NamedRecords(r.ring);
    const value = (n: number) => `{"r":${n},"pk":"${'ab'.repeat(65)}","cert":"${'cd'.repeat(200)}"}`;
    for (let n = 1; n <= 60; n++) assert.ok(store.write(`vg.rk${n % 2}`, value(n)), `write ${n}`);
    store = new NamedRecords(r.reopen());
    assert.equal([store.read('vg.rk0'), store.read('vg.rk1'), store.read('other')], [value(60), value(59), undefined]);
    const units = (() => {
      const before = r.flash.bytesWritten;
      new NamedRecords(r.reopen()).write('vg.rk1', value(61));
      return r.flash.bytesWritten - before;
    })();
    for (let k = 1; k <= units; k += 7) {
      const copy = new Flash({ sizeBytes: 2 * PAGE, pageBytes: PAGE });
      copy.program(0, r.flash.read(0, 2 * PAGE));
      const module = new EspruinoFlashModule(copy, BASE);
      const area = { addr: BASE, pageBytes: PAGE, pages: 2 };
      cutDuring(copy, k, () => new NamedRecords(new FlashRing(module, area)).write('vg.rk0', value(62)));
      const after = new NamedRecords(new FlashRing(module, area));
      assert.is(after.read('vg.rk1'), value(61), `the other name after a cut at ${k}`);
      assert.ok([value(60), value(62)].includes(after.read('vg.rk0')!), `the written name after a cut at ${k}`);
    }
  },
);

named('cuts in a row, each tearing a write, never make the store refuse a later one (two pages)', () => {
  const r = newRing(2);
  const value = (n: number) => `{"r":${n},"pk":"${'ab'.repeat(65)}","cert":"${'cd'.repeat(200)}"}`;
  const expected: Record<string, string> = { 'vg.rk1': value(0) };
  assert.ok(new NamedRecords(r.reopen()).write('vg.rk1', value(0)));
  let n = 0;
  // One name written again and again (a rotation redone after cuts) while the other stays as it was.
  // Each round: one write torn part-way (at a different byte each time), then one that completes.
  for (let round = 0; round < 40; round++) {
    const name = 'vg.rk0';
    cutDuring(r.flash, 13 + ((round * 97) % 900), () => new NamedRecords(r.reopen()).write(name, value(++n)));
    const torn = new NamedRecords(r.reopen()).read(name);
    assert.ok(
      torn === expected[name] || torn === value(n),
      `round ${round}: the torn write left the old value or the whole new one`,
    );
    if (torn === value(n)) expected[name] = torn;
    assert.ok(new NamedRecords(r.reopen()).write(name, value(++n)), `round ${round}: a write after the cut is taken`);
    expected[name] = value(n);
    const store = new NamedRecords(r.reopen());
    for (const key of Object.keys(expected)) assert.is(store.read(key), expected[key], `round ${round}: ${key}`);
  }
});

format.run();
ring.run();
named.run();
