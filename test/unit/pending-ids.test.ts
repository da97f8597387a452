// The outbox's pending ids held as a range with holes (firmware/src/mqtt/pending-ids.ts) answer as the
// array of numbers they replace: any mix of adding increasing ids (with gaps) and removing any of them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PendingIds } from '../../firmware/src/mqtt/pending-ids.ts';

function check(p: PendingIds, model: number[], last: number): void {
  assert.is(p.size(), model.length);
  assert.is(p.first(), model[0]);
  for (let id = 0; id <= last + 2; id++) {
    assert.is(p.has(id), model.includes(id), `has(${id})`);
    assert.is(
      p.after(id),
      model.find((m) => m > id),
      `after(${id})`,
    );
  }
}

test('answers as an array of the pending ids, whatever the order of acknowledgements', () => {
  let seed = 99;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let round = 0; round < 40; round++) {
    const p = new PendingIds();
    const model: number[] = [];
    let next = 1 + rand(5);
    for (let step = 0; step < 150; step++) {
      const op = rand(10);
      if (op < 5 || model.length === 0) {
        // Mostly the next id; sometimes a gap (a record that was not a message).
        next += rand(4) === 0 ? 1 + rand(3) : 0;
        p.add(next);
        model.push(next);
        next++;
      } else if (op < 8) {
        // In order, as a broker acknowledges.
        p.remove(model[0]);
        model.shift();
      } else {
        const i = rand(model.length);
        p.remove(model[i]);
        model.splice(i, 1);
      }
      if (rand(7) === 0) p.remove(next + 5); // unknown ids are ignored
      if (step % 10 === 0) check(p, model, next);
    }
    check(p, model, next);
  }
});

test.run();
