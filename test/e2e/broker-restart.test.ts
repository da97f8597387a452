// A numbered stream of QoS 1 messages from the firmware's MqttClient (emulated net, SimClock,
// raw-flash outbox) while the broker dies and comes back on the same port: in-process aedes closed
// and restarted, and — when `mosquitto` is on PATH — a real mosquitto killed with SIGKILL and
// restarted. Expected: no message missing at the subscriber; a message is delivered twice only
// when the client sent it again, with DUP, on a later connection.
//
// Between client and broker sits a relay that records every PUBLISH the client transmits (with
// its DUP flag, parsed by the independent mqtt-packet) and that, at the moment of the crash,
// swallows what is in transit both ways, so the crash hits messages that reached the broker but
// whose PUBACK never came back (resent, so delivered twice) and messages that never reached it.
// A broker restarted without persistence has forgotten the subscriber, so the relay keeps the
// meter out until the subscriber has subscribed again (a real deployment persists sessions).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as nodeNet from 'node:net';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { findMosquitto, freePort, MOSQUITTO_MISSING, startMosquitto } from '../../host-tools/broker/mosquitto.ts';
import { createNetModule } from '../../boards/emulator/net.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { emulatedPartition } from '../support/flash-rings.ts';
import { Outbox } from '../../firmware/src/mqtt/outbox.ts';
import { MqttClient } from '../../firmware/src/mqtt/client.ts';

const HOST = '127.0.0.1';
const TOPIC = 'veilgrid/meters/restart-test/readings';
const MESSAGES = 300;
const CRASH_AT = 100;
const RESTART_AT = 160;
const IN_FLIGHT = 8;

async function waitFor(cond: () => boolean, what: string, timeoutMs = 30000) {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Broker {
  port: number;
  start(): Promise<void>;
  /** Dies abruptly: clients see their connections drop, nothing is flushed. */
  crash(): Promise<void>;
  stop(): Promise<void>;
}

/** A broker on a fixed port that can crash and come back, from the project's own launchers. */
function restartableBroker(port: number, launch: () => Promise<{ close(): Promise<void> }>): Broker {
  let running: { close(): Promise<void> } | undefined;
  const crash = async () => {
    await running?.close();
    running = undefined;
  };
  return { port, start: async () => void (running = await launch()), crash, stop: crash };
}

function aedesBroker(port: number): Broker {
  return restartableBroker(port, () => startEmbeddedBroker({ port, host: HOST }));
}

function mosquittoBroker(port: number, dir: string): Broker {
  return restartableBroker(port, async () => {
    const broker = await startMosquitto({ dir, port });
    return { close: () => broker.stop('SIGKILL') };
  });
}

interface Transmission {
  seq: number;
  dup: boolean;
  connection: number;
}

/** The relay between meter and broker (see the file comment). */
async function relay(brokerPort: number) {
  const transmissions: Transmission[] = [];
  /** Messages (by number) the broker received. */
  const reachedBroker = new Set<number>();
  const state = { frozen: false, holdAcks: false, gateOpen: true, connections: 0 };
  const links: {
    down: nodeNet.Socket;
    up: nodeNet.Socket;
    forwarded: Set<number>;
    acked: Set<number>;
    ackedToMeter: Set<number>;
  }[] = [];
  const server = nodeNet.createServer((down) => {
    down.on('error', () => {});
    if (!state.gateOpen) return void down.destroy();
    const connection = ++state.connections;
    const up = nodeNet.connect(brokerPort, HOST);
    up.on('error', () => {});
    const link = { down, up, forwarded: new Set<number>(), acked: new Set<number>(), ackedToMeter: new Set<number>() };
    links.push(link);
    const sent = mqttPacket.parser({ protocolVersion: 4 });
    sent.on('packet', (p: any) => {
      if (p.cmd === 'publish') transmissions.push({ seq: p.payload.readUInt32BE(0), dup: !!p.dup, connection });
    });
    const forwarded = mqttPacket.parser({ protocolVersion: 4 });
    forwarded.on('packet', (p: any) => {
      if (p.cmd !== 'publish') return;
      link.forwarded.add(p.messageId);
      reachedBroker.add(p.payload.readUInt32BE(0));
    });
    const fromBroker = mqttPacket.parser({ protocolVersion: 4 });
    fromBroker.on('packet', (p: any) => {
      if (p.cmd !== 'puback') return;
      link.acked.add(p.messageId);
      if (!state.frozen && !state.holdAcks) link.ackedToMeter.add(p.messageId);
    });
    down.on('data', (d) => {
      sent.parse(d);
      if (state.frozen) return;
      forwarded.parse(d);
      up.write(d);
    });
    up.on('data', (d) => {
      fromBroker.parse(d);
      if (!state.frozen && !state.holdAcks) down.write(d);
    });
    const close = () => {
      down.destroy();
      up.destroy();
    };
    down.on('close', close);
    up.on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  return {
    port: (server.address() as nodeNet.AddressInfo).port,
    state,
    transmissions,
    reachedBroker,
    /** PUBLISHes the broker got whose PUBACK has not reached the meter. */
    unackedAtMeter: () =>
      links.reduce((n, l) => n + [...l.forwarded].filter((id) => !l.ackedToMeter.has(id)).length, 0),
    /** Every PUBLISH the broker got on a frozen link has been acknowledged by the broker. */
    brokerCaughtUp: () => links.every((l) => l.up.destroyed || [...l.forwarded].every((id) => l.acked.has(id))),
    dropAll() {
      for (const l of links.splice(0)) {
        l.down.destroy();
        l.up.destroy();
      }
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

async function runRestart(name: string, broker: Broker) {
  const cleanups: (() => unknown)[] = [];
  try {
    await broker.start();
    cleanups.push(() => broker.stop());
    const proxy = await relay(broker.port);
    cleanups.push(() => proxy.close());
    cleanups.push(() => proxy.dropAll());

    const received: number[] = [];
    let subscriptions = 0;
    const sub = mqtt.connect(`mqtt://${HOST}:${broker.port}`, {
      clientId: `dso-${name}`,
      reconnectPeriod: 50,
      connectTimeout: 2000,
    });
    cleanups.push(() => sub.endAsync(true));
    sub.on('error', () => {});
    sub.on('message', (_t, payload) => received.push(payload.readUInt32BE(0)));
    sub.on('connect', () => sub.subscribe(TOPIC, { qos: 1 }, (err) => err || subscriptions++));
    await waitFor(() => subscriptions === 1, 'the subscriber');

    const net = createNetModule();
    const clock = new SimClock();
    const disconnects: string[] = [];
    const client = new MqttClient(
      {
        net,
        clock,
        host: HOST,
        port: proxy.port,
        clientId: `meter-${name}`,
        keepAliveSeconds: 30,
        minBackoffMs: 50,
        maxBackoffMs: 500,
        ackTimeoutMs: 600000, // retransmit only because of the reconnect here
        maxInFlight: IN_FLIGHT,
        onDisconnect: (reason) => disconnects.push(reason),
      },
      new Outbox(emulatedPartition().outboxRing()),
    );
    cleanups.push(() => {
      client.stop();
      net.closeAll();
      clock.close();
    });
    client.start();

    let next = 0;
    const payload = (seq: number) =>
      new Uint8Array([seq >>> 24, (seq >> 16) & 255, (seq >> 8) & 255, seq & 255, 0xff, 0x00]);
    const publisher = setInterval(() => {
      if (next < MESSAGES) client.publish(TOPIC, payload(next++), 1);
    }, 3);
    cleanups.push(() => clearInterval(publisher));

    await waitFor(() => next >= CRASH_AT, `message ${CRASH_AT}`);
    // First the broker's PUBACKs stop reaching the meter, until its in-flight window is full of
    // messages the broker has; then nothing gets through either way.
    proxy.state.holdAcks = true;
    await waitFor(() => proxy.unackedAtMeter() >= IN_FLIGHT, 'a full in-flight window at the broker');
    proxy.state.frozen = true;
    await waitFor(() => proxy.brokerCaughtUp(), 'the broker to acknowledge what it received');
    await waitFor(
      () => [...proxy.reachedBroker].every((seq) => received.includes(seq)),
      'the subscriber to get what the broker acknowledged',
    );
    await broker.crash();
    proxy.state.gateOpen = false;
    proxy.dropAll();
    proxy.state.frozen = false;
    proxy.state.holdAcks = false;
    const crashedAt = next;

    await waitFor(() => next >= RESTART_AT, `message ${RESTART_AT} (published while the broker is down)`);
    await broker.start();
    await waitFor(() => subscriptions === 2, 'the subscriber to subscribe again');
    proxy.state.gateOpen = true;

    await waitFor(
      () => next >= MESSAGES && new Set(received).size === MESSAGES,
      `all ${MESSAGES} messages at the subscriber`,
    );
    await waitFor(() => client.pendingCount() === 0, 'the outbox to empty');

    const missing = [...Array(MESSAGES).keys()].filter((s) => !received.includes(s));
    assert.equal(missing, [], 'no message missing');

    const bySeq = new Map<number, Transmission[]>();
    for (const t of proxy.transmissions) bySeq.set(t.seq, [...(bySeq.get(t.seq) ?? []), t]);
    // A message handed to a socket that was already dying may never reach the wire, so its first
    // transmission seen here can carry DUP (allowed: DUP means "may have been sent before").
    // What must hold: every transmission after the first carries DUP, on a later connection.
    for (const [seq, sends] of bySeq) {
      for (const again of sends.slice(1)) {
        assert.ok(again.dup, `message ${seq}: a retransmission carries DUP`);
        assert.ok(again.connection > sends[0].connection, `message ${seq}: retransmitted only after a reconnect`);
      }
    }
    const deliveredTwice = [...new Set(received.filter((s, i) => received.indexOf(s) !== i))];
    for (const seq of deliveredTwice) {
      assert.ok((bySeq.get(seq)?.length ?? 0) > 1, `message ${seq} delivered twice only because it was sent twice`);
    }
    const retransmitted = [...bySeq.values()].filter((s) => s.length > 1).length;
    assert.ok(
      retransmitted >= IN_FLIGHT,
      'the crash caught a full window in flight (the test exercised retransmission)',
    );
    assert.ok(deliveredTwice.length > 0, 'some messages reached the broker twice (their PUBACK was lost in the crash)');
    assert.ok(disconnects.length >= 1 && crashedAt < RESTART_AT);
    console.log(
      `  ${name}: ${MESSAGES} messages, broker down from message ${crashedAt} to ${RESTART_AT}; ` +
        `${retransmitted} resent with DUP after reconnecting, ${deliveredTwice.length} delivered twice, none missing; ` +
        `client saw: ${disconnects[0]}`,
    );
  } finally {
    while (cleanups.length) await cleanups.pop()!();
  }
}

test('aedes closed and restarted on the same port mid-stream: nothing missing, duplicates only with DUP', async () => {
  await runRestart('aedes', aedesBroker(await freePort()));
});

test('mosquitto killed with SIGKILL and restarted mid-stream: nothing missing, duplicates only with DUP', async () => {
  if (!findMosquitto()) {
    console.log(`  SKIPPED: ${MOSQUITTO_MISSING}; only the aedes restart ran`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-mosquitto-'));
  try {
    await runRestart('mosquitto', mosquittoBroker(await freePort(), dir));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
