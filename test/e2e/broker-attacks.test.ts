// Issue 8's broker attacks, done for real on both brokers with one legitimately provisioned meter's
// login ("meter-evil") against the DSO's collector and honest meters, all real MQTT clients (mqtt.js):
//   - session takeover: the attacker connects again and again with the DSO's client id and with an
//     honest meter's; aedes refuses (CONNACK 2), mosquitto replaces the id with the attacker's own user
//     name; either way every one of 100 QoS 1 readings, sent while the DSO is connected and while it is
//     away (its persistent session holding them), reaches the DSO, and no honest client is kicked off;
//   - a 64 MB message is refused by the broker before it is buffered (the DSO never sees it), and a
//     flood from one meter while 20 others report: every honest reading arrives and verifies, the
//     flood is counted as rate-limited at the collector.
// Honest readings are real sealed, signed readings (the host-side code the DSO tests use).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import mqtt, { type MqttClient } from 'mqtt';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readingTopic } from '../../firmware/src/protocol/topics.ts';
import { DSO_USERNAME } from '../../host-tools/broker/acl.ts';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../../host-tools/broker/mosquitto.ts';
import { startCollector, type Collector, type CollectorStats } from '../../host-tools/dso/collector.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { ReadingVerifier } from '../../host-tools/dso/verifier.ts';
import {
  makeMeter,
  makeOperator,
  makeReadingKey,
  reading,
  sealedReading,
  type ReadingKey,
} from '../unit/verifier-fixtures.ts';

const ATTACKER = 'meter-evil';
const INTERVAL = 1000;

interface Bed {
  url: string;
  kind: 'aedes' | 'mosquitto';
  credentials: BrokerCredentials;
  passwords: Map<string, string>;
  keys: Map<string, ReadingKey>;
  dsoPublicKey: Uint8Array;
  verifier: ReadingVerifier;
  store: ReadingStore;
  brokerLog: string[];
  close(): Promise<void>;
}

type StartBroker = (
  credentials: BrokerCredentials,
  dir: string,
  log: (line: string) => void,
) => Promise<{ url: string; close(): Promise<void> } | undefined>;

/** A broker with the generated credentials, a DSO registry with every meter (and its reading key), a verifier. */
async function bed(kind: Bed['kind'], startBroker: StartBroker, meterIds: string[]): Promise<Bed | undefined> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-attack-'));
  const credentials = new BrokerCredentials(path.join(dir, 'broker'));
  const registry = new MeterRegistry(':memory:');
  const operator = makeOperator();
  registry.trustOperator(operator.certificate);
  const passwords = new Map<string, string>();
  const keys = new Map<string, ReadingKey>();
  for (const meterId of [...meterIds, ATTACKER]) {
    const password = `password-of-${meterId}`;
    credentials.setUser(meterId, password);
    passwords.set(meterId, password);
    const meter = makeMeter(operator, meterId);
    registry.registerMeter(meter.deviceCertificate);
    const key = makeReadingKey(meter, 1, INTERVAL, INTERVAL + 10_000);
    registry.addKeyCertificate(meterId, key.certificate);
    keys.set(meterId, key);
  }
  passwords.set(DSO_USERNAME, credentials.ensureDsoUser());
  const dsoPrivateKey = p256.utils.randomSecretKey();
  const verifier = new ReadingVerifier({ registry, dsoPrivateKey, log: () => {} });
  const store = new ReadingStore(':memory:');
  const brokerLog: string[] = [];
  const broker = await startBroker(credentials, dir, (line) => brokerLog.push(line));
  if (!broker) {
    registry.close();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  return {
    url: broker.url,
    kind,
    credentials,
    passwords,
    keys,
    dsoPublicKey: p256.getPublicKey(dsoPrivateKey, false),
    verifier,
    store,
    brokerLog,
    async close() {
      await broker.close();
      registry.close();
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The DSO's collector as the DSO service runs it: user dso, client id dso, persistent session. */
function startDso(b: Bed, logs: string[] = []): Promise<Collector> {
  return startCollector({
    brokerUrl: b.url,
    db: b.store,
    verifier: b.verifier,
    username: DSO_USERNAME,
    password: b.passwords.get(DSO_USERNAME),
    clientId: DSO_USERNAME,
    log: (line) => logs.push(line),
  });
}

function connectMeter(b: Bed, meterId: string, clientId = meterId): Promise<MqttClient> {
  return mqtt.connectAsync(b.url, {
    username: meterId,
    password: b.passwords.get(meterId),
    clientId,
    clean: false,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
}

/** Fails instead of hanging when what is awaited never comes. */
function withinSeconds<T>(seconds: number, what: string, promise: Promise<T>, progress: () => unknown): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not happen within ${seconds} s (hang guard): ${JSON.stringify(progress())}`)),
      seconds * 1000,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Publishes readings seq from..to of meterId with QoS 1; resolves when all are acknowledged by the broker. */
async function report(b: Bed, client: MqttClient, meterId: string, from: number, to: number): Promise<void> {
  const key = b.keys.get(meterId)!;
  const sends: Array<Promise<unknown>> = [];
  for (let seq = from; seq <= to; seq++) {
    sends.push(
      client.publishAsync(
        readingTopic(meterId),
        Buffer.from(sealedReading(b.dsoPublicKey, key, reading(meterId, seq, INTERVAL + seq))),
        { qos: 1 },
      ),
    );
  }
  await Promise.all(sends);
}

/** The attacker connecting again and again with the given client ids until stopped; what each attempt got. */
function takeoverLoop(b: Bed, clientIds: string[]): { stop(): Promise<Array<{ clientId: string; outcome: string }>> } {
  const outcomes: Array<{ clientId: string; outcome: string }> = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const clientId = clientIds[i % clientIds.length];
      try {
        const client = await connectMeter(b, ATTACKER, clientId);
        // Connected: what a takeover would try next is to read the session's queued messages.
        await client.subscribeAsync('veilgrid/meters/#', { qos: 1 }).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 20));
        await client.endAsync(true);
        outcomes.push({ clientId, outcome: 'connected' });
      } catch (err) {
        outcomes.push({ clientId, outcome: (err as Error).message });
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return outcomes;
    },
  };
}

function brokers(name: string, kind: Bed['kind'], startBroker: StartBroker): void {
  const test = suite(`${name}: broker attacks`);

  test("a meter using the DSO's or another meter's client id takes over nothing: 100 QoS 1 readings all reach the DSO", async () => {
    const honest = ['meter-01', 'meter-02', 'meter-03', 'meter-04'];
    const b = await bed(kind, startBroker, honest);
    if (!b) return;
    const clients: MqttClient[] = [];
    const dsoLogs: string[] = [];
    try {
      let dso = await startDso(b, dsoLogs);
      for (const meterId of honest) clients.push(await connectMeter(b, meterId));
      const kicked: string[] = [];
      clients.forEach((client, i) => client.on('close', () => kicked.push(honest[i])));
      const attack = takeoverLoop(b, [DSO_USERNAME, 'meter-01']);
      // 52 readings while the DSO is connected, 48 while it is away and its persistent session holds them.
      await Promise.all(honest.map((meterId, i) => report(b, clients[i], meterId, 1, 13)));
      await withinSeconds(
        30,
        'the first 52 readings at the DSO',
        dso.waitFor((s) => (s.verified ?? 0) >= 52),
        () => dso.stats,
      );
      await dso.close();
      await Promise.all(honest.map((meterId, i) => report(b, clients[i], meterId, 14, 25)));
      await new Promise((resolve) => setTimeout(resolve, 300)); // the attacker keeps trying while the DSO is away
      dso = await startDso(b, dsoLogs);
      const stats = await withinSeconds(
        30,
        'the 48 readings the session kept at the DSO',
        dso.waitFor((s) => (s.verified ?? 0) >= 48),
        () => dso.stats,
      );
      const outcomes = await attack.stop();
      await dso.close();

      assert.is(stats.verified, 48, "the DSO's session kept every reading sent while it was away");
      assert.is(stats.rejected, 0);
      for (const meterId of honest)
        for (let seq = 1; seq <= 25; seq++) assert.ok(b.store.get(meterId, seq), `${meterId} seq ${seq} stored`);
      assert.ok(outcomes.length >= 5, `the attacker tried ${outcomes.length} times`);
      assert.ok(outcomes.some((o) => o.clientId === DSO_USERNAME) && outcomes.some((o) => o.clientId === 'meter-01'));
      if (kind === 'aedes') {
        // Refused outright: client id ≠ user name.
        for (const o of outcomes) assert.match(o.outcome, /Identifier rejected/, `${o.clientId}: ${o.outcome}`);
        const logged = b.brokerLog.filter(
          (line) => line.includes('"event":"connection_refused"') && line.includes(`"username":"${ATTACKER}"`),
        );
        assert.is(logged.length, outcomes.length, 'each refused attempt is logged by the broker');
        assert.ok(logged.some((line) => line.includes('"clientId":"dso"')));
      } else {
        // mosquitto gives the connection the attacker's own user name as client id: the sessions it names are untouched.
        for (const o of outcomes) assert.is(o.outcome, 'connected');
      }
      assert.equal(kicked, [], 'no honest meter was disconnected');
      assert.not.ok(
        dsoLogs.some((line) => line.includes('broker_offline')),
        'the DSO was never disconnected while connected',
      );
    } finally {
      for (const client of clients) client.end(true);
      await b.close();
    }
  });

  test('a 64 MB message is refused by the broker; a flood from one meter is rate-limited while 20 others report and all verify', async () => {
    const honest = Array.from({ length: 20 }, (_, i) => `meter-${String(i + 1).padStart(2, '0')}`);
    const b = await bed(kind, startBroker, honest);
    if (!b) return;
    const clients: MqttClient[] = [];
    try {
      const dso = await startDso(b);
      for (const meterId of honest) clients.push(await connectMeter(b, meterId));

      // 64 MB to the attacker's own reading topic (the ACL allows it): the broker closes the connection.
      const big = await connectMeter(b, ATTACKER);
      const closed = new Promise<void>((resolve) => big.once('close', () => resolve()));
      big.publish(readingTopic(ATTACKER), Buffer.alloc(64 * 1024 * 1024, 0x5a), { qos: 1 });
      await withinSeconds(30, 'the broker closing the 64 MB sender', closed, () => 'still open');
      big.end(true);
      if (kind === 'aedes')
        assert.ok(
          b.brokerLog.some((line) => line.includes('larger than the 2048')),
          b.brokerLog.join('\n'),
        );

      // The flood: the same attacker, 4,000 messages as fast as it can, while 20 meters send 5 readings each.
      const flooder = await connectMeter(b, ATTACKER);
      const junk = Buffer.alloc(300, 0xa5);
      const flood = (async () => {
        for (let i = 0; i < 4000; i++) {
          flooder.publish(readingTopic(ATTACKER), junk, { qos: 1 });
          if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      await Promise.all([flood, ...honest.map((meterId, i) => report(b, clients[i], meterId, 1, 5))]);
      const expectedVerified = honest.length * 5;
      const settled = (s: CollectorStats) =>
        (s.verified ?? 0) >= expectedVerified && s.rejected + s.dropped.rateLimited >= 4000;
      const stats = await withinSeconds(
        60,
        'every honest reading verified and the flood handled',
        dso.waitFor(settled),
        () => dso.stats,
      );
      await flooder.endAsync(true);
      await dso.close();

      assert.is(stats.verified, expectedVerified, 'every honest reading arrived and verified');
      for (const meterId of honest)
        for (let seq = 1; seq <= 5; seq++) assert.ok(b.store.get(meterId, seq), `${meterId} seq ${seq} stored`);
      assert.is(stats.dropped.oversize, 0, 'the 64 MB message never reached the DSO');
      assert.ok(stats.dropped.rateLimited > 0, `the flood was rate-limited (${JSON.stringify(stats.dropped)})`);
      assert.is(
        stats.rejected + stats.dropped.rateLimited,
        4000,
        'every flood message was counted: refused by the verifier within the budget, dropped unread past it',
      );
    } finally {
      for (const client of clients) client.end(true);
      await b.close();
    }
  });

  test.run();
}

brokers('aedes', 'aedes', async (credentials, _dir, log) => {
  const broker = await startEmbeddedBroker({ auth: credentials, log });
  return { url: broker.url, close: () => broker.close() };
});

brokers('mosquitto', 'mosquitto', async (credentials, dir) => {
  if (!findMosquitto()) {
    console.log(`  SKIPPED the mosquitto part: ${MOSQUITTO_MISSING}`);
    return undefined;
  }
  const mosquitto = await startMosquitto({ dir, configLines: credentials.mosquittoConfigLines() });
  return { url: mosquitto.url, close: () => mosquitto.stop() };
});
