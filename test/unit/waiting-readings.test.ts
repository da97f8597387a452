// The packed queue of readings waiting for room in the outbox (firmware/src/metering/waiting-readings.ts):
// the same readings come out as went in, in order, across its chunks, and dropping the second oldest keeps
// the oldest first. Checked against a plain array doing the same operations.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { WaitingReadings } from '../../firmware/src/metering/waiting-readings.ts';
import type { Reading } from '../../firmware/src/protocol/reading.ts';

const waiting = suite('waiting readings');

function reading(seq: number): Reading {
  return {
    meterId: 'meter-7',
    interval: 1765000000 + seq,
    importWh: seq % 5,
    exportWh: seq % 3,
    importTotalWh: 2 ** 53 - 1 - seq,
    exportTotalWh: 2 ** 40 + seq,
    seq,
    flags: seq % 8,
  };
}

function contents(q: WaitingReadings): Reading[] {
  const out: Reading[] = [];
  for (let i = 0; i < q.size(); i++) out.push(q.get(i)!);
  return out;
}

waiting('readings come out as they went in, oldest first, every field exact', () => {
  const q = new WaitingReadings('meter-7');
  assert.is(q.size(), 0);
  assert.is(q.get(0), undefined);
  const expected: Reading[] = [];
  for (let seq = 1; seq <= 30; seq++) {
    q.push(reading(seq));
    expected.push(reading(seq));
  }
  assert.equal(contents(q), expected);
  for (let i = 0; i < 30; i++) {
    assert.equal(q.get(0), expected[i]);
    q.shift();
  }
  assert.is(q.size(), 0);
  q.shift();
  assert.is(q.size(), 0);
});

waiting('any mix of push, shift and dropping the second oldest matches an array', () => {
  const q = new WaitingReadings('meter-7');
  const model: Reading[] = [];
  let seq = 0;
  let seed = 12345;
  for (let step = 0; step < 3000; step++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const op = seed % 7;
    if (op < 3 || model.length < 2) {
      seq++;
      q.push(reading(seq));
      model.push(reading(seq));
    } else if (op < 5) {
      q.shift();
      model.shift();
    } else {
      assert.equal(q.removeSecond(), model.splice(1, 1)[0]);
    }
    // Bounded like the meter's queue, so it both grows and empties.
    while (model.length > 40) {
      assert.equal(q.removeSecond(), model.splice(1, 1)[0]);
    }
    assert.is(q.size(), model.length);
    assert.equal(q.get(0), model[0]);
    if (step % 97 === 0) assert.equal(contents(q), model);
  }
  assert.equal(contents(q), model);
  assert.is(new WaitingReadings('m').removeSecond(), undefined);
});

waiting.run();
