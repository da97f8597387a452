// The DSO service with a market: meters publish sealed asset requests over MQTT (QoS 1), the service answers
// refusals at once and the accepted requests after issuing them; stopped between request and issuance and
// started again on the same files, it issues them once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeAssetReply, type AssetReply } from '../../firmware/src/protocol/asset-reply.ts';
import {
  ASSET_REQUEST_TOPIC_FILTER,
  assetReplyTopic,
  assetRequestTopic,
  meterIdFromAssetRequestTopic,
} from '../../firmware/src/protocol/topics.ts';
import { startCollector } from '../../host-tools/dso/collector.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { keyIdOfPoint } from '../../host-tools/dso/asset-issuance.ts';
import { createDsoKey } from '../../host-tools/dso/dso-key.ts';
import { startDsoService, type DsoService } from '../../host-tools/dso/dso-service.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { openDevelopmentMarket } from '../../host-tools/ledger/development-market.ts';
import { makeMeter, makeOperator, seal } from '../unit/verifier-fixtures.ts';
import {
  attestedRequest,
  until,
  CONSUMPTION_PRICE,
  DELIVERY,
  INTERVAL_SECONDS,
  LIMITS,
  PRODUCTION_PRICE,
  START_INTERVAL,
} from './asset-fixtures.ts';

test('asset requests over MQTT: refusals at once, issuance replies after the batch; a restart between request and issuance issues once', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-asset-service-'));
  const broker = await startEmbeddedBroker({ log: () => {} });
  const dev = await openDevelopmentMarket({
    intervalSeconds: INTERVAL_SECONDS,
    startInterval: START_INTERVAL,
    prices: { consumption: CONSUMPTION_PRICE, production: PRODUCTION_PRICE },
    feeder: { id: 7, production: 10n ** 12n, consumption: 10n ** 12n },
  });
  const dsoKey = createDsoKey(path.join(dir, 'dso-key.json'));
  const operator = makeOperator();
  const registry = new MeterRegistry(path.join(dir, 'dso.db'));
  registry.trustOperator(operator.certificate);
  const meters = Array.from({ length: 5 }, (_, i) => makeMeter(operator, `svc-${i}`, { limits: LIMITS }));
  for (const m of meters) registry.registerMeter(m.deviceCertificate);
  registry.close();
  const clock = { ms: (dev.market.deployment.genesisTime + START_INTERVAL * INTERVAL_SECONDS + 5) * 1000 };
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
      issuance: { now: () => clock.ms, tickMs: 50 },
    });
  const replies: Array<{ meterId: string; reply: AssetReply }> = [];
  const client = mqtt.connect(broker.url, { clientId: 'meters', protocolVersion: 4 });
  await new Promise((resolve) => client.once('connect', resolve));
  client.on('message', (topic, payload) =>
    replies.push({ meterId: topic.split('/')[2], reply: decodeAssetReply(new Uint8Array(payload)) }),
  );
  await client.subscribeAsync(
    meters.map((m) => assetReplyTopic(m.meterId)),
    { qos: 1 },
  );
  let dso: DsoService | undefined = await start();
  try {
    const publish = (meterIndex: number, fields: Parameters<typeof attestedRequest>[1]) => {
      const { signed, tradingKey } = attestedRequest(meters[meterIndex], fields);
      return client
        .publishAsync(assetRequestTopic(meters[meterIndex].meterId), Buffer.from(seal(dsoKey.publicKey, signed)), {
          qos: 1,
        })
        .then(() => tradingKey);
    };
    // a refusal is answered at once
    await publish(0, { interval: DELIVERY, productionWh: 5000 });
    await until(
      () => replies.length === 1,
      () => `a refusal reply; log: ${log.slice(-3).join('\n')}`,
    );
    assert.equal(replies[0], {
      meterId: 'svc-0',
      reply: { interval: DELIVERY, issued: false, reason: 'above-meter-limit' },
    });
    // accepted requests: nothing answered before issuance
    const keys = [];
    for (let i = 0; i < meters.length; i++)
      keys.push(
        await publish(i, { interval: DELIVERY, productionWh: i % 2 ? 300 : 0, consumptionWh: i % 2 ? 0 : 200 }),
      );
    await until(
      () => dso!.assets!.requestsOf(DELIVERY).length === 5,
      () => 'five requests stored',
    );
    // stopped between request and issuance, started again on the same files
    await dso.close();
    dso = await start();
    clock.ms = dso.issuer!.issueAtMs(DELIVERY);
    await until(
      () => replies.length === 6,
      () => `five issued replies, got ${JSON.stringify(replies)}`,
    );
    assert.ok(replies.slice(1).every((r) => r.reply.issued && r.reply.interval === DELIVERY));
    assert.equal(
      replies
        .slice(1)
        .map((r) => r.meterId)
        .sort(),
      meters.map((m) => m.meterId),
    );
    for (const [i, key] of keys.entries()) {
      const holding = await dev.market.holding(keyIdOfPoint(key.publicKey), DELIVERY);
      assert.equal([holding.production, holding.consumption], i % 2 ? [512n, 0n] : [0n, 256n], `meter ${i}`);
    }
    assert.is(dso.assets!.batchesOf(DELIVERY).length, 1, 'one batch for the feeder');
    const metrics = await (await fetch(`${dso.http.url}/metrics`)).text();
    assert.match(metrics, 'veilgrid_dso_asset_grants_issued_total 5');
    assert.match(metrics, 'veilgrid_dso_asset_requests_pending 0');
    assert.match(
      metrics,
      'veilgrid_dso_asset_requests_total{outcome="above-meter-limit"} 0',
      'counted from 0 by each process',
    );
    assert.match(metrics, /veilgrid_dso_asset_issuance_lag_seconds \d/);
  } finally {
    await dso?.close();
    await client.endAsync();
    await broker.close();
  }
});

test("the collector's asset intake: oversized requests and a flooding meter's are dropped unread, before any ECDH", async () => {
  const broker = await startEmbeddedBroker({ log: () => {} });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-asset-intake-'));
  const store = new ReadingStore(path.join(dir, 'readings.db'));
  const handled: string[] = [];
  const collector = await startCollector({
    brokerUrl: broker.url,
    db: store,
    log: () => {},
    budget: { burst: 3, perSecond: 0 },
    intakes: [
      {
        filter: ASSET_REQUEST_TOPIC_FILTER,
        meterIdFromTopic: meterIdFromAssetRequestTopic,
        handle: (meterId) => (handled.push(meterId), { refused: meterId === 'flooder' }),
      },
    ],
  });
  const client = mqtt.connect(broker.url, { clientId: 'meters', protocolVersion: 4 });
  try {
    await new Promise((resolve) => client.once('connect', resolve));
    for (let i = 0; i < 10; i++)
      await client.publishAsync(assetRequestTopic('flooder'), Buffer.alloc(300, i), { qos: 1 });
    for (let i = 0; i < 5; i++)
      await client.publishAsync(assetRequestTopic('honest'), Buffer.alloc(300, i), { qos: 1 });
    await client.publishAsync(assetRequestTopic('honest'), Buffer.alloc(1500), { qos: 1 });
    await until(
      () => collector.stats.dropped.rateLimited + collector.stats.dropped.oversize === 8,
      () => JSON.stringify(collector.stats),
    );
    assert.is(
      handled.filter((m) => m === 'flooder').length,
      3,
      "the flooder's budget of refusals, then dropped unread",
    );
    assert.is(handled.filter((m) => m === 'honest').length, 5, 'accepted requests cost nothing');
    assert.equal(collector.stats.dropped, { oversize: 1, rateLimited: 7 });
  } finally {
    await client.endAsync();
    await collector.close();
    store.close();
    await broker.close();
  }
});

test.run();
