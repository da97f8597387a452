// The ledger node down and back: the bridge reaches anvil (`veilgrid ledger serve`'s node, anvil-node.ts)
// through a TCP relay on 127.0.0.1 that the test closes and opens again. While the node is unreachable offers
// keep arriving and are queued (and acknowledged: the broker does not need to keep them), /healthz says 503 with
// the reason, and once the node answers again every queued offer goes on chain exactly once with its receipt.
import net from 'node:net';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startBridge } from '../../host-tools/bridge/bridge.ts';
import { grantFor, openDeployedMarket, writeDeployment } from '../../host-tools/ledger/market.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import {
  BroadcastListener,
  connect,
  marketOnAnvil,
  publishOffer,
  signedOffer,
  tempDir,
  until,
} from './bridge-fixture.ts';

const test = suite('bridge with the ledger down and back');

/** A TCP relay 127.0.0.1:port → target that can be closed (connections cut, port refusing) and opened again. */
async function tcpRelay(target: URL) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const open = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        const upstream = net.connect(Number(target.port), target.hostname);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => {});
        }
        client.pipe(upstream).pipe(client);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as net.AddressInfo).port;
        resolve();
      });
    });
  await open();
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    open,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server!.close(() => resolve());
      }),
  };
}

test('offers queue while the node is unreachable and reach the chain once when it is back', async () => {
  const tmp = tempDir('veilgrid-bridge-down-');
  const chain = await marketOnAnvil(tmp.dir);
  const relay = await tcpRelay(new URL(chain.node.url));
  const broker = await startEmbeddedBroker({ log: () => {} });
  const listener = await BroadcastListener.start(broker.url);
  const meter = await connect(broker.url, { clientId: 'meter-down' });
  const viaRelay = path.join(tmp.dir, 'via-relay.json');
  writeDeployment(viaRelay, { ...chain.deployment, rpcUrl: relay.url });
  const lines: string[] = [];
  const market = await openDeployedMarket(viaRelay, [chain.relayerKey]);
  const bridge = await startBridge({
    market,
    relayer: market.ledger.accounts[0],
    db: path.join(tmp.dir, 'queue.db'),
    brokerUrl: broker.url,
    clientId: 'bridge',
    tickMs: 100,
    log: (line) => lines.push(line),
  });
  try {
    const keys = Array.from({ length: 10 }, () => generateTradingKey());
    await chain.market.issue(
      chain.dso,
      chain.feeder,
      keys.map((k) => grantFor(k.publicKey, chain.delivery, { production: 10 })),
    );
    const offers = keys.map((k, i) =>
      signedOffer(chain.market.domain, k, { side: 'ask', interval: chain.delivery, wh: 10, limitPrice: 100 + i }),
    );

    for (const o of offers.slice(0, 3)) await publishOffer(meter, 'meter-1', o.message);
    for (const o of offers.slice(0, 3)) assert.is((await listener.outcome(o.digest)).accepted, true);

    await relay.close();
    await until(() => !bridge.ledgerUp, 10_000, 'the bridge to notice the ledger is down');
    for (const o of offers.slice(3)) await publishOffer(meter, 'meter-1', o.message);
    await until(() => bridge.stats.queued === offers.length, 10_000, 'every offer queued');
    const health = await fetch(`${bridge.http!.url}/healthz`);
    assert.is(health.status, 503);
    assert.match(await health.text(), /does not answer/);
    assert.ok(
      lines.some((l) => l.includes('"event":"ledger_unreachable"')),
      'the outage is logged',
    );
    await new Promise((resolve) => setTimeout(resolve, 1500)); // a few retries against a closed port
    assert.is(await chain.market.offerCount(chain.delivery), 3, 'nothing reached the chain meanwhile');

    await relay.open();
    for (const o of offers) assert.is((await listener.outcome(o.digest, 30_000)).accepted, true, o.digest);
    assert.is(await chain.market.offerCount(chain.delivery), offers.length, 'every offer on chain once');
    assert.ok(bridge.ledgerUp);
    assert.is((await fetch(`${bridge.http!.url}/healthz`)).status, 200);
    assert.ok(lines.some((l) => l.includes('"event":"ledger_back"')));
    assert.equal(bridge.stats.rejectedOnChain, {});
  } finally {
    await bridge.close();
    await meter.endAsync();
    await listener.close();
    await broker.close();
    await relay.close().catch(() => {});
    await chain.node.stop();
    tmp.remove();
  }
});

test.run();
