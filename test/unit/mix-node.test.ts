// Meters' mix nodes (firmware/src/mixnet/mix-node.ts) in rounds, each with an emulated ATECC608 and the
// firmware's MQTT client, through a real broker (the testbed's aedes, in this process) that records who
// publishes what and when, on an in-memory relay directory, with a test exit (the bridge's key in node:crypto) peeling what reaches
// veilgrid/mix/exit: every meter publishes exactly one 1,024-byte packet in slot 0; every offer and every
// dummy comes out at the exit; a relay that goes offline mid-round loses only what it held and the sender's
// resend gets through in the next round; a fuzz of random and mutated packets into a relay's inbox never
// throws and never holds more than the bounds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createECDH } from 'node:crypto';
import mqtt from 'mqtt';
import fc from 'fast-check';
import { SimClock } from '../../boards/emulator/clock.ts';
import { createNetModule } from '../../boards/emulator/net.ts';
import { MixNode, type MixNodeOptions } from '../../firmware/src/mixnet/mix-node.ts';
import type { RelayDirectoryView } from '../../firmware/src/mixnet/relay-directory-view.ts';
import { MqttClient } from '../../firmware/src/mqtt/client.ts';
import { Outbox } from '../../firmware/src/mqtt/outbox.ts';
import { kidOf } from '../../firmware/src/protocol/certificate.ts';
import { roundStartMs, slotMs, type MarketClock } from '../../firmware/src/protocol/mix-schedule.ts';
import {
  buildOnionPacket,
  ONION_PACKET_BYTES,
  PAYLOAD_DUMMY,
  PAYLOAD_OFFER,
  peelOnionPacket,
} from '../../firmware/src/protocol/onion-packet.ts';
import type { RelayRecord } from '../../firmware/src/protocol/relay-directory.ts';
import { MIX_SLOT } from '../../firmware/src/protocol/slot-map.ts';
import { MIX_EXIT_TOPIC } from '../../firmware/src/protocol/topics.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { emulatedPartition } from '../support/flash-rings.ts';
import { hopTo } from '../support/onion-relays.ts';
import { provisionedSecureElement, type ProvisionedSecureElement } from '../support/provisioned-se.ts';

const HOST = '127.0.0.1';
/** Slots of 300 ms (the testbed runs 10-second intervals: 500 ms). */
const INTERVAL_SECONDS = 6;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error('timed out waiting for ' + what);
    await sleep(10);
  }
}

/** The relay directory in memory: what relay-directory-store.ts gives from Storage. */
function memoryDirectory(relays: RelayRecord[], exit: RelayRecord): RelayDirectoryView {
  const sorted = [...relays].sort((a, b) => Buffer.compare(Buffer.from(a.relayId), Buffer.from(b.relayId)));
  return {
    isComplete: () => true,
    epoch: () => 1,
    relayCount: () => sorted.length,
    relayAt: (i) => sorted[i],
    indexOf: (id) => sorted.findIndex((r) => hex(r.relayId) === hex(id)),
    exit: () => exit,
  };
}

function recordOf(publicKey65: Uint8Array): RelayRecord {
  return { relayId: kidOf(nodeSha256, publicKey65), mixKey: publicKey65.subarray(1) };
}

/** A meter's mix node on its chip, as main.ts builds it. */
function mixNodeOf(
  chip: ProvisionedSecureElement,
  directory: RelayDirectoryView,
  mqttClient: MixNodeOptions['mqtt'],
  clock: MixNodeOptions['clock'],
  logs: string[],
  bounds: { capacity?: number; maxTags?: number } = {},
): MixNode {
  return new MixNode({
    se: chip.se,
    mixSlot: MIX_SLOT,
    relayId: recordOf(chip.mixKey).relayId,
    primitives: nodeCryptoPrimitives,
    directory,
    mqtt: mqttClient,
    clock,
    busy: () => false,
    log: (m) => logs.push(m),
    ...bounds,
  });
}

interface Heard {
  client: string;
  topic: string;
  bytes: number;
  /** The meters' clock, Unix ms. */
  atMs: number;
}

interface TestMeter {
  name: string;
  chip: ProvisionedSecureElement;
  record: RelayRecord;
  client: MqttClient;
  net: ReturnType<typeof createNetModule>;
  node: MixNode;
  logs: string[];
}

/** A broker, N meters' mix nodes on one directory, an exit that peels, all on one clock. */
async function mixnet(n: number) {
  const cleanups: Array<() => unknown> = [];
  // Time passes while the host waits, not while it computes: five SE models building their packets at one
  // instant take the host real time that five chips would spend side by side. Twice as fast as the host idles.
  const clock = new SimClock({ speed: 2, startEpochSeconds: 1_790_000_000 });
  cleanups.push(() => clock.close());
  const heard: Heard[] = [];
  const broker = await startEmbeddedBroker({
    host: HOST,
    aedes: {
      authorizePublish: (client, packet, done) => {
        if (client)
          heard.push({
            client: client.id,
            topic: packet.topic,
            bytes: packet.payload.length,
            atMs: clock.now() * 1000,
          });
        done(null);
      },
    },
  });
  const port = broker.port;
  cleanups.push(() => broker.close());

  const bridge = createECDH('prime256v1');
  bridge.generateKeys();
  const exitRecord = recordOf(new Uint8Array(bridge.getPublicKey()));
  const chips = Array.from({ length: n }, () => provisionedSecureElement());
  for (const chip of chips) cleanups.push(() => chip.close());
  const directory = memoryDirectory(
    chips.map((c) => recordOf(c.mixKey)),
    exitRecord,
  );
  const meters: TestMeter[] = chips.map((chip, i) => {
    const name = 'mix-meter-' + i;
    const net = createNetModule();
    const logs: string[] = [];
    const client = new MqttClient(
      {
        net,
        clock,
        host: HOST,
        port,
        clientId: name,
        keepAliveSeconds: 30,
        cleanSession: true,
        minBackoffMs: 50,
        maxBackoffMs: 200,
      },
      new Outbox(emulatedPartition().outboxRing()),
    );
    const record = recordOf(chip.mixKey);
    const node = mixNodeOf(chip, directory, client, clock, logs);
    node.start();
    client.start();
    cleanups.push(() => {
      client.stop();
      net.closeAll();
    });
    return { name, chip, record, client, net, node, logs };
  });

  // The exit: the bridge's side, peeling with its key in node:crypto.
  const exitClient = await mqtt.connectAsync(`mqtt://${HOST}:${port}`, { clientId: 'test-exit' });
  cleanups.push(() => exitClient.endAsync(true));
  const atExit: Array<{ type: number; payload: Uint8Array; bytes: number }> = [];
  exitClient.on('message', (_topic, payload) => {
    const packet = new Uint8Array(payload);
    const shared = new Uint8Array(bridge.computeSecret(Buffer.concat([Buffer.from([4]), packet.subarray(1, 65)])));
    // Every test's market puts its rounds in the window of interval 100 (startMarket).
    const opened = peelOnionPacket(nodeCryptoPrimitives, 100, shared, packet);
    atExit.push({ type: opened.payloadType!, payload: opened.payload!, bytes: packet.length });
  });
  await exitClient.subscribeAsync(MIX_EXIT_TOPIC, { qos: 0 });
  await waitFor('every meter connected', () => meters.every((m) => m.client.isConnected()));
  await sleep(100); // their subscriptions reach the broker

  /** A market whose window for interval `d` has its round 0 `leadMs` from now; every node follows it. */
  function startMarket(leadMs: number) {
    const nowMs = clock.now() * 1000;
    const d = 100;
    const probe: MarketClock = { genesisTime: 0, intervalSeconds: INTERVAL_SECONDS };
    const genesisTime = Math.ceil((nowMs + leadMs - roundStartMs(probe, d, 0)) / 1000);
    const market: MarketClock = { genesisTime, intervalSeconds: INTERVAL_SECONDS };
    for (const m of meters) m.node.setMarketClock(market);
    return { d, market, slot: slotMs(market), round: (r: number) => roundStartMs(market, d, r) };
  }
  /** Waits on the meters' clock until Unix ms `t`. */
  async function until(t: number) {
    while (clock.now() * 1000 < t) await sleep(20);
  }
  return {
    clock,
    meters,
    heard,
    atExit,
    exitRecord,
    startMarket,
    until,
    close: async () => {
      for (const c of cleanups.reverse()) await c();
    },
  };
}

const offerOf = (i: number) => new Uint8Array(177).fill(0x40 + i);

test('one round: every meter sends exactly one 1,024-byte packet in slot 0; every offer and dummy reaches the exit', async () => {
  const net = await mixnet(5);
  try {
    const { d, round, slot } = net.startMarket(800);
    const carrying = [0, 3];
    for (const i of carrying) net.meters[i].node.carry(d, offerOf(i));
    const heardBefore = net.heard.length;
    await net.until(round(0) + 3 * slot + 200);

    const inRound = net.heard
      .slice(heardBefore)
      .filter((h) => h.topic.startsWith('veilgrid/mix/') && h.atMs < round(1));
    for (const m of net.meters) {
      const own = inRound.filter((h) => h.client === m.name && h.atMs < round(0) + slot);
      assert.is(own.length, 1, `${m.name} sent ${own.length} packets in slot 0: ${m.logs.join(' | ')}`);
      assert.ok(own[0].atMs >= round(0), `${m.name} sent before slot 0`);
      assert.not.equal(own[0].topic, `veilgrid/mix/${hex(m.record.relayId)}`, 'never to itself');
      const kind = carrying.includes(net.meters.indexOf(m)) ? 'offer' : 'dummy';
      assert.ok(m.logs.includes(`mix: sent ${kind} for interval ${d} round 0`), m.logs.join(' | '));
    }
    assert.ok(
      inRound.every((h) => h.bytes === ONION_PACKET_BYTES),
      'every packet on every link is 1,024 bytes',
    );
    // Two relays forward each packet: in slot 1 to the second relay, in slot 2 to the exit.
    assert.is(inRound.length, 3 * net.meters.length, inRound.map((h) => `${h.client} ${h.topic}`).join('\n'));
    assert.is(inRound.filter((h) => h.topic === MIX_EXIT_TOPIC).length, net.meters.length);
    await waitFor('the exit peeled every packet', () => net.atExit.length === net.meters.length);
    const offers = net.atExit.filter((p) => p.type === PAYLOAD_OFFER).map((p) => hex(p.payload));
    assert.equal(offers.sort(), carrying.map((i) => hex(offerOf(i))).sort());
    assert.is(net.atExit.filter((p) => p.type === PAYLOAD_DUMMY && p.payload.length === 0).length, 3);
    const forwarded = net.meters.flatMap((m) => m.logs.filter((l) => /^mix: forwarded \d+ in 100\.0\.[12]$/.test(l)));
    assert.ok(forwarded.length > 0, 'relays log what they forward');
  } finally {
    await net.close();
  }
});

test('a relay offline mid-round loses what it held; the offer is resent through a new path in the next round; a receipt stops resends', async () => {
  const net = await mixnet(5);
  try {
    const { d, round, slot } = net.startMarket(800);
    const [sender, settled] = net.meters;
    sender.node.carry(d, offerOf(0));
    settled.node.carry(d, offerOf(1));
    // The sender's first hop goes offline once it holds the packet, before it forwards at slot 1.
    await waitFor(
      'the sender sent in slot 0',
      () => net.heard.some((h) => h.client === sender.name && h.topic.startsWith('veilgrid/mix/')),
      8000,
    );
    const firstHopTopic = net.heard.find((h) => h.client === sender.name && h.topic.startsWith('veilgrid/mix/'))!.topic;
    const hop = net.meters.find((m) => firstHopTopic === `veilgrid/mix/${hex(m.record.relayId)}`)!;
    assert.ok(hop && hop !== sender);
    await waitFor('the first hop holds the packet', () => hop.node.batch.size > 0);
    hop.client.stop();
    hop.net.closeAll();
    await net.until(round(0) + slot + 50);
    assert.ok(
      hop.logs.some((l) => /^mix: \d+ lost in 100\.0\.1: not connected$/.test(l)),
      hop.logs.join(' | '),
    );
    hop.client.start(); // back for round 1
    await waitFor('the relay is back', () => hop.client.isConnected());
    await net.until(round(0) + 3 * slot + 100);
    assert.not.ok(
      net.atExit.some((p) => hex(p.payload) === hex(offerOf(0))),
      'the offer was lost with the relay that held it',
    );
    // The other offer got through unless it too went through the lost relay: its receipt settles it (as the
    // trader does on RECEIPT_TOPIC) before round 1 is built.
    const settledFirst = net.atExit.some((p) => hex(p.payload) === hex(offerOf(1)));
    if (settledFirst) settled.node.settle(d);
    await net.until(round(1) + 4 * slot + 200);
    await waitFor('the resent offer at the exit', () => net.atExit.some((p) => hex(p.payload) === hex(offerOf(0))));
    assert.ok(sender.logs.includes(`mix: sent resend for interval ${d} round 1`), sender.logs.join(' | '));
    assert.is(sender.node.sender.stats.resends, 1);
    if (settledFirst)
      assert.ok(settled.logs.includes(`mix: sent dummy for interval ${d} round 1`), settled.logs.join(' | '));
    // Round 1 sent one packet per meter again (the offline relay's own round-0 packet may have been lost too).
    for (const m of net.meters)
      assert.is(
        net.heard.filter((h) => h.client === m.name && h.atMs >= round(1) && h.atMs < round(1) + slot).length,
        1,
        m.name,
      );
  } finally {
    await net.close();
  }
});

test('a round gets one packet, however often its build comes due', () => {
  const chip = provisionedSecureElement();
  try {
    const others = [createECDH('prime256v1'), createECDH('prime256v1'), createECDH('prime256v1')];
    for (const k of others) k.generateKeys();
    const [a, b, exit] = others.map((k) => recordOf(new Uint8Array(k.getPublicKey())));
    const market: MarketClock = {
      genesisTime: 1_790_000_000 - 50 * INTERVAL_SECONDS,
      intervalSeconds: INTERVAL_SECONDS,
    };
    const start = roundStartMs(market, 51, 1);
    const now = start - 100;
    const due: Array<() => void> = [];
    const clock = {
      now: () => now / 1000,
      setTimeout: (f: () => void) => due.push(f),
      clearTimeout: (id: number) => {
        due[id - 1] = () => {};
      },
    };
    const published: string[] = [];
    const mqttStandIn = {
      isConnected: () => true,
      publish: (topic: string) => (published.push(topic), true),
      subscribe: () => {},
    } as never;
    const logs: string[] = [];
    const node = mixNodeOf(chip, memoryDirectory([recordOf(chip.mixKey), a, b], exit), mqttStandIn, clock, logs);
    const commands = chip.se.stats.commands;
    node.sender.prepare(51, 1, start, slotMs(market));
    const oneBuild = chip.se.stats.commands - commands;
    assert.ok(oneBuild >= 6, 'a GenKey and an ECDH per hop');
    node.sender.prepare(51, 1, start, slotMs(market));
    assert.is(chip.se.stats.commands - commands, oneBuild, 'the same round again builds nothing');
    for (const f of due.slice()) f();
    assert.is(published.length, 1, logs.join('\n'));
    node.sender.prepare(52, 0, roundStartMs(market, 52, 0), slotMs(market));
    assert.ok(chip.se.stats.commands - commands >= 2 * oneBuild - 1, 'the next round builds its own');
  } finally {
    chip.close();
  }
});

test('fuzz: random and mutated packets into the inbox never throw out of the handler and never exceed the bounds', () => {
  const chip = provisionedSecureElement();
  try {
    let handler: ((topic: string, payload: Uint8Array) => void) | undefined;
    const published: Uint8Array[] = [];
    const logs: string[] = [];
    const market: MarketClock = {
      genesisTime: 1_790_000_000 - 50 * INTERVAL_SECONDS,
      intervalSeconds: INTERVAL_SECONDS,
    };
    let now = roundStartMs(market, 51, 0) + 10;
    const clock = { now: () => now / 1000, setTimeout: () => 1, clearTimeout: () => {} };
    const record = recordOf(chip.mixKey);
    const mqttStandIn = {
      isConnected: () => true,
      publish: (_t: string, p: Uint8Array) => (published.push(p), true),
      subscribe: (_f: string, _q: 0 | 1, h: (topic: string, payload: Uint8Array) => void) => {
        handler = h;
      },
    } as never;
    const node = mixNodeOf(chip, memoryDirectory([record], record), mqttStandIn, clock, logs, {
      capacity: 4,
      maxTags: 12,
    });
    node.start();
    node.setMarketClock(market);
    const relayKey = createECDH('prime256v1');
    relayKey.generateKeys();
    // Valid packets to this relay: its chip's mix key, via node:crypto on the sender's side.
    const self = { id: record.relayId, key: { getPublicKey: () => Buffer.from(chip.mixKey) } as never };
    const toNext = { id: new Uint8Array(8).fill(7), key: relayKey };
    const validPacket = () =>
      buildOnionPacket(nodeCryptoPrimitives, 51, [self, toNext].map(hopTo), PAYLOAD_OFFER, new Uint8Array(5));
    const valid = validPacket();
    let packets = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 1100 }),
          fc.uint8Array({ minLength: ONION_PACKET_BYTES, maxLength: ONION_PACKET_BYTES }),
          fc
            .tuple(fc.nat(ONION_PACKET_BYTES - 1), fc.integer({ min: 1, max: 255 }))
            .map(([at, x]) => Object.assign(new Uint8Array(valid), { [at]: valid[at] ^ x })),
          fc.constant(valid),
        ),
        (packet) => {
          handler!('veilgrid/mix/x', packet);
          packets++;
          assert.ok(node.batch.size <= 4 && node.batch.rememberedTags <= 12);
          // A slot boundary every 10 packets (the node's timer is not running here).
          if (packets % 10 === 0) node.relay.flush(51, 0, 1);
        },
      ),
      { numRuns: 300 },
    );
    const forwarded = node.batch.forwarded;
    node.relay.flush(51, 0, 2);
    node.batch.forgetTags();
    const commands = chip.se.stats.commands;
    // Junk with a valid ephemeral key costs an ECDH before its MAC fails: at most 2 x capacity per slot.
    for (let i = 0; i < 20; i++) handler!('veilgrid/mix/x', Object.assign(validPacket(), { 600: 0 }));
    assert.is(chip.se.stats.commands - commands, 8, 'ECDHs for 8 packets in the slot, none after');
    node.relay.flush(51, 0, 3);
    for (let i = 0; i < 6; i++) handler!('veilgrid/mix/x', validPacket());
    packets += 26;
    assert.is(node.batch.size, 4, 'held up to capacity');
    assert.is(chip.se.stats.commands - commands, 12, 'none for a packet beyond the capacity');
    const dropped = Object.values(node.batch.dropped).reduce((a, b) => a + b, 0);
    assert.is(dropped + node.batch.size + node.batch.forwarded, packets, 'every packet forwarded, held or dropped');
    assert.ok(forwarded > 0 && published.length === node.batch.forwarded);
    assert.ok(
      node.batch.dropped['batch-full'] > 0 && node.batch.dropped['bad-mac'] > 0 && node.batch.dropped.replayed > 0,
    );
    assert.ok(
      logs.some((l) => /^mix: dropped \d+ \(.*bad-mac=\d+/.test(l)),
      'drops logged by reason',
    );
    // Outside the rounds nothing is taken in, and no SE command is spent on it.
    now = roundStartMs(market, 51, 1) + 4 * slotMs(market) + 10;
    const before = chip.se.stats.commands;
    handler!('veilgrid/mix/x', validPacket());
    assert.is(chip.se.stats.commands, before);
    assert.is(node.batch.dropped['out-of-round'], 1);
  } finally {
    chip.close();
  }
});

test.run();
