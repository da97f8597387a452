// The DSO collector end to end through real brokers: aedes in this process and a mosquitto process.
// Readings are published with MQTT.js at QoS 1 (with a duplicate, a conflicting resend, a malformed
// payload and a reading on another meter's topic); the store's contents and gap report are checked.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt from 'mqtt';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../../host-tools/broker/mosquitto.ts';
import { startCollector, type Collector, type CollectorStats } from '../../host-tools/dso/collector.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import {
  FLAG_AFTER_OUTAGE,
  FLAG_PARTIAL,
  FLAG_POWER_LOSS,
  encodeReading,
  type Reading,
} from '../../firmware/src/protocol/reading.ts';
import { readingTopic } from '../../firmware/src/protocol/topics.ts';

function reading(meterId: string, seq: number, interval: number, importWh: number, exportWh = 0, flags = 0): Reading {
  return {
    meterId,
    seq,
    interval,
    importWh,
    exportWh,
    importTotalWh: 10_000 + seq * 100,
    exportTotalWh: 500 + seq * 10,
    flags,
  };
}

// Meter A lost reading 4 (never published), lost power in interval 102 and was off for 105..107.
const meterA = [
  reading('meter-A', 1, 100, 50),
  reading('meter-A', 2, 101, 60, 5),
  reading('meter-A', 3, 102, 40, 0, FLAG_POWER_LOSS),
  reading('meter-A', 5, 104, 70),
  reading('meter-A', 6, 108, 20, 0, FLAG_AFTER_OUTAGE | FLAG_PARTIAL),
];
const meterB = [
  reading('meter-B', 10, 100, 11, 7),
  reading('meter-B', 11, 101, 12, 8),
  reading('meter-B', 12, 102, 13, 9),
];

/** Resolves when the collector's counts satisfy predicate. The guard only turns a hang into a failure that shows the counts. */
async function counted(collector: Collector, predicate: (s: CollectorStats) => boolean): Promise<CollectorStats> {
  let guard: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    guard = setTimeout(
      () => reject(new Error(`collector never reached the expected counts: ${JSON.stringify(collector.stats)}`)),
      30_000,
    );
  });
  try {
    return await Promise.race([collector.waitFor(predicate), hang]);
  } finally {
    clearTimeout(guard);
  }
}

/** Publishes the scenario through brokerUrl and checks what the collector made of it. */
async function exerciseCollector(brokerUrl: string) {
  const store = new ReadingStore(':memory:');
  const logs: string[] = [];
  const collector = await startCollector({ brokerUrl, db: store, log: (line) => logs.push(line) });
  const publisher = await mqtt.connectAsync(brokerUrl, { clientId: `test-meter-${process.pid}`, reconnectPeriod: 0 });
  try {
    const publish = (topic: string, payload: Uint8Array | Buffer) =>
      publisher.publishAsync(topic, Buffer.from(payload), { qos: 1 });
    // Bad messages first: the collector must keep going after them.
    await publish(readingTopic('meter-B'), Buffer.from('not a reading'));
    await publish(readingTopic('meter-B'), encodeReading(reading('meter-A', 99, 100, 1)));
    for (const r of meterA) await publish(readingTopic(r.meterId), encodeReading(r));
    for (const r of meterB) await publish(readingTopic(r.meterId), encodeReading(r));
    await publish(readingTopic('meter-B'), encodeReading(meterB[1])); // a redelivery
    await publish(readingTopic('meter-B'), encodeReading({ ...meterB[2], importWh: 99 })); // same seq, other content

    const stats = await counted(collector, (s) => s.received + s.duplicates + s.rejected + s.conflicts === 12);
    assert.equal(stats, {
      received: 8,
      duplicates: 1,
      rejected: 2,
      conflicts: 1,
      dropped: { oversize: 0, rateLimited: 0 },
    });

    // Each refusal is one JSON line with its reason.
    const events = logs.map((line) => JSON.parse(line));
    const rejected = events.filter((e) => e.event === 'reading_rejected');
    assert.is(rejected.length, 2);
    assert.ok(rejected[0].reason.includes('not deterministic CBOR'), rejected[0].reason);
    assert.is(rejected[0].topic, 'veilgrid/meters/meter-B/readings');
    assert.is(rejected[0].payloadHex, Buffer.from('not a reading').toString('hex'));
    assert.is(rejected[1].reason, 'the topic names meter "meter-B" but the reading is from meter "meter-A"');
    const conflict = events.find((e) => e.event === 'reading_conflict');
    assert.ok(conflict, 'the conflicting resend is logged');
    assert.is(conflict.stored.importWh, 13);
    assert.is(conflict.received.importWh, 99);

    // The store holds each reading once, the first version of seq 12, and nothing from the bad messages.
    assert.equal(
      store.readings('meter-A').map(({ receivedAtMs, ...r }) => r),
      meterA,
    );
    assert.equal(
      store.readings('meter-B').map(({ receivedAtMs, ...r }) => r),
      meterB,
    );
    assert.is(store.get('meter-A', 99), undefined);

    const gaps = store.gaps();
    assert.equal(gaps, [
      {
        meterId: 'meter-A',
        firstSeq: 1,
        lastSeq: 6,
        readings: 5,
        missingSeqs: [4],
        missingCount: 1,
        flaggedIntervals: [
          { seq: 3, interval: 102, flags: FLAG_POWER_LOSS },
          {
            seq: 6,
            interval: 108,
            flags: FLAG_AFTER_OUTAGE | FLAG_PARTIAL,
            silentIntervals: { first: 105, last: 107 },
          },
        ],
      },
      {
        meterId: 'meter-B',
        firstSeq: 10,
        lastSeq: 12,
        readings: 3,
        missingSeqs: [],
        missingCount: 0,
        flaggedIntervals: [],
      },
    ]);
    assert.equal(store.totals(), {
      meters: [
        {
          meterId: 'meter-A',
          readings: 5,
          importWh: 240,
          exportWh: 5,
          importRegisterWh: 10_600,
          exportRegisterWh: 560,
        },
        {
          meterId: 'meter-B',
          readings: 3,
          importWh: 36,
          exportWh: 24,
          importRegisterWh: 11_200,
          exportRegisterWh: 620,
        },
      ],
      importWh: 276,
      exportWh: 29,
    });
    assert.equal(store.summary(), {
      meters: 2,
      readings: 8,
      missingReadings: 1,
      flaggedReadings: 2,
      importWh: 276,
      exportWh: 29,
    });
    assert.is(store.countInIntervals(100, 102), 6);
    assert.equal(store.summaryInIntervals(101, 101), { readings: 2, importWh: 72, exportWh: 13 });
  } finally {
    await publisher.endAsync();
    await collector.close();
    store.close();
  }
}

const withAedes = suite('collector: through aedes');

withAedes('stores, de-duplicates, rejects with reasons and reports gaps', async () => {
  const broker = await startEmbeddedBroker();
  try {
    await exerciseCollector(broker.url);
  } finally {
    await broker.close();
  }
});

withAedes('keeps collecting after the broker restarts (it reconnects and subscribes again)', async () => {
  const broker = await startEmbeddedBroker();
  const store = new ReadingStore(':memory:');
  const logs: string[] = [];
  const collector = await startCollector({ brokerUrl: broker.url, db: store, log: (line) => logs.push(line) });
  let restarted: Awaited<ReturnType<typeof startEmbeddedBroker>> | undefined;
  try {
    const before = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    await before.publishAsync(readingTopic('meter-R'), Buffer.from(encodeReading(reading('meter-R', 1, 7, 5))), {
      qos: 1,
    });
    await counted(collector, (s) => s.received === 1);
    await before.endAsync(true);
    await broker.close();

    restarted = await startEmbeddedBroker({ port: broker.port });
    const reconnected = new Promise<void>((resolve) => restarted!.aedes.on('subscribe', () => resolve()));
    await reconnected;
    const after = await mqtt.connectAsync(restarted.url, { reconnectPeriod: 0 });
    await after.publishAsync(readingTopic('meter-R'), Buffer.from(encodeReading(reading('meter-R', 2, 8, 6))), {
      qos: 1,
    });
    await counted(collector, (s) => s.received === 2);
    await after.endAsync();
    assert.equal(
      store.readings('meter-R').map((r) => r.seq),
      [1, 2],
    );
    assert.ok(
      logs.some((line) => JSON.parse(line).event === 'broker_offline'),
      'the outage is logged',
    );
  } finally {
    await collector.close();
    await restarted?.close();
    store.close();
  }
});

withAedes('refuses to start when the broker refuses the connection, with the reason', async () => {
  const broker = await startEmbeddedBroker({
    aedes: { authenticate: (_client, _user, _pass, done) => done(null, false) },
  });
  const unused = new ReadingStore(':memory:');
  try {
    await startCollector({ brokerUrl: broker.url, db: unused, log: () => {} }).then(
      () => assert.unreachable('should not start'),
      (err: Error) =>
        assert.match(
          err.message,
          /collector cannot connect to mqtt:\/\/127\.0\.0\.1:\d+: Connection refused: (Bad username or password|Not authorized)/,
        ),
    );
  } finally {
    unused.close();
    await broker.close();
  }
});

const store = suite('collector: reading store');

store('a database file uses WAL and keeps readings across reopening', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-store-'));
  try {
    const file = path.join(dir, 'readings.db');
    const first = new ReadingStore(file);
    assert.is(first.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.is(first.insert(meterB[0], 1234), 'stored');
    first.close();
    const second = new ReadingStore(file);
    assert.equal(second.readings(), [{ ...meterB[0], receivedAtMs: 1234 }]);
    assert.is(second.insert(meterB[0]), 'duplicate');
    assert.is(second.insert({ ...meterB[0], flags: FLAG_PARTIAL }), 'conflict');
    second.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

store('a huge hole is counted exactly but listed only up to the limit', () => {
  const s = new ReadingStore(':memory:');
  s.insert(reading('meter-H', 0, 1, 1));
  s.insert(reading('meter-H', 50_000, 2, 1));
  const [gap] = s.gaps();
  assert.is(gap.missingCount, 49_999);
  assert.is(gap.missingSeqs.length, 10_000);
  assert.equal(gap.missingSeqs.slice(0, 2), [1, 2]);
  assert.is(s.summary().missingReadings, 49_999);
  s.close();
});

store('an empty store reports nothing', () => {
  const s = new ReadingStore(':memory:');
  assert.equal(s.gaps(), []);
  assert.equal(s.totals(), { meters: [], importWh: 0, exportWh: 0 });
  assert.equal(s.summaryInIntervals(0, 10), { readings: 0, importWh: 0, exportWh: 0 });
  s.close();
});

// ---------------------------------------------------------------------------------------------------
// mosquitto: a real, separate broker process.

const withMosquitto = suite('collector: through mosquitto');

withMosquitto('stores, de-duplicates, rejects with reasons and reports gaps', async () => {
  if (!findMosquitto()) {
    console.log(`${MOSQUITTO_MISSING}: skipping the mosquitto part`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-mosquitto-'));
  const broker = await startMosquitto({ dir });
  try {
    await exerciseCollector(broker.url);
  } finally {
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

withAedes.run();
store.run();
withMosquitto.run();
