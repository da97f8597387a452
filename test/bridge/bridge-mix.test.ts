// The bridge as the mixnet's exit, in process (embedded broker, in-process EVM): offers that come as onion
// packets through two relays reach the chain and get receipts like direct ones; dummies, replays and every
// kind of bad packet are dropped and counted by outcome on /metrics, with one log line per round-slot; an
// offer from a key the DSO issued nothing to is dropped unanswered; a key past its budget of refusals is
// dropped unread; and the exit key sits in the bridge's folder.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { PAYLOAD_DUMMY, PAYLOAD_OFFER } from '../../firmware/src/protocol/onion-packet.ts';
import { MIX_EXIT_TOPIC } from '../../firmware/src/protocol/topics.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startBridge, type Bridge } from '../../host-tools/bridge/bridge.ts';
import { readExitKey, EXIT_KEY_FILE } from '../../host-tools/bridge/exit-key.ts';
import { grantFor } from '../../host-tools/ledger/market.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import { DELIVERY, FEEDER, marketFixture, type MarketFixture } from '../ledger/market-fixture.ts';
import { testRelay, type TestRelay } from '../support/onion-relays.ts';
import { BroadcastListener, connect, exitRelay, mixPacket, signedOffer, tempDir } from './bridge-fixture.ts';

const test = suite('bridge as the mixnet exit');

interface Context {
  f: MarketFixture;
  broker: EmbeddedBroker;
  bridge: Bridge;
  exit: TestRelay;
  relay: MqttClient;
  listener: BroadcastListener;
  tmp: ReturnType<typeof tempDir>;
  log: string[];
}

const ctx = {} as Context;
const KEY_BUDGET = 2;

test.before(async () => {
  ctx.tmp = tempDir('veilgrid-bridge-mix-');
  ctx.f = await marketFixture();
  ctx.broker = await startEmbeddedBroker({ log: () => {} });
  ctx.listener = await BroadcastListener.start(ctx.broker.url);
  ctx.log = [];
  ctx.bridge = await startBridge({
    market: ctx.f.market,
    relayer: ctx.f.relayer,
    db: path.join(ctx.tmp.dir, 'bridge', 'queue.db'),
    brokerUrl: ctx.broker.url,
    clientId: 'bridge',
    tickMs: 50,
    mix: { keyBudget: KEY_BUDGET },
    log: (line) => ctx.log.push(line),
  });
  ctx.exit = exitRelay(readExitKey(path.join(ctx.tmp.dir, 'bridge', EXIT_KEY_FILE)));
  ctx.relay = await connect(ctx.broker.url, { clientId: 'relay-meter' });
});

test.after(async () => {
  await ctx.relay?.endAsync();
  await ctx.listener?.close();
  await ctx.bridge?.close();
  await ctx.broker?.close();
  ctx.tmp?.remove();
});

/** What the second relay of a path does: publish the peeled packet to the exit (QoS 0, as all mix traffic). */
const toExit = (packet: Uint8Array) => ctx.relay.publishAsync(MIX_EXIT_TOPIC, Buffer.from(packet), { qos: 0 });
const mixTotal = (s: { mix: Record<string, number> }) => Object.values(s.mix).reduce((a, b) => a + b, 0);

test('the exit key is in the bridge folder (0600) and is what the bridge says its exit is', () => {
  const file = path.join(ctx.tmp.dir, 'bridge', EXIT_KEY_FILE);
  assert.is(fs.statSync(file).mode & 0o777, 0o600);
  const key = readExitKey(file);
  assert.equal(ctx.bridge.exit.publicKey, key.publicKey);
  assert.equal(ctx.bridge.exit.relayId, key.relayId);
});

test('offers through the mixnet reach the chain and get receipts; dummies, replays and bad packets are counted', async () => {
  const { f, bridge, listener, exit } = ctx;
  const seller = generateTradingKey();
  const buyer = generateTradingKey();
  const liar = generateTradingKey();
  const stranger = generateTradingKey(); // the DSO issued it nothing
  await f.market.issue(f.dso, FEEDER, [
    grantFor(seller.publicKey, DELIVERY, { production: 1000 }),
    grantFor(buyer.publicKey, DELIVERY, { consumption: 1000, money: 200n * 1000n }),
    grantFor(liar.publicKey, DELIVERY, { production: 10 }),
  ]);
  const domain = f.market.domain;
  const ask = signedOffer(domain, seller, { side: 'ask', interval: DELIVERY, wh: 600, limitPrice: 150 });
  const bid = signedOffer(domain, buyer, { side: 'bid', interval: DELIVERY, wh: 500, limitPrice: 200 });
  const tooMuch = signedOffer(domain, buyer, { side: 'bid', interval: DELIVERY, wh: 400, limitPrice: 400, seq: 1 });
  const strangers = signedOffer(domain, stranger, { side: 'ask', interval: DELIVERY, wh: 5, limitPrice: 150 });
  // The liar's offers carry another key's signature: each refused as bad-signature, until its budget is spent.
  const forged = [0, 1, 2].map((seq) => {
    const o = signedOffer(domain, liar, { side: 'ask', interval: DELIVERY, wh: 5, limitPrice: 150, seq });
    o.message.set(generateTradingKey().sign(o.message.subarray(0, 113)), 113);
    return o;
  });
  await bridge.waitFor((s) => s.issuedKeys >= 3); // the chain loop has read the issuance

  const askPacket = mixPacket(exit, PAYLOAD_OFFER, ask.message);
  const changed = mixPacket(exit, PAYLOAD_OFFER, bid.message);
  changed[500] ^= 0x10;
  const sent = [
    askPacket,
    mixPacket(exit, PAYLOAD_OFFER, bid.message),
    mixPacket(exit, PAYLOAD_OFFER, tooMuch.message),
    mixPacket(exit, PAYLOAD_DUMMY, new Uint8Array(0)),
    mixPacket(exit, PAYLOAD_DUMMY, new Uint8Array(0)),
    askPacket, // replayed
    askPacket.subarray(0, 1000), // wrong length
    changed, // bad MAC
    mixPacket(testRelay(), PAYLOAD_OFFER, bid.message), // built for another exit key: bad MAC
    mixPacket(exit, PAYLOAD_OFFER, new Uint8Array(randomBytes(40))), // undecodable offer
    mixPacket(exit, 7, ask.message), // unknown payload type
    mixPacket(exit, PAYLOAD_OFFER, strangers.message),
    ...forged.map((o) => mixPacket(exit, PAYLOAD_OFFER, o.message)),
  ];
  for (const packet of sent) await toExit(packet);
  const stats = await bridge.waitFor((s) => mixTotal(s) >= sent.length, 20_000);
  assert.equal(stats.mix, {
    offer: 5, // ask, bid, tooMuch, and the liar's first two (refused by the bridge, charged to its key)
    dummy: 2,
    replayed: 1,
    'bad-length': 1,
    'bad-mac': 2,
    'bad-offer': 1,
    'unknown-type': 1,
    'no-asset': 1,
    'rate-limited': 1,
  });

  assert.ok((await listener.accepted(ask.digest)).accepted);
  assert.ok((await listener.accepted(bid.digest)).accepted);
  assert.is((await listener.outcome(tooMuch.digest)).reason, 'InsufficientMoney', "the chain's reason");
  assert.is((await listener.outcome(forged[0].digest)).reason, 'bad-signature', "the bridge's reason");
  assert.is((await listener.outcome(forged[1].digest)).reason, 'bad-signature');
  await bridge.waitFor((s) => s.accepted >= 2);
  assert.is(await f.market.offerCount(DELIVERY), 2, 'each offer on chain once');
  assert.not.ok(listener.outcomes.has(strangers.digest), 'no-asset is dropped unanswered');
  assert.not.ok(listener.outcomes.has(forged[2].digest), 'rate-limited is dropped unanswered');

  const text = await (await fetch(`${bridge.http!.url}/metrics`)).text();
  assert.match(text, 'veilgrid_bridge_mix_packets_total{outcome="dummy"} 2');
  assert.match(text, 'veilgrid_bridge_mix_packets_total{outcome="bad-mac"} 2');
  assert.match(text, 'veilgrid_bridge_mix_packets_total{outcome="window-full"} 0');
});

test('fuzz through the broker: random, cut and mutated packets and junk in valid ones are each counted, none throws', async () => {
  const { bridge, exit } = ctx;
  const before = mixTotal(bridge.stats);
  const genuine = mixPacket(exit, PAYLOAD_OFFER, new Uint8Array(177));
  const sent: Uint8Array[] = [];
  for (let i = 0; i < 400; i++) {
    const kind = i % 4;
    if (kind === 0) sent.push(new Uint8Array(randomBytes(1024)));
    else if (kind === 1) sent.push(genuine.subarray(0, randomInt(1, 1024)));
    else if (kind === 2) {
      const changed = genuine.slice();
      changed[randomInt(1, 1024)] ^= 1 << randomInt(8);
      sent.push(changed);
    } else sent.push(mixPacket(exit, randomInt(1, 4), new Uint8Array(randomBytes(randomInt(0, 613)))));
  }
  for (const packet of sent) await toExit(packet);
  const stats = await bridge.waitFor((s) => mixTotal(s) >= before + sent.length, 20_000);
  assert.is(mixTotal(stats), before + sent.length);
  assert.is(stats.mix['store-failed'] ?? 0, 0);
  assert.ok(
    ctx.log.every((l) => !l.includes('"level":"error"')),
    'nothing logged as an error',
  );
});

test('the counts go to the log once per round-slot, not once per packet', async () => {
  const { bridge } = ctx;
  const before = mixTotal(bridge.stats);
  for (let i = 0; i < 50; i++) await toExit(new Uint8Array(3));
  const stats = await bridge.waitFor((s) => mixTotal(s) >= before + 50);
  await bridge.close(); // logs the slot being counted (else logged when the next slot starts)
  const lines = ctx.log.map((l) => JSON.parse(l)).filter((l) => l.event === 'mix_exit_slot') as Array<{
    packets: Record<string, number>;
    dropped: Record<string, string>;
  }>;
  // All packets of this file: one line, or two if a slot boundary (every 45 s here) fell in between.
  assert.ok(lines.length >= 1 && lines.length <= 2, `${lines.length} lines`);
  const logged: Record<string, number> = {};
  for (const line of lines) for (const [k, n] of Object.entries(line.packets)) logged[k] = (logged[k] ?? 0) + n;
  assert.equal(logged, stats.mix);
  assert.match(lines.at(-1)!.dropped['bad-length'], /1024 bytes/);
});

test.run();
