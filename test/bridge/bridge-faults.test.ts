// Faults on a fresh in-process market each. A batch left pending is replaced: with the in-process EVM's automine off, the bridge's submitOffers stays in
// the mempool; after replaceAfterMs the bridge signs the same batch again under the same nonce with higher fees.
// When a block is mined, one of the two is in it, the offers are on chain once, and the receipt names them.
// And a batch mined only after its offers' gate closed: the chain refuses them as GateClosed, and says so. And a
// meter that spends its budget of refused messages is dropped unread until it refills; other meters are not. And
// a key banned in the same block as the batch, ahead of it: the chain's KeyRevoked in the receipt.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startBridge, type Bridge, type BridgeOptions } from '../../host-tools/bridge/bridge.ts';
import { grantFor } from '../../host-tools/ledger/market.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import { compileContracts } from '../../host-tools/ledger/compile.ts';
import { keccak256, stringToBytes } from 'viem';
import { DELIVERY, FEEDER, marketFixture, type MarketFixture } from '../ledger/market-fixture.ts';
import type { MqttClient } from 'mqtt';
import { BroadcastListener, connect, publishOffer, signedOffer, tempDir, until } from './bridge-fixture.ts';

const test = suite('bridge faults in process');

type Bed = {
  f: MarketFixture;
  bridge: Bridge;
  listener: BroadcastListener;
  meter: MqttClient;
  lines: string[];
  brokerUrl: string;
};

/** A fresh in-process market, an embedded broker, a meter, a listener and a bridge with these options. */
async function withBridge(options: Partial<BridgeOptions>, run: (bed: Bed) => Promise<void>) {
  const tmp = tempDir('veilgrid-bridge-pending-');
  const f = await marketFixture();
  const broker = await startEmbeddedBroker({ log: () => {} });
  const listener = await BroadcastListener.start(broker.url);
  const meter = await connect(broker.url, { clientId: 'meter-r' });
  const lines: string[] = [];
  const bridge = await startBridge({
    market: f.market,
    relayer: f.relayer,
    db: path.join(tmp.dir, 'q.db'),
    brokerUrl: broker.url,
    clientId: 'bridge',
    tickMs: 50,
    log: (l) => lines.push(l),
    http: false,
    ...options,
  });
  try {
    await run({ f, bridge, listener, meter, lines, brokerUrl: broker.url });
  } finally {
    await bridge.close();
    await meter.endAsync();
    await listener.close();
    await broker.close();
    tmp.remove();
  }
}

test('a batch pending past replaceAfterMs is sent again with higher fees under its nonce; mined once', () =>
  withBridge({ replaceAfterMs: 300 }, async ({ f, bridge, listener, meter, lines }) => {
    const keys = [generateTradingKey(), generateTradingKey()];
    await f.market.issue(
      f.dso,
      FEEDER,
      keys.map((k) => grantFor(k.publicKey, DELIVERY, { production: 10 })),
    );
    const offers = keys.map((k, i) =>
      signedOffer(f.market.domain, k, { side: 'ask', interval: DELIVERY, wh: 10, limitPrice: 120 + i }),
    );
    await f.ledger.request('evm_setAutomine', [false]);
    for (const o of offers) await publishOffer(meter, 'meter-r', o.message);
    await until(() => bridge.stats.replacements >= 1, 20_000, 'a replacement');
    assert.is(await f.market.offerCount(DELIVERY), 0, 'nothing mined yet');
    await f.ledger.request('evm_mine');
    await f.ledger.request('evm_setAutomine', [true]);
    for (const o of offers) assert.is((await listener.outcome(o.digest)).accepted, true);
    assert.is(await f.market.offerCount(DELIVERY), offers.length, 'each offer once');
    const sent = lines.filter((l) => l.includes('"event":"batch_sent"')).map((l) => JSON.parse(l) as { nonce: number });
    const replaced = lines
      .filter((l) => l.includes('"event":"batch_replaced"'))
      .map((l) => JSON.parse(l) as { nonce: number; old: string; hash: string });
    assert.ok(replaced.length >= 1);
    assert.ok(
      replaced.every((r) => sent.some((s) => s.nonce === r.nonce) && r.old !== r.hash),
      'same nonce, another transaction',
    );
    assert.equal(bridge.stats.rejectedOnChain, {});
  }));

test('an offer the bridge took in time but mined after gate closure is refused by the chain as GateClosed', () =>
  withBridge({ clearing: false }, async ({ f, bridge, listener, meter }) => {
    const key = generateTradingKey();
    await f.market.issue(f.dso, FEEDER, [grantFor(key.publicKey, DELIVERY, { production: 10 })]);
    const offer = signedOffer(f.market.domain, key, { side: 'ask', interval: DELIVERY, wh: 10, limitPrice: 120 });
    await f.ledger.request('evm_setAutomine', [false]);
    await publishOffer(meter, 'meter-r', offer.message);
    await until(() => bridge.stats.batches >= 1, 20_000, 'the batch sent');
    await f.passGateClosure(DELIVERY); // mines the pending batch in a block at or after the gate closure
    await f.ledger.request('evm_setAutomine', [true]);
    assert.equal(await listener.outcome(offer.digest), { accepted: false, reason: 'GateClosed' });
    assert.equal(bridge.stats.rejectedOnChain, { GateClosed: 1 });
    assert.is(await f.market.offerCount(DELIVERY), 0);
  }));

test('a key revoked after the bridge checked its offer: the chain refuses it as KeyRevoked, and the receipt says so', () =>
  withBridge({ clearing: false }, async ({ f, bridge, listener, meter }) => {
    const key = generateTradingKey();
    await f.market.issue(f.dso, FEEDER, [grantFor(key.publicKey, DELIVERY, { production: 10 })]);
    const offer = signedOffer(f.market.domain, key, { side: 'ask', interval: DELIVERY, wh: 10, limitPrice: 120 });
    await f.ledger.request('evm_setAutomine', [false]);
    // The ban waits in the mempool ahead of the bridge's batch: the bridge's check (mined KeyRevoked events) passes.
    const { Market } = compileContracts();
    await f.ledger.wallet(f.dso).writeContract({
      address: f.market.deployment.market,
      abi: Market.abi,
      functionName: 'ban',
      args: [keccak256(stringToBytes('meter-late-ban')), [key.keyId], []],
    });
    await publishOffer(meter, 'meter-r', offer.message);
    await until(() => bridge.stats.batches >= 1, 20_000, 'the batch sent');
    await f.ledger.request('evm_mine');
    await f.ledger.request('evm_setAutomine', [true]);
    assert.equal(await listener.outcome(offer.digest), { accepted: false, reason: 'KeyRevoked' });
    assert.equal(bridge.stats.rejectedOnChain, { KeyRevoked: 1 });
  }));

test('a meter past its budget of refused and duplicate messages is dropped unread and unanswered', () =>
  withBridge({ budget: { burst: 3, perSecond: 0 } }, async ({ f, bridge, listener, meter, lines, brokerUrl }) => {
    const key = generateTradingKey();
    const offer = signedOffer(f.market.domain, key, { side: 'ask', interval: DELIVERY, wh: 10, limitPrice: 120 });
    const junk = [Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3), Uint8Array.of(4), Uint8Array.of(5)];
    for (const j of junk) await publishOffer(meter, 'meter-r', j);
    await publishOffer(meter, 'meter-r', offer.message);
    await until(() => bridge.stats.received === junk.length + 1, 10_000, 'every message taken');
    assert.equal(bridge.stats.dropped, { malformed: 3, 'rate-limited': 3 });
    assert.is(bridge.stats.queued, 0, 'even a valid offer of that meter is dropped while its budget is spent');
    assert.is(lines.filter((l) => l.includes('"reason":"rate-limited"')).length, 1, 'logged once per episode');
    await until(() => listener.outcomes.size >= 3, 10_000, 'the receipts of the messages read');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.is(listener.outcomes.size, 3, 'receipts only for the messages read');
    const other = await connect(brokerUrl, { clientId: 'meter-s' });
    try {
      await publishOffer(other, 'meter-s', offer.message);
      await until(() => bridge.stats.queued === 1, 10_000, "another meter's offer taken");
    } finally {
      await other.endAsync();
    }
  }));

test.run();
