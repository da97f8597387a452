// Readings per second through an in-process aedes broker into SQLite: N MQTT.js publishers each send M
// encoded readings at QoS 1 as fast as the broker takes them; the collector decodes, checks and stores
// each one (acknowledging after the insert). The clock runs from the first publish to the last stored.
// Usage: node --import tsx bench/collector-throughput.ts [--publishers 10] [--readings 2000] [--synchronous FULL|NORMAL] [--memory]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { startEmbeddedBroker } from '../host-tools/broker/embedded-broker.ts';
import { startCollector } from '../host-tools/dso/collector.ts';
import { ReadingStore } from '../host-tools/dso/reading-store.ts';
import { encodeReading } from '../firmware/src/protocol/reading.ts';
import { readingTopic } from '../firmware/src/protocol/topics.ts';

const { values } = parseArgs({
  options: {
    publishers: { type: 'string', default: '10' },
    readings: { type: 'string', default: '2000' },
    synchronous: { type: 'string', default: 'FULL' },
    memory: { type: 'boolean', default: false },
  },
});
const publishers = Number(values.publishers);
const perPublisher = Number(values.readings);
const synchronous = values.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL';
const total = publishers * perPublisher;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-bench-'));
const dbPath = values.memory ? ':memory:' : path.join(dir, 'readings.db');
const broker = await startEmbeddedBroker();
const store = new ReadingStore(dbPath, { synchronous });
const collector = await startCollector({ brokerUrl: broker.url, db: store, log: () => {} });
const clients = await Promise.all(
  Array.from({ length: publishers }, (_, i) => mqtt.connectAsync(broker.url, { clientId: `bench-meter-${i}` })),
);

// Encode before the clock starts: the figure is for the broker and the collector, not the meters.
const payloads = clients.map((_, p) =>
  Array.from({ length: perPublisher }, (_, seq) => {
    const meterId = `meter-${String(p).padStart(4, '0')}`;
    return Buffer.from(
      encodeReading({
        meterId,
        interval: 29_833_000 + seq,
        importWh: 120 + (seq % 50),
        exportWh: seq % 7,
        importTotalWh: 50_000 + seq * 200,
        exportTotalWh: 3_000 + seq * 10,
        seq,
        flags: 0,
      }),
    );
  }),
);

const started = process.hrtime.bigint();
await Promise.all(
  clients.map((client, p) =>
    Promise.all(
      payloads[p].map((payload) =>
        client.publishAsync(readingTopic(`meter-${String(p).padStart(4, '0')}`), payload, { qos: 1 }),
      ),
    ),
  ),
);
const stats = await collector.waitFor((s) => s.received + s.duplicates + s.rejected + s.conflicts >= total);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;

await Promise.all(clients.map((client) => client.endAsync()));
await collector.close();
await broker.close();
const stored = store.summary().readings;
store.close();
fs.rmSync(dir, { recursive: true, force: true });

console.log(
  `collector throughput: ${publishers} publishers x ${perPublisher} readings, QoS 1, aedes -> SQLite (${values.memory ? 'in memory' : `file, WAL, synchronous=${synchronous}`})`,
);
console.log(
  `stored ${stored} of ${total} (duplicates ${stats.duplicates}, rejected ${stats.rejected}) in ${seconds.toFixed(2)} s`,
);
console.log(`${Math.round(total / seconds)} readings/s`);
