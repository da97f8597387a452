// `veilgrid bridge` behind each broker's access rules (aedes with the broker folder, and mosquitto): it logs in as
// user "bridge" with the password of the broker folder, reads offers, and publishes what meters read. A meter
// learns the market from the retained market info, signs an offer for it, and reads its receipt; without a
// deployment file the bridge runs its own development market in process, so the offer has no asset behind it
// and the chain's reason (InsufficientAsset) comes back, as does the bridge's own for a bad signature.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../../host-tools/broker/mosquitto.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import { decodeMarketInfo } from '../../firmware/src/protocol/market-info.ts';
import { MARKET_INFO_TOPIC } from '../../firmware/src/protocol/topics.ts';
import { BroadcastListener, connect, publishOffer, signedOffer, tempDir } from './bridge-fixture.ts';

const CLI = path.resolve('bin/veilgrid.js');

type StartBroker = (
  credentials: BrokerCredentials,
  dir: string,
) => Promise<{ url: string; close(): Promise<void> } | undefined>;

function brokers(name: string, startBroker: StartBroker) {
  const test = suite(`bridge behind ${name}'s access rules`);
  test('the bridge reads offers and publishes receipts and market info that meters read', async () => {
    const tmp = tempDir('veilgrid-bridge-acl-');
    const credentials = new BrokerCredentials(path.join(tmp.dir, 'broker'));
    credentials.setUser('meter-1', 'password-of-meter-1');
    credentials.ensureBridgeUser();
    const broker = await startBroker(credentials, tmp.dir);
    if (!broker) return tmp.remove();
    // Started in the temporary folder, so no deployment file of this checkout is found.
    const child = spawn(
      process.execPath,
      [
        CLI,
        'bridge',
        '--broker',
        broker.url,
        '--broker-dir',
        credentials.dir,
        '--db',
        path.join(tmp.dir, 'q.db'),
        '--http',
        '127.0.0.1:0',
      ],
      { cwd: tmp.dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const login = { clientId: 'meter-1', username: 'meter-1', password: 'password-of-meter-1' };
    let meter: Awaited<ReturnType<typeof connect>> | undefined;
    let listener: BroadcastListener | undefined;
    try {
      meter = await connect(broker.url, login);
      const info = new Promise<Uint8Array>((resolve) =>
        meter!.on('message', (topic, payload) => topic === MARKET_INFO_TOPIC && resolve(new Uint8Array(payload))),
      );
      await meter.subscribeAsync(MARKET_INFO_TOPIC, { qos: 1 });
      const market = decodeMarketInfo(
        await Promise.race([info, exited.then(() => Promise.reject(new Error(`the bridge exited:\n${output}`)))]),
      );
      assert.match(output, /"event":"bridge_started"/);
      await meter.endAsync();
      meter = undefined;
      // The meter's one session both reads the broadcast and publishes its offers.
      listener = await BroadcastListener.start(broker.url, login);
      const key = generateTradingKey();
      const offer = signedOffer(market.domain, key, {
        side: 'ask',
        interval: market.fromInterval,
        wh: 100,
        limitPrice: market.productionPrice + 10,
      });
      await publishOffer(listener.client, 'meter-1', offer.message);
      assert.equal(await listener.outcome(offer.digest), { accepted: false, reason: 'InsufficientAsset' }, output);
      const forged = offer.message.slice();
      forged[120] ^= 1;
      const other = signedOffer(market.domain, key, {
        side: 'ask',
        interval: market.fromInterval,
        wh: 100,
        limitPrice: market.productionPrice + 10,
        seq: 1,
      });
      const otherForged = other.message.slice();
      otherForged[120] ^= 1;
      await publishOffer(listener.client, 'meter-1', otherForged);
      assert.equal(await listener.outcome(other.digest), { accepted: false, reason: 'bad-signature' });
      child.kill('SIGTERM');
      assert.is(await exited, 0, output);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await meter?.endAsync();
      await listener?.close();
      await broker.close();
      tmp.remove();
    }
  });
  test.run();
}

brokers('aedes', async (credentials) => {
  const broker = await startEmbeddedBroker({ auth: credentials, log: () => {} });
  return { url: broker.url, close: () => broker.close() };
});

brokers('mosquitto', async (credentials, dir) => {
  if (!findMosquitto()) {
    console.log(`  SKIPPED the mosquitto part: ${MOSQUITTO_MISSING}`);
    return undefined;
  }
  const mosquitto = await startMosquitto({ dir, configLines: credentials.mosquittoConfigLines() });
  return { url: mosquitto.url, close: () => mosquitto.stop() };
});
