// The firmware's MQTT client in Node, over the emulator's net module (real TCP), the emulator's
// SimClock and raw-flash outbox, against an in-process aedes broker and an MQTT.js subscriber.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as nodeNet from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { createNetModule } from '../../boards/emulator/net.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { emulatedPartition, type EmulatedPartition } from '../support/flash-rings.ts';
import { Outbox } from '../../firmware/src/mqtt/outbox.ts';
import {
  MQTT_CLIENT_DEFAULTS,
  MQTT_DISCONNECT,
  MqttClient,
  topicMatches,
  type MqttClientOptions,
} from '../../firmware/src/mqtt/client.ts';

const HOST = '127.0.0.1';
const READINGS = 'veilgrid/meters/m7/readings';
const STATUS = 'veilgrid/meters/m7/status';
const USERS: Record<string, string> = { 'meter-7': 's3cret', dso: 'dso-pass' };

/** Everything a test starts, stopped in reverse order at the end even when it fails. */
const cleanups: (() => unknown)[] = [];
async function cleanup() {
  while (cleanups.length) await cleanups.pop()!();
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 15000) {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Received {
  topic: string;
  dup: boolean;
  retain: boolean;
  payload: Buffer;
}

/** aedes on 127.0.0.1:0 checking credentials; records every PUBLISH it receives, DUP flag included. */
async function startBroker() {
  const received: Received[] = [];
  const broker = await Aedes.createBroker({
    authenticate: (_client, username, password, done) => {
      if (username !== undefined && USERS[username] === password?.toString()) return done(null, true);
      done(Object.assign(new Error('bad credentials'), { returnCode: 4 }) as any, false);
    },
    authorizePublish: (client, packet, done) => {
      if (client)
        received.push({
          topic: packet.topic,
          dup: !!packet.dup,
          retain: !!packet.retain,
          payload: Buffer.from(packet.payload as Buffer),
        });
      done(null);
    },
  });
  const sockets = new Set<nodeNet.Socket>();
  const server = nodeNet.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    broker.handle(s);
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  const port = (server.address() as nodeNet.AddressInfo).port;
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
    await new Promise<void>((r) => broker.close(() => r()));
  });
  return { port, broker, received };
}

/** An MQTT.js client subscribed to `filter`, collecting messages. */
async function subscriber(port: number, filter: string) {
  const messages: { topic: string; payload: Buffer }[] = [];
  const client = await mqtt.connectAsync(`mqtt://${HOST}:${port}`, {
    username: 'dso',
    password: 'dso-pass',
    reconnectPeriod: 100,
  });
  cleanups.push(() => client.endAsync(true));
  client.on('message', (topic, payload) => messages.push({ topic, payload }));
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, messages };
}

/** A TCP relay that can turn into a black hole (data silently dropped both ways), like a dead NAT. */
async function proxyTo(targetPort: number) {
  const state = { blackhole: false, holdDownstream: false };
  const held: { socket: nodeNet.Socket; data: Buffer }[] = [];
  const sockets = new Set<nodeNet.Socket>();
  const server = nodeNet.createServer((down) => {
    const up = nodeNet.connect(targetPort, HOST);
    for (const s of [down, up]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        down.destroy();
        up.destroy();
      });
    }
    down.on('data', (d) => state.blackhole || up.write(d));
    up.on('data', (d) => {
      if (state.blackhole) return;
      if (state.holdDownstream) held.push({ socket: down, data: d });
      else down.write(d);
    });
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return {
    port: (server.address() as nodeNet.AddressInfo).port,
    state,
    release() {
      state.holdDownstream = false;
      for (const h of held.splice(0)) if (!h.socket.destroyed) h.socket.write(h.data);
    },
  };
}

function rig(overrides: Partial<MqttClientOptions> & { port: number }, storage?: EmulatedPartition) {
  const net = createNetModule();
  const clock = new SimClock();
  const store = storage ?? emulatedPartition();
  const outbox = new Outbox(store.outboxRing());
  const events: string[] = [];
  /** The code of each disconnect, in order (MQTT_DISCONNECT). */
  const codes: string[] = [];
  const log: string[] = [];
  const client = new MqttClient(
    {
      net,
      clock,
      host: HOST,
      clientId: 'meter-7',
      username: 'meter-7',
      password: 's3cret',
      keepAliveSeconds: 30,
      minBackoffMs: 50,
      maxBackoffMs: 400,
      onConnect: () => events.push('connect'),
      onDisconnect: (reason, code) => {
        events.push(`disconnect: ${reason}`);
        codes.push(code);
      },
      log: (m) => log.push(m),
      ...overrides,
    },
    outbox,
  );
  cleanups.push(() => {
    client.stop();
    net.closeAll();
    clock.close();
  });
  return { client, net, clock, outbox, storage: store, events, codes, log };
}

const reading = (seq: number) => new Uint8Array([0xff, 0x00, seq >> 8, seq & 255, 0xfe, 0x0a]);
const seqOf = (payload: Uint8Array) => (payload[2] << 8) | payload[3];

test('options: a 0 given is a 0 (not the default); nonsense is refused at once, naming the option', async () => {
  try {
    assert.throws(() => rig({ port: 1, maxInFlight: 0 }), /MQTT maxInFlight must be above 0, got 0/);
    assert.throws(() => rig({ port: 1, ackTimeoutMs: -5 }), /ackTimeoutMs must be above 0/);
    assert.throws(() => rig({ port: 1, minBackoffMs: 500, maxBackoffMs: 100 }), /minBackoffMs <= maxBackoffMs/);
    assert.is(MQTT_CLIENT_DEFAULTS.maxInFlight, 8);
    // minBackoffMs 0: the first retry is at once (with `||` it used to become 1 s).
    const r = rig({ port: 1, minBackoffMs: 0, maxBackoffMs: 0 });
    r.client.start();
    await waitFor(() => r.log.length >= 1, 'a retry');
    r.client.stop();
    assert.match(r.log[0], /reconnecting to 127\.0\.0\.1:1 in 0 ms/);
  } finally {
    await cleanup();
  }
});

test('topic filters match as MQTT section 4.7 says', () => {
  assert.ok(topicMatches('veilgrid/meters/+/readings', 'veilgrid/meters/m1/readings'));
  assert.not.ok(topicMatches('veilgrid/meters/+/readings', 'veilgrid/meters/m1/status'));
  assert.ok(topicMatches('veilgrid/#', 'veilgrid/meters/m1/status'));
  assert.ok(topicMatches('veilgrid/#', 'veilgrid'));
  assert.not.ok(topicMatches('#', '$SYS/uptime'));
  assert.not.ok(topicMatches('a/b', 'a/b/c'));
});

test('connects with credentials; QoS 1 messages arrive in order, byte for byte, and leave the outbox on PUBACK', async () => {
  try {
    const broker = await startBroker();
    const sub = await subscriber(broker.port, READINGS);
    const r = rig({ port: broker.port });
    r.client.start();
    await waitFor(() => r.client.isConnected(), 'CONNACK');
    for (let seq = 0; seq < 50; seq++) r.client.publish(READINGS, reading(seq), 1);
    await waitFor(() => sub.messages.length >= 50, '50 messages at the subscriber');
    assert.equal(
      sub.messages.map((m) => seqOf(m.payload)),
      [...Array(50).keys()],
    );
    assert.equal([...sub.messages[7].payload], [...reading(7)]);
    await waitFor(() => r.outbox.size() === 0, 'every PUBACK');
    assert.ok(
      broker.received.every((m) => !m.dup),
      'first transmissions carry no DUP',
    );
    assert.equal(r.events, ['connect']);
    assert.is(r.client.publish(READINGS, reading(999), 0), true, 'QoS 0 goes out while connected');
  } finally {
    await cleanup();
  }
});

test('unsubscribe from a handler: the next filter is subscribed in its place, the old one is gone for good', async () => {
  try {
    const broker = await startBroker();
    const other = await subscriber(broker.port, 'unrelated');
    await other.client.publishAsync('dir/0', 'a', { qos: 1, retain: true });
    await other.client.publishAsync('dir/1', 'b', { qos: 1, retain: true });
    const r = rig({ port: broker.port });
    const got: string[] = [];
    r.client.subscribe('dir/0', 0, (topic, payload) => {
      got.push(topic + '=' + String.fromCharCode(...payload));
      r.client.unsubscribe('dir/0');
      r.client.subscribe('dir/1', 0, (t, p) => got.push(t + '=' + String.fromCharCode(...p)));
    });
    r.client.start();
    await waitFor(() => got.length >= 2, 'both retained messages');
    await other.client.publishAsync('dir/0', 'c', { qos: 1 });
    await other.client.publishAsync('dir/1', 'd', { qos: 1 });
    await waitFor(() => got.length >= 3, 'the live one');
    assert.equal(got, ['dir/0=a', 'dir/1=b', 'dir/1=d']);
  } finally {
    await cleanup();
  }
});

test('wrong credentials: the client says the broker refused them and backs off exponentially with jitter', async () => {
  try {
    const broker = await startBroker();
    const r = rig({ port: broker.port, password: 'wrong', minBackoffMs: 100, maxBackoffMs: 10000, random: () => 0.5 });
    r.client.start();
    await waitFor(() => r.events.length >= 3, 'three refused attempts');
    r.client.stop();
    assert.equal(r.codes.slice(0, 3), [MQTT_DISCONNECT.refused, MQTT_DISCONNECT.refused, MQTT_DISCONNECT.refused]);
    for (const e of r.events.slice(0, 3)) {
      assert.match(
        e,
        /^disconnect: broker 127\.0\.0\.1:\d+ refused the connection: bad user name or password \(CONNACK 4\)$/,
      );
    }
    // base 100, 200, 400 ms; equal jitter with random 0.5 gives 3/4 of each.
    assert.equal(
      r.log.slice(0, 3).map((l) => l.replace(/:\d+ /, ':PORT ')),
      [
        'reconnecting to 127.0.0.1:PORT in 75 ms (attempt 2)',
        'reconnecting to 127.0.0.1:PORT in 150 ms (attempt 3)',
        'reconnecting to 127.0.0.1:PORT in 300 ms (attempt 4)',
      ],
    );
  } finally {
    await cleanup();
  }
});

test('a refused TCP connection is reported with the Espruino socket error and retried', async () => {
  try {
    const closed = nodeNet.createServer();
    await new Promise<void>((r) => closed.listen(0, HOST, r));
    const port = (closed.address() as nodeNet.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const r = rig({ port });
    r.client.start();
    await waitFor(() => r.events.length >= 2, 'two failed attempts');
    assert.is(r.codes[0], MQTT_DISCONNECT.unreachable);
    assert.match(r.events[0], /^disconnect: could not connect to 127\.0\.0\.1:\d+: connection reset \(-9\)$/);
  } finally {
    await cleanup();
  }
});

test('the Last Will is published when the socket dies without DISCONNECT, and not after stop()', async () => {
  try {
    const broker = await startBroker();
    const sub = await subscriber(broker.port, STATUS);
    const will = { topic: STATUS, payload: new Uint8Array([0x6f, 0x66, 0x66]), qos: 1 as const, retain: false };
    const r = rig({ port: broker.port, will });
    r.client.start();
    await waitFor(() => r.client.isConnected(), 'CONNACK');
    r.net.closeAll(); // the board loses power: its sockets vanish
    await waitFor(() => sub.messages.length === 1, 'the will at the subscriber');
    assert.is(sub.messages[0].payload.toString(), 'off');
    r.client.stop();

    const graceful = rig({ port: broker.port, will, clientId: 'meter-7b' });
    graceful.client.start();
    await waitFor(() => graceful.client.isConnected(), 'second CONNACK');
    const gone = new Promise<void>((resolve) =>
      broker.broker.on('clientDisconnect', (c) => c.id === 'meter-7b' && resolve()),
    );
    graceful.client.stop();
    await gone;
    await sub.client.publishAsync(STATUS, 'sentinel', { qos: 1 });
    await waitFor(() => sub.messages.length === 2, 'the sentinel');
    assert.is(sub.messages[1].payload.toString(), 'sentinel', 'no will after a clean DISCONNECT');
  } finally {
    await cleanup();
  }
});

test('a half-open connection is detected by the PINGRESP timeout, then the client reconnects', async () => {
  try {
    const broker = await startBroker();
    const proxy = await proxyTo(broker.port);
    const r = rig({ port: proxy.port, keepAliveSeconds: 1, pingTimeoutMs: 400 });
    r.client.start();
    await waitFor(() => r.client.isConnected(), 'CONNACK');
    proxy.state.blackhole = true; // TCP stays up, nothing gets through
    await waitFor(() => r.events.length >= 2, 'the dead connection to be noticed');
    assert.is(r.codes[0], MQTT_DISCONNECT.pingTimeout);
    assert.match(r.events[1], /^disconnect: no PINGRESP from 127\.0\.0\.1:\d+ within 400 ms: connection is dead$/);
    proxy.state.blackhole = false;
    await waitFor(() => r.events.filter((e) => e === 'connect').length >= 2, 'the reconnect');
    assert.ok(r.client.isConnected());
  } finally {
    await cleanup();
  }
});

test('a late PUBACK makes the client resend with DUP; the message leaves the outbox once acknowledged', async () => {
  try {
    const broker = await startBroker();
    const proxy = await proxyTo(broker.port);
    const r = rig({ port: proxy.port, keepAliveSeconds: 60, ackTimeoutMs: 200 });
    r.client.start();
    await waitFor(() => r.client.isConnected(), 'CONNACK');
    proxy.state.holdDownstream = true; // PUBACKs are held back
    r.client.publish(READINGS, reading(1), 1);
    await waitFor(() => broker.received.length >= 2, 'the retransmission');
    assert.equal(
      broker.received.slice(0, 2).map((m) => [seqOf(m.payload), m.dup]),
      [
        [1, false],
        [1, true],
      ],
    );
    assert.is(r.outbox.size(), 1, 'still stored while unacknowledged');
    proxy.release();
    await waitFor(() => r.outbox.size() === 0, 'the PUBACK');
  } finally {
    await cleanup();
  }
});

test('retained messages: a late subscriber gets the last one; QoS 1 keeps the flag when resent with DUP', async () => {
  try {
    const broker = await startBroker();
    const proxy = await proxyTo(broker.port);
    const r = rig({ port: proxy.port, keepAliveSeconds: 60, ackTimeoutMs: 200 });
    r.client.start();
    await waitFor(() => r.client.isConnected(), 'CONNACK');
    proxy.state.holdDownstream = true; // PUBACKs are held back: the retained message is resent
    r.client.publish(STATUS, new Uint8Array([0x6f, 0x6e]), 1, true);
    await waitFor(() => broker.received.length >= 2, 'the retransmission');
    assert.equal(
      broker.received.slice(0, 2).map((m) => [m.dup, m.retain]),
      [
        [false, true],
        [true, true],
      ],
    );
    proxy.release();
    await waitFor(() => r.outbox.size() === 0, 'the PUBACK');
    r.client.publish(READINGS, reading(1), 1); // not retained unless asked
    r.client.publish(STATUS, new Uint8Array([0x71]), 0, true);
    await waitFor(() => broker.received.length >= 4, 'both publishes');
    assert.equal(
      broker.received
        .slice(-2)
        .map((m) => [m.topic, m.retain])
        .sort(),
      [
        [READINGS, false],
        [STATUS, true],
      ],
    );
    const late = await subscriber(broker.port, STATUS);
    await waitFor(() => late.messages.length >= 1, 'the retained status');
    assert.is(late.messages[0].payload.toString('latin1'), 'q');
  } finally {
    await cleanup();
  }
});

test('the outbox survives re-creating the client from the same flash; recovered messages go out with DUP', async () => {
  try {
    const storage = emulatedPartition();
    const down = nodeNet.createServer();
    await new Promise<void>((r) => down.listen(0, HOST, r));
    const deadPort = (down.address() as nodeNet.AddressInfo).port;
    await new Promise((r) => down.close(r));

    const before = rig({ port: deadPort }, storage);
    before.client.start();
    for (let seq = 0; seq < 5; seq++) before.client.publish(READINGS, reading(seq), 1);
    assert.is(before.client.pendingCount(), 5);
    before.net.closeAll(); // power cut while the broker is unreachable
    before.client.stop();

    const broker = await startBroker();
    const sub = await subscriber(broker.port, READINGS);
    const after = rig({ port: broker.port }, emulatedPartition(storage.flash));
    assert.is(after.client.pendingCount(), 5, 'all five are still in flash');
    after.client.start();
    after.client.publish(READINGS, reading(5), 1);
    await waitFor(() => sub.messages.length >= 6, 'six messages at the subscriber');
    assert.equal(
      sub.messages.map((m) => seqOf(m.payload)),
      [0, 1, 2, 3, 4, 5],
    );
    assert.equal(
      broker.received.map((m) => m.dup),
      [true, true, true, true, true, false],
      'recovered ones may have been sent before: DUP',
    );
    await waitFor(() => after.outbox.size() === 0, 'every PUBACK');
  } finally {
    await cleanup();
  }
});

test.run();
