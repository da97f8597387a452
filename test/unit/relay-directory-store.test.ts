// The meter's relay directory store (firmware/src/mixnet/relay-directory-store.ts) on the emulator's Storage
// (NOR flash, Espruino's file layout and write order) and ATECC608 model, fed by the DSO's own signing and
// publishing code through a retained-message stand-in for the broker: directories of 1, 24, 25 and 1,000 relays
// stored and sampled, kept across a reboot and a power cut at any point of an update, older heads, forged heads,
// heads without an exit and changed pages refused (logged at most once a minute), never thrown.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Flash } from '../../boards/emulator/flash.ts';
import { EspruinoStorage } from '../../boards/emulator/storage.ts';
import { createNetModule } from '../../boards/emulator/net.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { RelayDirectoryStore, startRelayDirectoryStore } from '../../firmware/src/mixnet/relay-directory-store.ts';
import { MqttClient } from '../../firmware/src/mqtt/client.ts';
import { SecureElementError } from '../../firmware/src/se/secure-element.ts';
import { Outbox } from '../../firmware/src/mqtt/outbox.ts';
import { kidOf } from '../../firmware/src/protocol/certificate.ts';
import type { RelayRecord } from '../../firmware/src/protocol/relay-directory.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { createDsoKey, type DsoKey } from '../../host-tools/dso/dso-key.ts';
import {
  exitRecordOf,
  publishRelayDirectory,
  signRelayDirectory,
  type SignedRelayDirectory,
} from '../../host-tools/dso/relay-directory.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startDsoService } from '../../host-tools/dso/dso-service.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { until } from '../dso/asset-fixtures.ts';
import { emulatedPartition } from '../support/flash-rings.ts';
import { provisionedSecureElement } from '../support/provisioned-se.ts';
import { RetainedBroker } from '../support/retained-broker.ts';
import { makeMeter, makeOperator } from './verifier-fixtures.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Relays with random keys (the store never uses a relay's key as a point), and their ids. */
function relays(n: number): RelayRecord[] {
  return Array.from({ length: n }, () => {
    const mixKey = new Uint8Array(randomBytes(64));
    return { relayId: kidOf(nodeSha256, mixKey), mixKey };
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-directory-store-'));
const dsoKey = createDsoKey(path.join(dir, 'dso-key.json'));
const exit = exitRecordOf(p256.getPublicKey(p256.utils.randomSecretKey(), false));
const chip = provisionedSecureElement();

interface Meter {
  flash: Flash;
  broker: RetainedBroker;
  logs: string[];
  clock: { seconds: number };
  /** A store as a boot opens it, over the flash as it is now, following the broker (in place of any before). */
  boot(): RelayDirectoryStore;
  /** What a boot would find in Storage now (a store that does not follow the broker). */
  peek(): RelayDirectoryStore;
}

/** An ESP32 meter's 896 KB of Storage, holding only the firmware's own files. */
function meter(): Meter {
  const flash = new Flash({ sizeBytes: 917_504, pageBytes: 4096 });
  new EspruinoStorage(flash).write('.bootcde', 'x'.repeat(112_000));
  const broker = new RetainedBroker();
  const logs: string[] = [];
  const clock = { seconds: 1_800_000_000 };
  return {
    flash,
    broker,
    logs,
    clock,
    boot() {
      const store = open();
      store.start();
      return store;
    },
    peek: () => open(),
  };
  function open(): RelayDirectoryStore {
    const storage = new EspruinoStorage(flash);
    assert.is(storage.checkAtPowerOn(), '', 'Storage is intact');
    return new RelayDirectoryStore({
      storage,
      se: chip.se,
      sha256: nodeSha256,
      dsoPublicKey: dsoKey.publicKey,
      mqtt: broker,
      clock: { now: () => clock.seconds, setTimeout: () => 0, clearTimeout: () => {} },
      log: (m) => logs.push(m),
    });
  }
}

async function publish(m: Meter, directory: SignedRelayDirectory): Promise<void> {
  await publishRelayDirectory((topic, payload) => m.broker.publish(topic, payload), directory);
  m.broker.drain();
}

function sign(epoch: number, list: RelayRecord[], key: DsoKey = dsoKey, withExit = true): SignedRelayDirectory {
  return signRelayDirectory(key, epoch, list, withExit ? exit : undefined);
}

/** The directory the store holds, checked against the list: every record in sorted order, found by indexOf. */
function assertHolds(store: RelayDirectoryStore, epoch: number, list: RelayRecord[]): void {
  assert.ok(store.isComplete());
  assert.is(store.epoch(), epoch);
  assert.is(store.relayCount(), list.length);
  assert.equal(store.exit(), exit);
  const sorted = list.slice().sort((a, b) => hex(a.relayId).localeCompare(hex(b.relayId)));
  for (let i = 0; i < sorted.length; i++) {
    const r = store.relayAt(i);
    assert.is(hex(r.relayId), hex(sorted[i].relayId), `record ${i}`);
    assert.is(hex(r.mixKey), hex(sorted[i].mixKey), `record ${i}`);
    assert.is(store.indexOf(sorted[i].relayId), i);
  }
  assert.is(store.indexOf(new Uint8Array(8).fill(0xff)), -1);
  assert.is(store.indexOf(new Uint8Array(8)), -1);
}

test('1, 24, 25 and 1,000 relays: stored, sampled by index and found by id, and still there after a reboot', async () => {
  for (const n of [1, 24, 25, 1000]) {
    const m = meter();
    const store = m.boot();
    assert.not.ok(store.isComplete());
    assert.is(store.exit(), undefined);
    const list = relays(n);
    const commands = chip.se.stats.commands;
    await publish(m, sign(100 + n, list));
    assertHolds(store, 100 + n, list);
    assert.is(chip.se.stats.commands - commands, 2, 'one Verify (Nonce + Verify) for the head, whatever n');
    assert.equal(m.broker.subscriptions(), ['veilgrid/directory/head'], 'every page subscription was dropped');
    assert.equal(m.logs, [`directory: epoch ${100 + n} stored, ${n} relays`]);
    assertHolds(m.peek(), 100 + n, list);
  }
});

test('a power cut anywhere in an update leaves the old directory in use; the update is done after the reboot', async () => {
  const oldList = relays(30);
  const newList = relays(100);
  const update = sign(2, newList);
  /** A meter holding the old directory, its store running. */
  const holding = async () => {
    const m = meter();
    const store = m.boot();
    await publish(m, sign(1, oldList));
    return { m, store };
  };
  // What a whole update programs: cut at points from its first byte to its last (the done byte).
  const probe = await holding();
  const before = probe.m.flash.bytesWritten;
  await publish(probe.m, update);
  const total = probe.m.flash.bytesWritten - before;
  assertHolds(probe.store, 2, newList);
  for (const cut of [1, 36, 117, Math.floor(total / 3), Math.floor(total / 2), total - 2, total - 1]) {
    const { m, store } = await holding();
    m.flash.cutPowerAfterBytes(cut);
    await publish(m, update);
    m.flash.restorePower();
    assert.is(store.epoch(), 1, `cut after ${cut} of ${total} bytes: not stored`);
    const rebooted = m.boot();
    assertHolds(rebooted, 1, oldList);
    // After the reboot the broker delivers the retained head again, and the update is made whole.
    m.broker.drain();
    assertHolds(rebooted, 2, newList);
    assertHolds(m.peek(), 2, newList);
  }
});

test('an older head, a head of another key, a forged signature and a head without exit are refused, logged once a minute', async () => {
  const m = meter();
  const store = m.boot();
  const list = relays(5);
  await publish(m, sign(10, list));
  const commands = chip.se.stats.commands;
  m.broker.reconnect();
  m.broker.drain();
  assert.is(chip.se.stats.commands, commands, 'the stored epoch again costs no SE command');
  await publish(m, sign(9, relays(5)));
  assert.is(chip.se.stats.commands, commands, 'an older epoch costs none either');
  assert.match(m.logs[1], 'head of epoch 9 refused: not above the one held (10)');
  m.clock.seconds += 60;
  const other = createDsoKey(path.join(dir, `other-${Date.now()}.json`));
  await publish(m, sign(11, relays(5), other));
  assert.match(m.logs[2], 'head of epoch 11 refused: not signed by the DSO key of vg.config');
  m.clock.seconds += 60;
  const forged = sign(12, relays(5));
  forged.signedHead[forged.signedHead.length - 1] ^= 1;
  await publish(m, forged);
  assert.match(m.logs[3], 'head of epoch 12 refused: its signature does not verify');
  await publish(m, sign(13, relays(5), dsoKey, false));
  await publish(m, { ...sign(14, list), signedHead: new Uint8Array([1, 2, 3]) });
  assert.is(m.logs.length, 4, 'within the minute: kept quiet');
  m.clock.seconds += 60;
  await publish(m, sign(15, relays(5), dsoKey, false));
  assert.match(m.logs[4], 'head of epoch 15 names no exit: not stored');
  assert.match(m.logs[4], '(and 2 more dropped before)');
  assertHolds(store, 10, list);
});

test('a head the secure element could not check (a wake that failed) is tried again 5 s later and stored', async () => {
  const m = meter();
  let failures = 1;
  const retries: Array<() => void> = [];
  const store = new RelayDirectoryStore({
    storage: new EspruinoStorage(m.flash),
    se: {
      verifyExternal: (digest, signature, publicKey) => {
        if (failures-- > 0) throw new SecureElementError('wake', -1, 'no wake reply (04 11 33 43)');
        return chip.se.verifyExternal(digest, signature, publicKey);
      },
    },
    sha256: nodeSha256,
    dsoPublicKey: dsoKey.publicKey,
    mqtt: m.broker,
    clock: {
      now: () => m.clock.seconds,
      setTimeout: (cb, ms) => {
        assert.is(ms, 5000);
        return retries.push(cb);
      },
      clearTimeout: () => {},
    },
    log: (line) => m.logs.push(line),
  });
  store.start();
  const list = relays(5);
  await publish(m, sign(20, list));
  assert.not.ok(store.isComplete());
  assert.match(m.logs[0], 'head dropped: secure element wake: no wake reply');
  assert.is(retries.length, 1, 'tried again later');
  retries[0]();
  m.broker.drain();
  assertHolds(store, 20, list);
  assert.is(retries.length, 1, 'and not again');
});

test('a page with a changed byte is refused and nothing of it is used; the next directory is stored', async () => {
  const m = meter();
  const store = m.boot();
  const list = relays(30);
  await publish(m, sign(1, list));
  const changed = sign(2, relays(60));
  changed.pages[1][100] ^= 1;
  await publish(m, changed);
  assert.match(m.logs[1], 'page dropped: directory page 1 does not match its hash');
  assertHolds(store, 1, list);
  assertHolds(m.peek(), 1, list);
  assert.equal(m.broker.subscriptions(), ['veilgrid/directory/head']);
  const next = relays(60);
  await publish(m, sign(3, next));
  assertHolds(store, 3, next);
  assertHolds(m.peek(), 3, next);
});

test("end to end: the DSO service publishes, a meter's MQTT client takes the pages through a real broker and stores them", async () => {
  const broker = await startEmbeddedBroker({ log: () => {} });
  const operator = makeOperator();
  const provisioning = new MeterRegistry(path.join(dir, 'e2e-dso.db'));
  provisioning.trustOperator(operator.certificate);
  const meters = Array.from({ length: 60 }, (_, i) => makeMeter(operator, `e2e-${i}`));
  for (const meter of meters.slice(0, 30)) provisioning.registerMeter(meter.deviceCertificate);
  const dso = await startDsoService({
    keyFile: path.join(dir, 'dso-key.json'),
    registryDb: path.join(dir, 'e2e-dso.db'),
    readingsDb: ':memory:',
    brokerUrl: broker.url,
    brokerPassword: 'unused',
    http: { port: 0 },
    log: () => {},
    exitKey: hex(exit.mixKey),
    directory: { pollMs: 40, settleMs: 200 },
  });
  const net = createNetModule();
  const clock = new SimClock();
  const logs: string[] = [];
  const client = new MqttClient(
    { net, clock, host: '127.0.0.1', port: broker.port, clientId: 'e2e-0', keepAliveSeconds: 30 },
    new Outbox(emulatedPartition().outboxRing()),
  );
  const flash = new Flash({ sizeBytes: 917_504, pageBytes: 4096 });
  const store = startRelayDirectoryStore({
    storage: new EspruinoStorage(flash),
    se: chip.se,
    sha256: nodeSha256,
    dsoPublicKey: dsoKey.publicKey,
    mqtt: client,
    clock: { now: () => Date.now() / 1000, setTimeout: () => 0, clearTimeout: () => {} },
    log: (m) => logs.push(m),
  });
  try {
    client.start();
    const ids = (n: number) => meters.slice(0, n).map((m) => kidOf(nodeSha256, m.mix.publicKey));
    await until(
      () => store.relayCount() === 30,
      () => `30 relays stored; ${logs.join('; ')}`,
    );
    assert.is(store.epoch(), dso.directory.current!.head.epoch);
    assert.equal(store.exit(), exit);
    for (const id of ids(30)) assert.equal(store.relayAt(store.indexOf(id)).relayId, id);
    for (const meter of meters.slice(30)) provisioning.registerMeter(meter.deviceCertificate);
    await until(
      () => store.relayCount() === 60,
      () => `60 relays stored; ${logs.join('; ')}`,
    );
    assert.is(store.epoch(), dso.directory.current!.head.epoch);
    for (const id of ids(60)) assert.ok(store.indexOf(id) >= 0);
    assert.ok(
      logs.every((line) => / stored, \d+ relays$/.test(line)),
      logs.join('\n'),
    );
  } finally {
    client.stop();
    net.closeAll();
    clock.close();
    await dso.close();
    await broker.close();
    provisioning.close();
  }
});

test.after(() => {
  chip.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
