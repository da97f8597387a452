// The persistent outbox over the emulator's Espruino Storage: order, bounds, reopening, and a
// power cut at every byte of an append or an ack.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Flash, PowerLoss } from '../../boards/emulator/flash.ts';
import { EspruinoStorage } from '../../boards/emulator/storage.ts';
import { Outbox, OutboxError, OutboxFullError, SEGMENT_BYTES, type OutboxEntry } from '../../firmware/src/mqtt/outbox.ts';

const PAGE = 4096;

function board(pages = 32) {
  const flash = new Flash({ sizeBytes: pages * PAGE, pageBytes: PAGE });
  const storage = new EspruinoStorage(flash);
  return { flash, storage };
}

function payloadFor(i: number, length = 40): Uint8Array {
  // Includes 0xFF and 0x00 bytes, which must survive Storage untouched.
  return new Uint8Array(length).map((_, j) => (i * 31 + j * 17) & 255);
}

function topicFor(i: number): string {
  return `veilgrid/meters/m${i % 3}/readings`;
}

function all(outbox: Outbox): OutboxEntry[] {
  const out: OutboxEntry[] = [];
  for (let e = outbox.first(); e; e = outbox.after(e.id)) out.push(e);
  return out;
}

function contents(outbox: Outbox): string[] {
  return all(outbox).map((e) => `${e.topic}:${Buffer.from(e.payload).toString('hex')}`);
}

const describe = (i: number, length?: number) => `${topicFor(i)}:${Buffer.from(payloadFor(i, length)).toString('hex')}`;

test('appended messages come back in order, byte for byte, and leave only when acknowledged', () => {
  const { storage } = board();
  const outbox = new Outbox(storage);
  const ids = [0, 1, 2, 3].map((i) => outbox.append(topicFor(i), payloadFor(i)));
  assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'ids increase');
  assert.is(outbox.size(), 4);
  assert.equal(contents(outbox), [0, 1, 2, 3].map((i) => describe(i)));
  outbox.ack(ids[1]);
  outbox.ack(ids[1]); // a second ack of the same id changes nothing
  assert.is(outbox.size(), 3);
  assert.equal(contents(outbox), [0, 2, 3].map((i) => describe(i)));
  assert.equal(all(outbox).map((e) => e.id), [ids[0], ids[2], ids[3]]);
});

test('the outbox survives re-opening from the same Storage; recovered entries are marked', () => {
  const { storage } = board();
  const first = new Outbox(storage);
  const ids = [0, 1, 2].map((i) => first.append(topicFor(i), payloadFor(i)));
  first.ack(ids[0]);
  const second = new Outbox(storage);
  assert.is(second.size(), 2);
  assert.equal(contents(second), [1, 2].map((i) => describe(i)));
  assert.ok(second.isRecovered(ids[1]) && second.isRecovered(ids[2]));
  const newId = second.append(topicFor(3), payloadFor(3));
  assert.not.ok(second.isRecovered(newId));
  assert.equal(contents(second), [1, 2, 3].map((i) => describe(i)));
});

test('the retain flag is stored with each message and survives re-opening', () => {
  const { storage } = board();
  const first = new Outbox(storage);
  first.append(topicFor(0), payloadFor(0));
  first.append('veilgrid/meters/m0/status', new Uint8Array([0x6f, 0x6e]), true);
  first.append(topicFor(2), payloadFor(2, 300), false);
  const reopened = new Outbox(storage);
  assert.equal(all(reopened).map((e) => [e.topic, e.retain]), [
    [topicFor(0), false],
    ['veilgrid/meters/m0/status', true],
    [topicFor(2), false],
  ]);
  assert.equal(contents(reopened)[2], describe(2, 300), 'the flag does not disturb the length');
});

test('fully acknowledged segments are erased, so a long run stays within a few segments', () => {
  const { storage } = board();
  const outbox = new Outbox(storage);
  for (let i = 0; i < 2000; i++) {
    const id = outbox.append(topicFor(i), payloadFor(i, 100));
    if (i >= 5) outbox.ack(all(outbox)[0].id);
    assert.ok(outbox.segmentCount() <= 2, `at most 2 segments at message ${i}`);
    if (i === 1999) assert.is(all(outbox).at(-1)!.id, id);
  }
  assert.is(outbox.size(), 5);
  assert.equal(contents(new Outbox(storage)), [1995, 1996, 1997, 1998, 1999].map((i) => describe(i, 100)));
  assert.ok(storage.list().filter((n) => n.startsWith('vg.outbox.')).length <= 2);
});

test('a full outbox refuses the newest message with a clear error and keeps the oldest', () => {
  const { storage } = board();
  const outbox = new Outbox(storage, 'vg.outbox', { maxSegments: 2 });
  const ids: number[] = [];
  let error: unknown;
  for (let i = 0; i < 1000 && !error; i++) {
    try {
      ids.push(outbox.append(topicFor(i), payloadFor(i, 200)));
    } catch (err) {
      error = err;
    }
  }
  assert.instance(error, OutboxFullError);
  assert.match((error as Error).message, /outbox full: \d+ messages in 2 segments wait for the broker.*nothing was stored/);
  assert.is(outbox.size(), ids.length);
  assert.equal(contents(outbox), ids.map((_, i) => describe(i, 200)));
  // Once the broker acknowledges the oldest segment, there is room again.
  for (const id of ids.slice(0, Math.ceil(ids.length / 2) + 1)) outbox.ack(id);
  outbox.append('after/full', payloadFor(9));
  assert.is(all(outbox).at(-1)!.topic, 'after/full');
});

test('a message that can never fit, and a full Storage, get clear errors', () => {
  const { storage } = board();
  const outbox = new Outbox(storage);
  assert.throws(() => outbox.append('t', new Uint8Array(SEGMENT_BYTES)), (e: Error) =>
    e instanceof OutboxError && /too large for the outbox \(at most 4054 bytes\)/.test(e.message));
  assert.throws(() => outbox.append('', new Uint8Array(1)), /topic must be 1..255 chars/);

  const small = board(3);
  small.storage.write('filler', 'x'.repeat(2 * PAGE - 200));
  const cramped = new Outbox(small.storage);
  cramped.append('a', payloadFor(1));
  let error: unknown;
  try {
    for (let i = 0; i < 200; i++) cramped.append('a', payloadFor(i, 300));
  } catch (err) {
    error = err;
  }
  assert.instance(error, OutboxFullError);
  assert.match((error as Error).message, /Storage is full: cannot create outbox segment "vg\.outbox\.2"/);
  assert.is(new Outbox(small.storage).size(), cramped.size());
});

/**
 * Replays `setup` on a fresh flash, cuts power after `cut` bytes of `operation`, reboots the way
 * Espruino does (Storage validity check) and returns the re-opened outbox.
 */
function afterCut(setup: (o: Outbox) => void, operation: (o: Outbox) => void, cut: number) {
  const { flash, storage } = board();
  const outbox = new Outbox(storage);
  setup(outbox);
  flash.cutPowerAfterBytes(cut);
  let threw: unknown;
  try {
    operation(outbox);
  } catch (err) {
    threw = err;
  }
  flash.restorePower();
  const bootMessage = storage.checkAtPowerOn();
  return { storage, threw, wiped: bootMessage !== '', reopened: new Outbox(storage) };
}

function bytesOf(setup: (o: Outbox) => void, operation: (o: Outbox) => void): number {
  const { flash, storage } = board();
  const outbox = new Outbox(storage);
  setup(outbox);
  const before = flash.bytesWritten;
  operation(outbox);
  return flash.bytesWritten - before;
}

/** Checks one cut: earlier entries intact and in order; the cut entry absent or whole; still usable. */
function checkCut(label: string, r: ReturnType<typeof afterCut>, before: string[], candidate: string | undefined, mayLose?: string) {
  assert.instance(r.threw, PowerLoss, `${label}: the cut stopped the operation`);
  const got = contents(r.reopened);
  const kept = before.filter((d) => d !== mayLose);
  const ok =
    JSON.stringify(got) === JSON.stringify(before) ||
    (candidate !== undefined && JSON.stringify(got) === JSON.stringify([...before, candidate])) ||
    (mayLose !== undefined && JSON.stringify(got) === JSON.stringify(kept));
  assert.ok(ok, `${label}: outbox holds ${JSON.stringify(got)}`);
  r.reopened.append('after/cut', payloadFor(99));
  const again = contents(new Outbox(r.storage));
  assert.equal(again, [...got, `after/cut:${Buffer.from(payloadFor(99)).toString('hex')}`], `${label}: usable after the cut`);
}

test('a power cut at every byte of an append leaves the outbox consistent', () => {
  const setup = (o: Outbox) => {
    const ids = [0, 1, 2].map((i) => o.append(topicFor(i), payloadFor(i)));
    o.ack(ids[1]);
  };
  const before = [0, 2].map((i) => describe(i));
  const append = (o: Outbox) => void o.append(topicFor(7), payloadFor(7));
  const total = bytesOf(setup, append);
  assert.ok(total > 40, `an append programs ${total} bytes`);
  for (let cut = 0; cut <= total; cut++) {
    const r = afterCut(setup, append, cut);
    assert.not.ok(r.wiped, `cut ${cut}: Storage stays valid`);
    checkCut(`append cut after ${cut} of ${total} bytes`, r, before, describe(7));
  }
});

test('a power cut at every byte of an ack leaves the entry either pending or acknowledged', () => {
  let target = 0;
  const setup = (o: Outbox) => {
    const ids = [0, 1, 2].map((i) => o.append(topicFor(i), payloadFor(i)));
    target = ids[1];
  };
  const before = [0, 1, 2].map((i) => describe(i));
  const ack = (o: Outbox) => o.ack(target);
  const total = bytesOf(setup, ack);
  for (let cut = 0; cut <= total; cut++) {
    const r = afterCut(setup, ack, cut);
    assert.not.ok(r.wiped);
    checkCut(`ack cut after ${cut} of ${total} bytes`, r, before, undefined, describe(1));
  }
});

test('a power cut at every byte of an append that starts a new segment, and of an ack that erases one', () => {
  // Fill segment 1 exactly up to the point where the next message needs segment 2.
  let ids: number[] = [];
  const fill = (o: Outbox) => {
    ids = [];
    for (let i = 0; o.segmentCount() < 2; i++) ids.push(o.append(topicFor(i), payloadFor(i, 300)));
  };
  const probe = board();
  const probeOutbox = new Outbox(probe.storage);
  fill(probeOutbox);
  const perSegment = ids.length - 1;

  const setup = (o: Outbox) => {
    for (let i = 0; i < perSegment; i++) ids[i] = o.append(topicFor(i), payloadFor(i, 300));
    for (let i = 0; i < perSegment - 1; i++) o.ack(ids[i]);
  };
  const before = [describe(perSegment - 1, 300)];
  const append = (o: Outbox) => void o.append(topicFor(50), payloadFor(50, 300));
  const total = bytesOf(setup, append);
  for (let cut = 0; cut <= total; cut++) {
    const r = afterCut(setup, append, cut);
    assert.not.ok(r.wiped, `cut ${cut}: Storage stays valid`);
    checkCut(`new-segment append cut after ${cut} of ${total} bytes`, r, before, describe(50, 300));
  }

  // Now acknowledge the last message of segment 1 while segment 2 is in use: segment 1 is erased.
  const setup2 = (o: Outbox) => {
    setup(o);
    append(o);
  };
  const ack = (o: Outbox) => o.ack(ids[perSegment - 1]);
  const ackTotal = bytesOf(setup2, ack);
  assert.ok(ackTotal >= 5, `ack programs its byte and erases the segment's name (${ackTotal} bytes)`);
  for (let cut = 0; cut <= ackTotal; cut++) {
    const r = afterCut(setup2, ack, cut);
    assert.not.ok(r.wiped);
    checkCut(`erasing ack cut after ${cut} of ${ackTotal} bytes`, r, [...before, describe(50, 300)], undefined, before[0]);
  }
});

test.run();
