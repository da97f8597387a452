import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimClock, TimerTable } from '../../boards/emulator/clock.ts';

const START = 1_800_000_000;

function until(cond: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let tries = 0;
    const poll = () => {
      if (cond()) return resolve();
      if (++tries > 2000) return reject(new Error(`gave up waiting for ${what}`));
      setTimeout(poll, 2);
    };
    poll();
  });
}

test('virtual time starts at startEpochSeconds and never goes backwards', () => {
  const clock = new SimClock({ speed: 50, startEpochSeconds: START });
  const a = clock.now();
  const b = clock.now();
  assert.ok(a >= START && a < START + 60);
  assert.ok(b >= a);
  clock.close();
});

test('timers fire in virtual-time order with now() pinned to their due time, at high speed', async () => {
  const clock = new SimClock({ speed: 100000, startEpochSeconds: START });
  const t0 = clock.now();
  const fired: { name: string; at: number }[] = [];
  const add = (name: string, ms: number) => clock.setTimeout(() => fired.push({ name, at: clock.now() - t0 }), ms);
  add('c', 3000);
  add('a', 1000);
  add('b1', 2000);
  add('b2', 2000);
  const dropped = add('x', 1500);
  clock.clearTimeout(dropped);
  await until(() => fired.length === 4, 'four timers');
  assert.equal(
    fired.map((f) => f.name),
    ['a', 'b1', 'b2', 'c'],
  );
  assert.ok(Math.abs(fired[0].at - 1) < 1e-6, `a fired at +${fired[0].at}s`);
  assert.ok(Math.abs(fired[3].at - 3) < 1e-6, `c fired at +${fired[3].at}s`);
  assert.is(clock.pending, 0);
  clock.close();
});

test('a timer set from a timer callback counts from the pinned time', async () => {
  const clock = new SimClock({ speed: 100000, startEpochSeconds: START });
  const t0 = clock.now();
  let second = 0;
  clock.setTimeout(
    () =>
      clock.setTimeout(() => {
        second = clock.now() - t0;
      }, 500),
    500,
  );
  await until(() => second > 0, 'chained timer');
  assert.ok(Math.abs(second - 1) < 1e-6, `chained timer at +${second}s`);
  clock.close();
});

test('setSpeed keeps virtual time continuous; close() cancels everything', async () => {
  const clock = new SimClock({ speed: 1, startEpochSeconds: START });
  const before = clock.now();
  clock.setSpeed(100000);
  assert.ok(clock.now() >= before);
  let ran = false;
  clock.setTimeout(() => {
    ran = true;
  }, 60_000);
  await until(() => ran, 'timer after speed-up');
  clock.setTimeout(() => {
    throw new Error('must not run');
  }, 1);
  clock.close();
  assert.is(clock.pending, 0);
  assert.throws(() => clock.setTimeout(() => {}, 1), /closed/);
  assert.throws(() => new SimClock({ speed: 0 }), /positive/);
});

test("TimerTable numbers timers as Espruino does: 1, max+1, reused once empty; intervals don't drift", async () => {
  const clock = new SimClock({ speed: 100000, startEpochSeconds: START });
  const runs: number[] = [];
  const table = new TimerTable(clock, (e) => e.run(e));
  const a = table.add(() => {}, 1000);
  const b = table.add(() => {}, 1000);
  assert.is(a.id, 1);
  assert.is(b.id, 2);
  table.remove(1);
  assert.is(table.add(() => {}, 1000).id, 3);
  table.removeAllButWatches();
  assert.is(table.size, 0);
  const t0 = clock.now();
  const iv = table.add(() => runs.push(clock.now() - t0), 250, { intervalMs: 250 });
  assert.is(iv.id, 1);
  await until(() => runs.length >= 4, 'four interval runs');
  table.dispose();
  assert.equal(
    runs.slice(0, 4).map((r) => Math.round(r * 1000)),
    [250, 500, 750, 1000],
  );
  clock.close();
});

test.run();
