// The DSO service publishes the relay directory by itself: at start, and again when meters are registered (a
// burst of registrations gives one or few epochs) or revoked; every head names the exit, verifies under the
// DSO key and is anchored on the market; pages a shorter directory no longer has are cleared; a restart signs
// a later epoch than any before it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { toHex } from 'viem';
import { decodeRelayDirectoryHead, openSignedCertificate } from '../../firmware/src/protocol/certificate.ts';
import { ALG_ES256 } from '../../firmware/src/protocol/cose.ts';
import { exitOfHead, type RelayRecord } from '../../firmware/src/protocol/relay-directory.ts';
import { RELAY_DIRECTORY_HEAD_TOPIC, relayDirectoryPageTopic } from '../../firmware/src/protocol/topics.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { nodeSha256, nodeVerifyEs256 } from '../../host-tools/crypto/node-primitives.ts';
import { createDsoKey } from '../../host-tools/dso/dso-key.ts';
import { startDsoService, type DsoService } from '../../host-tools/dso/dso-service.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { exitRecordOf } from '../../host-tools/dso/relay-directory.ts';
import { until } from '../dso/asset-fixtures.ts';
import { marketFixture } from '../ledger/market-fixture.ts';
import { makeMeter, makeOperator } from './verifier-fixtures.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a new epoch at start, after a burst of registrations and after a revocation; anchored; stale pages cleared; never reused', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-directory-service-'));
  const broker = await startEmbeddedBroker({ log: () => {} });
  const dev = await marketFixture();
  const dsoKey = createDsoKey(path.join(dir, 'dso-key.json'));
  const exitKey = p256.getPublicKey(p256.utils.randomSecretKey(), false).subarray(1);
  const operator = makeOperator();
  // Provisioning writes the registry from another process: this handle stands for it.
  const provisioning = new MeterRegistry(path.join(dir, 'dso.db'));
  provisioning.trustOperator(operator.certificate);
  for (let i = 0; i < 3; i++) provisioning.registerMeter(makeMeter(operator, `dir-${i}`).deviceCertificate);
  const log: string[] = [];
  const start = () =>
    startDsoService({
      keyFile: path.join(dir, 'dso-key.json'),
      registryDb: path.join(dir, 'dso.db'),
      readingsDb: path.join(dir, 'readings.db'),
      assetsDb: path.join(dir, 'assets.db'),
      brokerUrl: broker.url,
      brokerPassword: 'unused',
      http: { port: 0 },
      log: (line) => log.push(line),
      market: { client: dev.market, dso: dev.dso },
      issuance: { tickMs: 50 },
      exitKey: hex(exitKey),
      directory: { pollMs: 40, settleMs: 300, maxDelayMs: 5000 },
    });
  const retained = new Map<string, Uint8Array>();
  const client = await mqtt.connectAsync(broker.url, { clientId: 'watcher' });
  client.on('message', (topic, payload) => retained.set(topic, new Uint8Array(payload)));
  await client.subscribeAsync('veilgrid/directory/#', { qos: 1 });
  const head = () => {
    const bytes = retained.get(RELAY_DIRECTORY_HEAD_TOPIC);
    if (!bytes) return undefined;
    const opened = openSignedCertificate(bytes, ALG_ES256);
    assert.ok(nodeVerifyEs256(dsoKey.publicKey, opened.toBeSigned, opened.signature), 'signed by the DSO key');
    return { ...decodeRelayDirectoryHead(opened.payload), hash: toHex(nodeSha256(bytes)) };
  };
  const published = () => log.filter((line) => line.includes('"directory_published"')).length;
  let dso: DsoService | undefined = await start();
  try {
    await until(
      () => head()?.relayCount === 3,
      () => `the first directory; log: ${log.slice(-3).join('\n')}`,
    );
    const first = head()!;
    assert.equal(exitOfHead(nodeSha256, first), exitRecordOf(exitKey) as RelayRecord, 'the exit is named');
    await until(
      () => log.some((line) => line.includes('"directory_anchored"')),
      () => `the anchor; log: ${log.slice(-3).join('\n')}`,
    );
    assert.equal(await dev.market.directoryAnchor(), { epoch: first.epoch, headHash: first.hash });

    // 27 meters provisioned one after another: one or few epochs, and every one of them listed.
    const before = published();
    for (let i = 3; i < 30; i++) {
      provisioning.registerMeter(makeMeter(operator, `dir-${i}`).deviceCertificate);
      await sleep(10);
    }
    await until(
      () => head()?.relayCount === 30,
      () => `the directory of 30; head ${JSON.stringify(head()?.relayCount)}`,
    );
    const burst = published() - before;
    assert.ok(burst >= 1 && burst <= 3, `${burst} epochs for a burst of 27 registrations`);
    const full = head()!;
    assert.ok(full.epoch > first.epoch);
    assert.is(full.pageCount, 2);
    await until(
      () => retained.has(relayDirectoryPageTopic(1)) && retained.get(relayDirectoryPageTopic(1))!.length > 0,
      () => 'page 1',
    );

    // Seven revoked: one page, and the retained page 1 cleared.
    for (let i = 0; i < 7; i++) provisioning.revoke(`dir-${i}`, 'test');
    await until(
      () => head()?.relayCount === 23,
      () => `the directory of 23; head ${JSON.stringify(head()?.relayCount)}`,
    );
    await until(
      () => retained.get(relayDirectoryPageTopic(1))?.length === 0,
      () => 'page 1 cleared (an empty retained message)',
    );
    const shorter = head()!;
    await until(
      () => log.filter((line) => line.includes('"directory_anchored"')).length >= 3,
      () => 'every head anchored',
    );
    assert.equal(await dev.market.directoryAnchor(), { epoch: shorter.epoch, headHash: shorter.hash });

    // A restart, at once: the same meters, a later epoch.
    await dso.close();
    dso = undefined;
    dso = await start();
    await until(
      () => (head()?.epoch ?? 0) > shorter.epoch,
      () => 'a new epoch after the restart',
    );
    assert.is(dso.directory.lastEpoch(), head()!.epoch);
  } finally {
    await dso?.close();
    await client.endAsync();
    await broker.close();
    provisioning.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('without an exit key the directory is published all the same, and the service says once what is missing; a broker that lost it gets it again', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-directory-service-'));
  let broker = await startEmbeddedBroker({ log: () => {} });
  createDsoKey(path.join(dir, 'dso-key.json'));
  const operator = makeOperator();
  const provisioning = new MeterRegistry(path.join(dir, 'dso.db'));
  provisioning.trustOperator(operator.certificate);
  provisioning.registerMeter(makeMeter(operator, 'lone-0').deviceCertificate);
  const log: string[] = [];
  const options = {
    keyFile: path.join(dir, 'dso-key.json'),
    registryDb: path.join(dir, 'dso.db'),
    readingsDb: path.join(dir, 'readings.db'),
    brokerUrl: broker.url,
    brokerPassword: 'unused',
    http: { port: 0 },
    log: (line: string) => log.push(line),
    directory: { pollMs: 40 },
  };
  let dso: DsoService | undefined;
  try {
    await startDsoService({ ...options, exitKey: '04'.repeat(64) }).then(
      () => assert.unreachable('a bad exit key was taken'),
      (err: Error) => assert.match(err.message, 'not a point on P-256'),
    );
    dso = await startDsoService(options);
    const head = dso.directory.current?.head;
    assert.is(head?.relayCount, 1);
    assert.is(head?.exit, undefined);
    assert.is(log.filter((line) => line.includes('"directory_without_exit"')).length, 1);
    assert.match(log.find((line) => line.includes('directory_without_exit'))!, 'cannot send through the mixnet');

    // The broker restarts without its retained messages: once the service is back, the directory is there again.
    await broker.close();
    broker = await startEmbeddedBroker({ log: () => {}, port: broker.port });
    const watcher = await mqtt.connectAsync(broker.url, { clientId: 'watcher' });
    const heads: Uint8Array[] = [];
    watcher.on('message', (_topic, payload) => heads.push(new Uint8Array(payload)));
    await watcher.subscribeAsync(RELAY_DIRECTORY_HEAD_TOPIC, { qos: 1 });
    await until(
      () => heads.length > 0,
      () => `the head again; log: ${log.slice(-2).join('\n')}`,
    );
    assert.equal(heads[0], dso.directory.current!.signedHead, 'the same head: no new epoch');
    await watcher.endAsync();
  } finally {
    await dso?.close();
    await broker.close();
    provisioning.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
