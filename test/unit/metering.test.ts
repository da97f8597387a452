// Metering: registers (pulses -> Wh without drift), and the Meter's interval logic on the emulator's
// clock and a raw-flash journal: readings at every boundary, flags after boot, power loss and outages, sequence
// numbers recovered from journal and outbox. Pulses are timers on the same virtual clock, so every
// run is exact and repeatable.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { emulatedPartition, type EmulatedPartition } from '../support/flash-rings.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { EnergyJournal } from '../../firmware/src/metering/energy-journal.ts';
import { Meter } from '../../firmware/src/metering/meter.ts';
import { intervalWh, pulsesForWh, pulsesToWh } from '../../firmware/src/metering/registers.ts';
import { FLAG_AFTER_OUTAGE, FLAG_PARTIAL, FLAG_POWER_LOSS, type Reading } from '../../firmware/src/protocol/reading.ts';

const registers = suite('registers');

registers('pulses become whole Wh, rounded down, exactly', () => {
  assert.is(pulsesToWh(0, 1000), 0);
  assert.is(pulsesToWh(1234, 1000), 1234);
  assert.is(pulsesToWh(3, 800), 3); // 3.75 Wh
  assert.is(pulsesToWh(4, 800), 5);
  assert.is(pulsesToWh(2 ** 40, 1000), 2 ** 40);
  assert.is(pulsesToWh(3 * 10 ** 12, 3), 10 ** 15);
});

registers('interval Wh always sum to the total register, whatever the impulse rate', () => {
  for (const ipk of [1, 3, 7, 800, 1000, 2000, 10000]) {
    let total = 0;
    let sum = 0;
    let seed = ipk;
    for (let i = 0; i < 500; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      const pulses = seed % 50;
      total += pulses;
      sum += intervalWh(total, pulses, ipk);
    }
    assert.is(sum, pulsesToWh(total, ipk), `impulsesPerKWh ${ipk}`);
  }
});

registers('commit threshold in pulses covers at least commitEveryWh', () => {
  assert.is(pulsesForWh(10, 1000), 10);
  assert.is(pulsesForWh(10, 800), 8);
  assert.is(pulsesForWh(10, 300), 3); // 3 pulses = 10 Wh
  assert.is(pulsesForWh(10, 1), 1);
  assert.is(pulsesForWh(10, 10000), 100);
});

const INTERVAL = 60;
const IPK = 1000;
/** An interval boundary in 2026, as the testbed uses. */
const T0 = Math.ceil(1_790_000_000 / INTERVAL) * INTERVAL;

interface Rig {
  clock: SimClock;
  storage: EmulatedPartition;
  published: Reading[];
  logs: string[];
  meter: Meter;
}

function newMeter(
  clock: SimClock,
  storage: EmulatedPartition,
  published: Reading[],
  logs: string[],
  commitEveryWh = 10,
): Meter {
  return new Meter({
    meterId: 'meter-1',
    intervalSeconds: INTERVAL,
    impulsesPerKWh: IPK,
    commitEveryWh,
    clock,
    journal: new EnergyJournal(storage.journalRing()),
    publish: (r) => published.push({ ...r }),
    log: (m) => logs.push(m),
  });
}

function rig(startSeconds: number): Rig {
  const clock = new SimClock({ speed: 20000, startEpochSeconds: startSeconds });
  const storage = emulatedPartition();
  const published: Reading[] = [];
  const logs: string[] = [];
  return { clock, storage, published, logs, meter: newMeter(clock, storage, published, logs) };
}

/** Schedules import pulses every `everySeconds` from `from` to `to` (virtual), for whichever meter is current. */
function schedulePulses(
  clock: SimClock,
  current: () => Meter | null,
  from: number,
  to: number,
  everySeconds: number,
  direction: 'import' | 'export' = 'import',
): number {
  let n = 0;
  for (let t = from; t < to; t += everySeconds) {
    n++;
    clock.setTimeoutAt(() => {
      const m = current();
      if (m) direction === 'import' ? m.importPulse() : m.exportPulse();
    }, t);
  }
  return n;
}

/** Runs `step` inside a clock timer at virtual time t (where now() is exactly t); resolves after it ran. */
function at(clock: SimClock, t: number, step: () => void = () => {}): Promise<void> {
  return new Promise((resolve, reject) =>
    clock.setTimeoutAt(() => {
      try {
        step();
        resolve();
      } catch (e) {
        reject(e);
      }
    }, t),
  );
}

// Every test schedules its whole timeline before awaiting anything: virtual time runs on while the
// test awaits, and only timers see exact instants.
const meter = suite('meter');

meter('one reading per interval, the first PARTIAL, Wh summing to the totals, seq +1 each', async () => {
  const r = rig(T0 + 20);
  const live: { m: Meter | null } = { m: r.meter };
  const started = at(r.clock, T0 + 20, () => r.meter.start([]));
  schedulePulses(r.clock, () => live.m, T0 + 20.25, T0 + 4 * INTERVAL, 0.5); // 7.2 kW
  schedulePulses(r.clock, () => live.m, T0 + 21, T0 + 4 * INTERVAL, 2, 'export');
  const done = at(r.clock, T0 + 4 * INTERVAL + 1, () => r.meter.stop());
  await started;
  await done;
  r.clock.close();
  const first = T0 / INTERVAL;
  assert.equal(
    r.published.map((x) => x.interval),
    [first, first + 1, first + 2, first + 3],
  );
  assert.equal(
    r.published.map((x) => x.seq),
    [1, 2, 3, 4],
  );
  assert.equal(
    r.published.map((x) => x.flags),
    [FLAG_PARTIAL, 0, 0, 0],
  );
  assert.equal(
    r.published.map((x) => x.importWh),
    [80, 120, 120, 120],
  );
  assert.equal(
    r.published.map((x) => x.exportWh),
    [20, 30, 30, 30],
  );
  const last = r.published[3];
  assert.is(last.importTotalWh, 440);
  assert.is(last.exportTotalWh, 110);
  assert.is(last.meterId, 'meter-1');
});

meter(
  'a pulse stamped in a later interval closes the open one first (its boundary timer is late), each interval on its own, the skipped one empty',
  async () => {
    const r = rig(T0 + 1);
    const k = T0 / INTERVAL;
    const steps = [
      at(r.clock, T0 + 1, () => r.meter.start([])),
      at(r.clock, T0 + 10, () => r.meter.importPulse(T0 + 10)),
      // Processed before the boundary timers ran, stamped two intervals on: k and k + 1 close first.
      at(r.clock, T0 + 20, () => r.meter.importPulse(T0 + 2 * INTERVAL + 5)),
      // Stamped past the catch-up bound (a clock step, not a late timer): counted where it is processed.
      at(r.clock, T0 + 21, () => r.meter.importPulse(T0 + 9 * INTERVAL)),
      at(r.clock, T0 + 3 * INTERVAL + 1, () => r.meter.stop()),
    ];
    await Promise.all(steps);
    r.clock.close();
    assert.equal(
      r.published.map((x) => [x.interval, x.seq, x.importWh, x.flags]),
      [
        [k, 1, 1, FLAG_PARTIAL],
        [k + 1, 2, 0, 0],
        [k + 2, 3, 2, 0],
      ],
    );
  },
);

meter(
  'a cut within the interval: registers resume from the last commit, the reading says PARTIAL and POWER_LOSS',
  async () => {
    const r = rig(T0 + 1);
    const live: { m: Meter | null } = { m: r.meter };
    const published2: Reading[] = [];
    const m2 = newMeter(r.clock, r.storage, published2, r.logs);
    let beforeCut = 0;
    let restored = 0;
    const steps = [
      at(r.clock, T0 + 1, () => r.meter.start([])),
      // The cut: 181 pulses counted, the last commit at 177 (the boundary tick comes 1 ms after the
      // pulse at T0+60, which still counts to interval k: 117 pulses; then commits every 10).
      at(r.clock, T0 + 92.2, () => {
        r.meter.stop();
        live.m = null;
        beforeCut = r.meter.state.importPulses;
      }),
      at(r.clock, T0 + 100, () => {
        live.m = m2;
        m2.start(r.published);
        restored = m2.state.importPulses;
      }),
      at(r.clock, T0 + 2 * INTERVAL + 1, () => m2.stop()),
    ];
    schedulePulses(r.clock, () => live.m, T0 + 2, T0 + 2 * INTERVAL, 0.5);
    await Promise.all(steps);
    r.clock.close();
    assert.is(beforeCut, 181);
    assert.is(restored, 177);
    assert.equal(
      r.published.map((x) => [x.interval, x.flags]),
      [[T0 / INTERVAL, FLAG_PARTIAL]],
    );
    assert.equal(
      published2.map((x) => [x.interval, x.seq, x.flags]),
      [[T0 / INTERVAL + 1, 2, FLAG_PARTIAL | FLAG_POWER_LOSS]],
    );
    // 64 pulses in the interval before the cut, 4 of them lost; 40 after power came back (T0+100..T0+119.5)
    assert.is(published2[0].importWh, 64 - 4 + 40);
    assert.is(published2[0].importTotalWh, 177 + 40);
  },
);

meter(
  'off for whole intervals: the interval that was open is closed with POWER_LOSS, the next says AFTER_OUTAGE',
  async () => {
    const r = rig(T0 + 1);
    const published2: Reading[] = [];
    const m2 = newMeter(r.clock, r.storage, published2, r.logs);
    const steps = [
      at(r.clock, T0 + 1, () => r.meter.start([])),
      at(r.clock, T0 + 40, () => r.meter.stop()), // the cut, in interval k; power is back in interval k + 3
      at(r.clock, T0 + 3 * INTERVAL + 10, () => m2.start([])),
      at(r.clock, T0 + 4 * INTERVAL + 1, () => m2.stop()),
    ];
    schedulePulses(r.clock, () => r.meter, T0 + 2, T0 + 30, 0.5);
    await Promise.all(steps);
    r.clock.close();
    const k = T0 / INTERVAL;
    assert.equal(r.published, []);
    assert.equal(
      published2.map((x) => [x.interval, x.seq, x.flags]),
      [
        [k, 1, FLAG_PARTIAL | FLAG_POWER_LOSS],
        [k + 3, 2, FLAG_PARTIAL | FLAG_POWER_LOSS | FLAG_AFTER_OUTAGE],
      ],
    );
    assert.is(published2[0].importWh, 50); // 56 pulses counted, committed every 10
  },
);

meter(
  'a reading stored in the outbox but whose boundary was never committed is neither resent nor renumbered',
  async () => {
    const r = rig(T0 + 1);
    const k = T0 / INTERVAL;
    // What the outbox's note names after a cut between publish and the journal's boundary commit.
    const inOutbox = { seq: 7, interval: k };
    const published2: Reading[] = [];
    const m2 = newMeter(r.clock, r.storage, published2, r.logs);
    const steps = [
      at(r.clock, T0 + 1, () => r.meter.start([])),
      at(r.clock, T0 + 30, () => r.meter.stop()),
      at(r.clock, T0 + INTERVAL + 5, () => m2.start([inOutbox])),
      at(r.clock, T0 + 2 * INTERVAL + 1, () => m2.stop()),
    ];
    await Promise.all(steps);
    r.clock.close();
    assert.equal(
      published2.map((x) => [x.interval, x.seq, x.flags]),
      [[k + 1, 8, FLAG_PARTIAL | FLAG_POWER_LOSS]],
    );
  },
);

/** A meter whose publish refuses (as a full outbox does) until `accept()`; what it published and logged. */
function refusingMeter(maxWaitingReadings?: number) {
  const clock = new SimClock({ speed: 20000, startEpochSeconds: T0 + 1 });
  const storage = emulatedPartition();
  const published: Reading[] = [];
  const logs: string[] = [];
  const publishedAt: number[] = [];
  let refuse = true;
  const m = new Meter({
    meterId: 'meter-1',
    intervalSeconds: INTERVAL,
    impulsesPerKWh: IPK,
    commitEveryWh: 10,
    clock,
    journal: new EnergyJournal(storage.journalRing()),
    publish: (r) => {
      if (refuse) throw new Error('outbox full');
      published.push(r);
      publishedAt.push(clock.now());
    },
    log: (msg) => logs.push(msg),
    maxWaitingReadings,
  });
  return { clock, m, published, publishedAt, logs, accept: () => (refuse = false) };
}

meter('a refused reading is kept and published again, in order, before newer ones', async () => {
  const { clock, m, published, logs, accept } = refusingMeter();
  const steps = [
    at(clock, T0 + 1, () => m.start([])),
    at(clock, T0 + 2 * INTERVAL + 1, accept),
    at(clock, T0 + 3 * INTERVAL + 1, () => m.stop()),
  ];
  await Promise.all(steps);
  clock.close();
  assert.equal(
    published.map((x) => x.seq),
    [1, 2, 3],
  );
  assert.ok(
    logs.some((l) => /reading 1 \(interval \d+\) not stored: outbox full; retrying/.test(l)),
    logs.join('\n'),
  );
});

meter(
  'readings waiting in RAM are bounded: past the limit the oldest waiting one is dropped, never the first',
  async () => {
    const { clock, m, published, publishedAt, logs, accept } = refusingMeter(3);
    // Some energy in every interval, so the dropped readings' energy can be looked for.
    const pulses = [1, 2, 3, 4, 5, 6, 7].map((k) =>
      at(clock, T0 + (k - 1) * INTERVAL + 10, () => {
        for (let i = 0; i < k; i++) m.importPulse();
      }),
    );
    const steps = [
      at(clock, T0 + 1, () => m.start([])),
      at(clock, T0 + 6 * INTERVAL + 1, accept),
      at(clock, T0 + 7 * INTERVAL + 1, () => m.stop()),
    ];
    await Promise.all([...steps, ...pulses]);
    clock.close();
    // Six readings closed while refused: 1 stays first, 2..4 are dropped as 4..6 arrive.
    assert.equal(
      published.map((x) => x.seq),
      [1, 5, 6, 7],
    );
    const pulseWh = pulsesToWh(1, IPK);
    assert.equal(
      published.map((x) => x.importWh),
      [1, 5, 6, 7].map((k) => k * pulseWh),
      'each reading keeps its own interval',
    );
    assert.is(published[3].importTotalWh, 28 * pulseWh, "the register total still holds the dropped intervals' energy");
    assert.equal(
      logs.filter((l) => / dropped: 3 readings already wait/.test(l)).map((l) => /reading (\d+)/.exec(l)![1]),
      ['2', '3', '4'],
    );
    assert.is(logs.filter((l) => /not stored/.test(l)).length, 1, 'the refusal is logged once');
    assert.ok(
      logs.some((l) => /reading 1 stored after all, 2 more waiting/.test(l)),
      logs.join('\n'),
    );
    // One waiting reading per task, so the network's events run between two seals.
    for (let i = 1; i < 3; i++)
      assert.ok(
        publishedAt[i] - publishedAt[i - 1] >= 0.015,
        `waiting readings handed over ${publishedAt[i] - publishedAt[i - 1]} s apart`,
      );
  },
);

registers.run();
meter.run();
