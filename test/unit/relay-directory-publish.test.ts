// The DSO's relay directory: the active meters of its registry, the head signed with the DSO key, published
// retained so a meter connecting later gets every page, walked through the chain, and anchored on the ledger.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt from 'mqtt';
import { toHex } from 'viem';
import { ALG_ES256 } from '../../firmware/src/protocol/cose.ts';
import { decodeRelayDirectoryHead, kidOf, openSignedCertificate } from '../../firmware/src/protocol/certificate.ts';
import { checkDirectoryPage, relayRecordAt } from '../../firmware/src/protocol/relay-directory.ts';
import { RELAY_DIRECTORY_HEAD_TOPIC } from '../../firmware/src/protocol/topics.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { nodeSha256, nodeVerifyEs256 } from '../../host-tools/crypto/node-primitives.ts';
import { createDsoKey } from '../../host-tools/dso/dso-key.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { publishRelayDirectory, relaysOf, signRelayDirectory } from '../../host-tools/dso/relay-directory.ts';
import { openDevelopmentMarket } from '../../host-tools/ledger/development-market.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeMeter, makeOperator } from './verifier-fixtures.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('the active meters, signed, published retained, recovered by a late subscriber and anchored on the ledger', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-directory-'));
  const registry = new MeterRegistry(':memory:');
  const broker = await startEmbeddedBroker({ log: () => {} });
  const clients: mqtt.MqttClient[] = [];
  try {
    const dsoKey = createDsoKey(path.join(dir, 'dso-key.json'));
    const operator = makeOperator('operator-a');
    registry.trustOperator(operator.certificate);
    const meters = Array.from({ length: 30 }, (_, i) => makeMeter(operator, `meter-${i}`));
    for (const meter of meters) registry.registerMeter(meter.deviceCertificate);
    registry.revoke('meter-3', 'stolen');
    const directory = signRelayDirectory(dsoKey, 1_800_000_000, relaysOf(registry));
    assert.is(directory.head.relayCount, 29);
    assert.is(directory.pages.length, 2);

    const dso = await mqtt.connectAsync(broker.url, { clientId: 'dso' });
    clients.push(dso);
    await publishRelayDirectory(
      (topic, payload) => dso.publishAsync(topic, Buffer.from(payload), { qos: 1, retain: true }).then(() => {}),
      directory,
      5,
    );

    // A meter subscribing later gets the head and every page, retained.
    const meter = await mqtt.connectAsync(broker.url, { clientId: 'late-meter' });
    clients.push(meter);
    const received = new Map<string, Uint8Array>();
    meter.on('message', (topic, payload) => received.set(topic, new Uint8Array(payload)));
    await meter.subscribeAsync('veilgrid/directory/#', { qos: 1 });
    const deadline = Date.now() + 5000;
    while (received.size < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(
      [...received.keys()].sort(),
      [RELAY_DIRECTORY_HEAD_TOPIC, 'veilgrid/directory/pages/0', 'veilgrid/directory/pages/1'],
      'the stale pages 2-4 were cleared',
    );

    const opened = openSignedCertificate(received.get(RELAY_DIRECTORY_HEAD_TOPIC)!, ALG_ES256);
    assert.equal(opened.kid, kidOf(nodeSha256, dsoKey.publicKey));
    assert.ok(
      nodeVerifyEs256(dsoKey.publicKey, opened.toBeSigned, opened.signature),
      'the head verifies under the DSO key',
    );
    const head = decodeRelayDirectoryHead(opened.payload);
    const first = checkDirectoryPage(
      nodeSha256,
      head,
      0,
      head.firstPageHash,
      received.get('veilgrid/directory/pages/0')!,
    );
    const second = checkDirectoryPage(
      nodeSha256,
      head,
      1,
      first.nextPageHash,
      received.get('veilgrid/directory/pages/1')!,
    );
    const listed = [...Array(first.count).keys()]
      .map((i) => relayRecordAt(first.records, i))
      .concat([...Array(second.count).keys()].map((i) => relayRecordAt(second.records, i)));
    const expected = meters
      .filter((_, i) => i !== 3)
      .map((m) => hex(kidOf(nodeSha256, m.mix.publicKey)))
      .sort();
    assert.equal(
      listed.map((r) => hex(r.relayId)),
      expected,
      'every active meter, the revoked one left out',
    );

    const market = await openDevelopmentMarket({
      intervalSeconds: 60,
      startInterval: 10,
      prices: { consumption: 300, production: 80 },
      feeder: { id: 1, production: 10_000n, consumption: 10_000n },
    });
    await market.market.anchorDirectory(market.dso, directory.head.epoch, toHex(directory.headHash));
    assert.equal(await market.market.directoryAnchor(), {
      epoch: directory.head.epoch,
      headHash: toHex(directory.headHash),
    });
    const again = await market.market.anchorDirectory(market.dso, directory.head.epoch, toHex(directory.headHash)).then(
      () => 'accepted',
      (err: Error) => err.message,
    );
    assert.match(again, /StaleDirectory/, 'an epoch not above the last is refused');
  } finally {
    for (const client of clients) await client.endAsync();
    await broker.close();
    registry.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
