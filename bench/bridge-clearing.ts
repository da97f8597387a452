// Gate closure to clearing result on the broadcast topic, through the bridge alone (the testbed measures the
// same with meters in front): anvil (`veilgrid ledger serve`'s node, one block per transaction) with a market of
// short intervals, an embedded broker, the bridge in this process with its defaults (a chain turn every 250 ms,
// settle chunks of 200), and per interval N offers (half asks, half bids that cross) sent over MQTT before the
// gate closes. The clock runs from the interval's gate closure (wall time; anvil stamps blocks with it) to the
// last part of its clearing result arriving at a subscriber.
// Usage: node --import tsx bench/bridge-clearing.ts [--offers 100] [--intervals 5] [--interval-seconds 12]
import { parseArgs } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { startEmbeddedBroker } from '../host-tools/broker/embedded-broker.ts';
import { startBridge } from '../host-tools/bridge/bridge.ts';
import { startAnvil } from '../host-tools/ledger/anvil-node.ts';
import { developmentKeys, openLedger } from '../host-tools/ledger/ledger-client.ts';
import { deployMarket, grantFor, MarketClient } from '../host-tools/ledger/market.ts';
import { generateTradingKey } from '../host-tools/ledger/trading-key.ts';
import { BroadcastListener, connect, publishOffer, signedOffer, until } from '../test/bridge/bridge-fixture.ts';

const { values } = parseArgs({
  options: {
    offers: { type: 'string', default: '100' },
    intervals: { type: 'string', default: '5' },
    'interval-seconds': { type: 'string', default: '12' },
  },
});
const perInterval = Number(values.offers);
const intervals = Number(values.intervals);
const intervalSeconds = Number(values['interval-seconds']);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-bench-clearing-'));
const node = await startAnvil({ port: 0 });
const broker = await startEmbeddedBroker({ log: () => {} });
const latencies: number[] = [];
try {
  const ledger = await openLedger({ kind: 'rpc', url: node.url, privateKeys: developmentKeys(2) });
  for (const a of ledger.accounts)
    await ledger.request('anvil_setBalance', [a.address, `0x${(10n ** 24n).toString(16)}`]);
  const [dso, relayer] = ledger.accounts;
  const now = Math.floor(Date.now() / 1000);
  const deployment = await deployMarket(ledger, dso, {
    intervalSeconds,
    genesisTime: now - 100 * intervalSeconds,
    rpcUrl: node.url,
  });
  const market = new MarketClient(ledger, deployment);
  await market.setPrices(dso, 101, 300, 100);
  await market.setFeederLimit(dso, 1, 10n ** 12n, 10n ** 12n);
  const listener = await BroadcastListener.start(broker.url);
  const meter = await connect(broker.url, { clientId: 'bench-meters' });
  const bridge = await startBridge({
    market,
    relayer,
    db: path.join(dir, 'q.db'),
    brokerUrl: broker.url,
    clientId: 'bridge',
    log: process.env.BENCH_LOG ? (l) => console.error(l) : () => {},
    http: false,
  });
  try {
    for (let k = 0; k < intervals; k++) {
      // The interval after the running one, with at least 60 % of an interval left to get its offers in.
      let d = Math.floor((Date.now() / 1000 - deployment.genesisTime) / intervalSeconds) + 1;
      if (deployment.genesisTime + d * intervalSeconds - Date.now() / 1000 < 0.6 * intervalSeconds) d++;
      const keys = Array.from({ length: perInterval }, () => generateTradingKey());
      await market.issue(
        dso,
        1,
        keys.map((key, i) =>
          grantFor(key.publicKey, d, i % 2 ? { consumption: 100, money: 100n * 300n } : { production: 100 }),
        ),
      );
      const offers = keys.map((key, i) =>
        signedOffer(market.domain, key, {
          side: i % 2 ? 'bid' : 'ask',
          interval: d,
          wh: 100,
          limitPrice: i % 2 ? 200 + (i % 50) : 150 + (i % 50),
        }),
      );
      for (const o of offers) await publishOffer(meter, 'bench-meter', o.message);
      await until(() => offers.every((o) => listener.outcomes.has(o.digest)), 60_000, 'receipts');
      const closure = (deployment.genesisTime + d * intervalSeconds) * 1000;
      if (Date.now() > closure)
        throw new Error(
          `interval ${d}: the offers were not on chain before its gate closed; give --interval-seconds more`,
        );
      await until(
        () =>
          (listener.clearing.get(d)?.length ?? 0) >= 1 &&
          listener.clearing.get(d)!.length >= listener.clearing.get(d)![0].parts,
        60_000,
        `the clearing of ${d}`,
      );
      const latency = Date.now() - closure;
      const parts = listener.clearing.get(d)!;
      latencies.push(latency);
      console.log(
        `interval ${d}: ${parts[0].offers} offers, ${parts[0].volumeWh} Wh at ${parts[0].price}, ${parts.length} messages, gate closure to last part ${latency} ms`,
      );
    }
  } finally {
    await bridge.close();
    await meter.endAsync();
    await listener.close();
  }
} finally {
  await broker.close();
  await node.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
const sorted = [...latencies].sort((a, b) => a - b);
const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
console.log(
  `gate closure to clearing result, ${perInterval} offers per interval, ${latencies.length} intervals: p50 ${at(0.5)} ms, max ${sorted[sorted.length - 1]} ms (Node ${process.version}, ${os.cpus()[0]?.model}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)})`,
);
