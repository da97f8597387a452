// The bridge in process, over an embedded broker and the in-process EVM: every bad input of issue 10 ends in a
// receipt with its reason (the bridge's own, or the chain's for what only the chain can know), valid offers
// end on chain with their book index, an offer another relayer already put on chain is reported accepted
// (not refused as Replayed), and after gate closure the interval is cleared, settled and broadcast with each
// offer's fill; /metrics and /healthz answer on 127.0.0.1.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { keccak256, stringToBytes, toHex } from 'viem';
import { encodeOffer, encodeOfferMessage } from '../../firmware/src/protocol/offer.ts';
import { encode } from '../../firmware/src/protocol/cbor.ts';
import { findFill } from '../../firmware/src/protocol/market-broadcast.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startBridge, type Bridge } from '../../host-tools/bridge/bridge.ts';
import { grantFor } from '../../host-tools/ledger/market.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import { amountToBigint } from '../../host-tools/bridge/amount.ts';
import { DELIVERY, FEEDER, START_INTERVAL, marketFixture, type MarketFixture } from '../ledger/market-fixture.ts';
import { BroadcastListener, connect, publishOffer, signedOffer, tempDir, until } from './bridge-fixture.ts';
import type { MqttClient } from 'mqtt';
import { decodeMarketInfo } from '../../firmware/src/protocol/market-info.ts';
import { MARKET_INFO_TOPIC } from '../../firmware/src/protocol/topics.ts';

const test = suite('bridge in process');

interface Context {
  f: MarketFixture;
  broker: EmbeddedBroker;
  bridge: Bridge;
  meter: MqttClient;
  listener: BroadcastListener;
  tmp: ReturnType<typeof tempDir>;
}

const ctx = {} as Context;

test.before(async () => {
  ctx.tmp = tempDir('veilgrid-bridge-');
  ctx.f = await marketFixture();
  ctx.broker = await startEmbeddedBroker({ log: () => {} });
  ctx.listener = await BroadcastListener.start(ctx.broker.url);
  ctx.bridge = await startBridge({
    market: ctx.f.market,
    relayer: ctx.f.relayer,
    db: path.join(ctx.tmp.dir, 'bridge.db'),
    brokerUrl: ctx.broker.url,
    clientId: 'bridge',
    tickMs: 50,
    log: () => {},
  });
  ctx.meter = await connect(ctx.broker.url, { clientId: 'meter-1' });
});

test.after(async () => {
  await ctx.meter?.endAsync();
  await ctx.listener?.close();
  await ctx.bridge?.close();
  await ctx.broker?.close();
  ctx.tmp?.remove();
});

test('bad input is refused with its reason; valid offers reach the chain; the chain reports what only it knows', async () => {
  const { f, meter, listener, bridge } = ctx;
  const seller = generateTradingKey();
  const buyer = generateTradingKey();
  const banned = generateTradingKey();
  await f.market.issue(f.dso, FEEDER, [
    grantFor(seller.publicKey, DELIVERY, { production: 1000 }),
    grantFor(buyer.publicKey, DELIVERY, { consumption: 1000, money: 200n * 1000n }),
    grantFor(banned.publicKey, DELIVERY, { production: 100 }),
  ]);
  const domain = f.market.domain;
  const ask = signedOffer(domain, seller, { side: 'ask', interval: DELIVERY, wh: 600, limitPrice: 150 });
  const bid = signedOffer(domain, buyer, { side: 'bid', interval: DELIVERY, wh: 500, limitPrice: 200 });

  // Bad input the bridge refuses itself.
  const forged = ask.message.slice();
  forged.set(generateTradingKey().sign(forged.subarray(0, 113)), 113);
  const forgedDigest = ask.digest; // same signed bytes: the digest names the offer, whatever the signature
  const mutated = signedOffer(domain, seller, { side: 'ask', interval: DELIVERY, wh: 10, limitPrice: 150, seq: 1 });
  const mutatedMessage = mutated.message.slice();
  mutatedMessage[150] ^= 0x01;
  const changedBytes = signedOffer(domain, seller, {
    side: 'ask',
    interval: DELIVERY,
    wh: 10,
    limitPrice: 150,
    seq: 2,
  });
  const changedMessage = changedBytes.message.slice();
  changedMessage[40] ^= 0x01; // wh changed after signing
  const short = ask.message.subarray(0, 176);
  const cbor = encode({ offer: 'not this' });
  const sideThree = encodeOffer(domain, {
    side: 'ask',
    interval: DELIVERY,
    wh: 1,
    limitPrice: 1,
    seq: 3,
    key: seller.publicKey,
  });
  sideThree[32] = 3;
  const sideThreeMessage = encodeOfferMessage(sideThree, seller.sign(sideThree));
  const otherMarket = signedOffer(
    { chainId: domain.chainId, market: '0x00000000000000000000000000000000000000aa' },
    seller,
    { side: 'ask', interval: DELIVERY, wh: 10, limitPrice: 150 },
  );
  const otherChain = signedOffer({ chainId: 1, market: domain.market }, seller, {
    side: 'ask',
    interval: DELIVERY,
    wh: 10,
    limitPrice: 150,
  });
  const late = signedOffer(domain, seller, { side: 'ask', interval: START_INTERVAL, wh: 10, limitPrice: 150 });

  await publishOffer(meter, 'meter-1', forged);
  assert.equal(await listener.outcome(forgedDigest), { accepted: false, reason: 'bad-signature' });
  for (const [message, digest, reason] of [
    [mutatedMessage, mutated.digest, 'bad-signature'],
    [changedMessage, toHex(sha(changedMessage.subarray(0, 113))), 'bad-signature'],
    [short, toHex(sha(short)), 'malformed'],
    [cbor, toHex(sha(cbor)), 'malformed'],
    [sideThreeMessage, toHex(sha(sideThree)), 'malformed'],
    [otherMarket.message, otherMarket.digest, 'wrong-market'],
    [otherChain.message, otherChain.digest, 'wrong-market'],
    [late.message, late.digest, 'gate-closed'],
  ] as const) {
    await publishOffer(meter, 'meter-1', message);
    assert.equal(await listener.outcome(digest), { accepted: false, reason }, `${reason}: ${digest}`);
  }

  // A key revoked on chain: the bridge reads KeyRevoked and drops its offers without spending gas.
  await f.market.ban(f.dso, keccak256(stringToBytes('meter-banned')), [banned.keyId], []);
  await bridge.waitFor((s) => s.revokedKeys >= 1, 30_000);
  const revoked = signedOffer(domain, banned, { side: 'ask', interval: DELIVERY, wh: 50, limitPrice: 150 });
  await publishOffer(meter, 'meter-1', revoked.message);
  assert.equal(await listener.outcome(revoked.digest), { accepted: false, reason: 'revoked-key' });

  // Valid offers: on chain, with their index in the book.
  await publishOffer(meter, 'meter-1', ask.message);
  await publishOffer(meter, 'meter-2', bid.message);
  // The forged copy of the ask came first and was refused for its signature; the genuine one is still taken.
  // Two keys' offers in one batch go on chain in random order (batch-order.ts): together they fill places 0 and 1.
  const askAccepted = await listener.accepted(ask.digest);
  const bidAccepted = await listener.outcome(bid.digest);
  assert.equal(
    [askAccepted, bidAccepted].map((o) => [o.accepted, o.interval]),
    [
      [true, DELIVERY],
      [true, DELIVERY],
    ],
  );
  assert.equal([askAccepted.index, bidAccepted.index].sort(), [0, 1]);

  // A duplicate (a QoS 1 redelivery, a meter sending again) is not sent again; its outcome is published again.
  await publishOffer(meter, 'meter-1', ask.message);
  await until(() => (listener.outcomes.get(ask.digest)?.length ?? 0) >= 3, 10_000, 'the outcome again');
  assert.equal(listener.outcomes.get(ask.digest)![2], askAccepted);
  // And a message refused before gets its refusal again.
  await publishOffer(meter, 'meter-1', short);
  await until(() => (listener.outcomes.get(toHex(sha(short)))?.length ?? 0) >= 2, 10_000, 'the refusal again');
  assert.equal(listener.outcomes.get(toHex(sha(short)))![1], { accepted: false, reason: 'malformed' });

  // What only the chain knows: above the asset, a double spend of one asset, a bid above its money.
  const above = signedOffer(domain, seller, { side: 'ask', interval: DELIVERY, wh: 5000, limitPrice: 150, seq: 10 });
  const doubleSpend = signedOffer(domain, seller, {
    side: 'ask',
    interval: DELIVERY,
    wh: 600,
    limitPrice: 140,
    seq: 11,
  });
  const rich = signedOffer(domain, buyer, { side: 'bid', interval: DELIVERY, wh: 400, limitPrice: 300_000, seq: 12 });
  for (const o of [above, doubleSpend, rich]) await publishOffer(meter, 'meter-1', o.message);
  assert.equal(await listener.outcome(above.digest), { accepted: false, reason: 'InsufficientAsset' });
  assert.equal(await listener.outcome(doubleSpend.digest), { accepted: false, reason: 'InsufficientAsset' });
  assert.equal(await listener.outcome(rich.digest), { accepted: false, reason: 'InsufficientMoney' });

  // An offer another relayer already put on chain: the chain answers Replayed, the bridge finds it on chain.
  const elsewhere = signedOffer(domain, seller, { side: 'ask', interval: DELIVERY, wh: 100, limitPrice: 160, seq: 20 });
  await f.market.submitOffer(f.anyone, elsewhere.message.subarray(0, 113), elsewhere.message.subarray(113));
  await publishOffer(meter, 'meter-1', elsewhere.message);
  const replayed = await listener.outcome(elsewhere.digest);
  assert.is(replayed.accepted, true, 'an offer on chain is accepted, whoever relayed it');
  assert.is(replayed.index, 2);
  assert.is(bridge.stats.alreadyOnChain, 1);
  assert.is(bridge.stats.rejectedOnChain.Replayed, undefined, 'a Replayed answer for an offer on chain is no refusal');
  assert.is(await f.market.offerCount(DELIVERY), 3);
  assert.equal(bridge.stats.dropped, {
    'bad-signature': 3,
    malformed: 3,
    'wrong-market': 2,
    'gate-closed': 1,
    'revoked-key': 1,
    duplicate: 2,
  });

  // After gate closure: cleared, settled, and every offer's fill broadcast.
  await f.passGateClosure(DELIVERY);
  await until(
    () => (listener.clearing.get(DELIVERY)?.length ?? 0) >= 1,
    30_000,
    `the clearing result of interval ${DELIVERY}`,
  );
  const [part] = listener.clearing.get(DELIVERY)!;
  assert.is(part.parts, 1);
  assert.is(part.offers, 3);
  assert.is(part.fills.length, 3);
  const askFill = findFill(part, hexBytes(ask.digest))!;
  const bidFill = findFill(part, hexBytes(bid.digest))!;
  assert.is(part.volumeWh, 500);
  assert.is(bidFill.fillWh, 500);
  assert.is(askFill.fillWh + findFill(part, hexBytes(elsewhere.digest))!.fillWh, 500);
  assert.is(amountToBigint(bidFill.paid), 500n * BigInt(part.price));
  assert.ok(part.price >= 150 && part.price <= 200, `price ${part.price}`);
});

test("the market info is kept retained: deployment, clock and the next interval's prices", async () => {
  const { f, broker } = ctx;
  const reader = await connect(broker.url);
  try {
    const info = new Promise<Uint8Array>((resolve) =>
      reader.on('message', (_topic, payload) => resolve(new Uint8Array(payload))),
    );
    await reader.subscribeAsync(MARKET_INFO_TOPIC, { qos: 1 });
    const decoded = decodeMarketInfo(await info);
    assert.equal(decoded.domain, { chainId: f.market.domain.chainId, market: f.market.domain.market.toLowerCase() });
    assert.is(decoded.intervalSeconds, f.market.deployment.intervalSeconds);
    assert.is(decoded.genesisTime, f.market.deployment.genesisTime);
    assert.ok(decoded.fromInterval > DELIVERY, 'after the gate closure above, the next interval is later');
    assert.equal([decoded.consumptionPrice, decoded.productionPrice], [300, 100]);
  } finally {
    await reader.endAsync();
  }
});

test('/metrics counts by reason and /healthz says ok, on 127.0.0.1', async () => {
  const { bridge } = ctx;
  assert.match(bridge.http!.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const metrics = await (await fetch(`${bridge.http!.url}/metrics`)).text();
  assert.match(metrics, /veilgrid_bridge_offers_dropped_total\{reason="bad-signature"\} 3/);
  assert.match(metrics, /veilgrid_bridge_offers_rejected_on_chain_total\{reason="InsufficientAsset"\} 2/);
  assert.match(metrics, /veilgrid_bridge_offers_accepted_total 3/);
  assert.match(metrics, /veilgrid_bridge_queue_offers\{state="queued"\} 0/);
  const health = await fetch(`${bridge.http!.url}/healthz`);
  assert.is(health.status, 200);
});

function sha(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.slice(2), 'hex'));
}

test.run();
