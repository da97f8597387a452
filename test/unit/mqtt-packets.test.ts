// MQTT 3.1.1 packet codec against the independent mqtt-packet library, both ways, plus
// fragmentation, truncation and malformed input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqttPacket from 'mqtt-packet';
import { encodePacket, MqttStreamDecoder, MqttPacketError, type MqttPacket } from '../../firmware/src/mqtt/packets.ts';

const bytes = (...b: number[]) => new Uint8Array(b);
const allByteValues = new Uint8Array(256).map((_, i) => i);
const big = new Uint8Array(20000).map((_, i) => (i * 7) & 255);

const cases: { name: string; packet: MqttPacket }[] = [
  {
    name: 'CONNECT minimal',
    packet: { kind: 'connect', clientId: 'meter-1', cleanSession: true, keepAliveSeconds: 30 },
  },
  {
    name: 'CONNECT with credentials, will, persistent session',
    packet: {
      kind: 'connect',
      clientId: 'vg-meter-0042',
      cleanSession: false,
      keepAliveSeconds: 65535,
      username: 'meter-0042',
      password: 'pa\u00ff\u0000ss',
      will: { topic: 'veilgrid/meters/0042/status', payload: bytes(0x6f, 0x66, 0x66, 0, 255), qos: 1, retain: true },
    },
  },
  {
    name: 'CONNECT with QoS 0 will and username only',
    packet: {
      kind: 'connect',
      clientId: 'c',
      cleanSession: true,
      keepAliveSeconds: 0,
      username: 'u',
      will: { topic: 't', payload: bytes(), qos: 0, retain: false },
    },
  },
  { name: 'CONNACK accepted, session present', packet: { kind: 'connack', sessionPresent: true, returnCode: 0 } },
  { name: 'CONNACK not authorized', packet: { kind: 'connack', sessionPresent: false, returnCode: 5 } },
  {
    name: 'PUBLISH QoS 0 retained',
    packet: {
      kind: 'publish',
      topic: 'veilgrid/meters/m1/status',
      payload: bytes(1, 2, 3),
      qos: 0,
      dup: false,
      retain: true,
    },
  },
  {
    name: 'PUBLISH QoS 1 DUP, every byte value',
    packet: {
      kind: 'publish',
      topic: 'a/b',
      payload: allByteValues,
      qos: 1,
      dup: true,
      retain: false,
      packetId: 65535,
    },
  },
  {
    name: 'PUBLISH QoS 1 empty payload',
    packet: { kind: 'publish', topic: 'x', payload: bytes(), qos: 1, dup: false, retain: false, packetId: 1 },
  },
  {
    name: 'PUBLISH 20000-byte payload (3-byte length)',
    packet: { kind: 'publish', topic: 'big', payload: big, qos: 0, dup: false, retain: false },
  },
  { name: 'PUBACK', packet: { kind: 'puback', packetId: 513 } },
  {
    name: 'SUBSCRIBE two filters',
    packet: {
      kind: 'subscribe',
      packetId: 7,
      subscriptions: [
        { filter: 'veilgrid/meters/+/readings', qos: 1 },
        { filter: 'cmd/#', qos: 0 },
      ],
    },
  },
  { name: 'SUBACK', packet: { kind: 'suback', packetId: 7, returnCodes: [1, 0, 128] } },
  { name: 'UNSUBSCRIBE', packet: { kind: 'unsubscribe', packetId: 8, filters: ['cmd/#', 'a/b'] } },
  { name: 'UNSUBACK', packet: { kind: 'unsuback', packetId: 8 } },
  { name: 'PINGREQ', packet: { kind: 'pingreq' } },
  { name: 'PINGRESP', packet: { kind: 'pingresp' } },
  { name: 'DISCONNECT', packet: { kind: 'disconnect' } },
];

const latin1 = (s: string) => Buffer.from(s, 'latin1');

/** Our packet as mqtt-packet's object form. */
function toMqttPacket(p: MqttPacket): any {
  switch (p.kind) {
    case 'connect': {
      const o: any = {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: p.clientId,
        clean: p.cleanSession,
        keepalive: p.keepAliveSeconds,
      };
      if (p.username !== undefined) o.username = p.username;
      if (p.password !== undefined) o.password = latin1(p.password);
      if (p.will)
        o.will = { topic: p.will.topic, payload: Buffer.from(p.will.payload), qos: p.will.qos, retain: p.will.retain };
      return o;
    }
    case 'connack':
      return { cmd: 'connack', sessionPresent: p.sessionPresent, returnCode: p.returnCode };
    case 'publish':
      return {
        cmd: 'publish',
        topic: p.topic,
        payload: Buffer.from(p.payload),
        qos: p.qos,
        dup: p.dup,
        retain: p.retain,
        messageId: p.packetId,
      };
    case 'puback':
    case 'unsuback':
      return { cmd: p.kind, messageId: p.packetId };
    case 'subscribe':
      return {
        cmd: 'subscribe',
        messageId: p.packetId,
        subscriptions: p.subscriptions.map((s) => ({ topic: s.filter, qos: s.qos })),
      };
    case 'suback':
      return { cmd: 'suback', messageId: p.packetId, granted: p.returnCodes };
    case 'unsubscribe':
      return { cmd: 'unsubscribe', messageId: p.packetId, unsubscriptions: p.filters };
    default:
      return { cmd: p.kind };
  }
}

/** mqtt-packet's parsed object back in our form. */
function fromMqttPacket(o: any): MqttPacket {
  switch (o.cmd) {
    case 'connect': {
      const p: any = { kind: 'connect', clientId: o.clientId, cleanSession: o.clean, keepAliveSeconds: o.keepalive };
      if (o.will)
        p.will = {
          topic: o.will.topic,
          payload: new Uint8Array(o.will.payload),
          qos: o.will.qos,
          retain: o.will.retain,
        };
      if (o.username !== undefined) p.username = o.username;
      if (o.password !== undefined) p.password = o.password.toString('latin1');
      return p;
    }
    case 'connack':
      return { kind: 'connack', sessionPresent: o.sessionPresent, returnCode: o.returnCode };
    case 'publish': {
      const p: any = {
        kind: 'publish',
        topic: o.topic,
        payload: new Uint8Array(o.payload),
        qos: o.qos,
        dup: o.dup,
        retain: o.retain,
      };
      if (o.qos > 0) p.packetId = o.messageId;
      return p;
    }
    case 'puback':
    case 'unsuback':
      return { kind: o.cmd, packetId: o.messageId };
    case 'subscribe':
      return {
        kind: 'subscribe',
        packetId: o.messageId,
        subscriptions: o.subscriptions.map((s: any) => ({ filter: s.topic, qos: s.qos })),
      };
    case 'suback':
      return { kind: 'suback', packetId: o.messageId, returnCodes: o.granted };
    case 'unsubscribe':
      return { kind: 'unsubscribe', packetId: o.messageId, filters: o.unsubscriptions };
    default:
      return { kind: o.cmd } as MqttPacket;
  }
}

function parseWithMqttPacket(data: Buffer): any[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const out: any[] = [];
  const errors: Error[] = [];
  parser.on('packet', (p: any) => out.push(p));
  parser.on('error', (e: Error) => errors.push(e));
  parser.parse(data);
  if (errors.length) throw errors[0];
  return out;
}

const decoder = () => new MqttStreamDecoder(1 << 20);

for (const c of cases) {
  test(`${c.name}: our bytes equal mqtt-packet's and parse back both ways`, () => {
    const ours = encodePacket(c.packet);
    const theirs = mqttPacket.generate(toMqttPacket(c.packet));
    assert.equal(latin1(ours).toString('hex'), theirs.toString('hex'), 'identical encoding');
    const parsedByThem = parseWithMqttPacket(latin1(ours));
    assert.is(parsedByThem.length, 1);
    assert.equal(fromMqttPacket(parsedByThem[0]), c.packet, 'mqtt-packet reads what we wrote');
    const parsedByUs = decoder().push(theirs.toString('latin1'));
    assert.equal(parsedByUs, [c.packet], 'we read what mqtt-packet wrote');
  });
}

const stream = cases.map((c) => encodePacket(c.packet)).join('');
const expected = cases.map((c) => c.packet);

test('a stream split at every byte position decodes to the same packets', () => {
  for (let k = 0; k <= stream.length; k += k < 2000 ? 1 : 97) {
    const d = decoder();
    const got = [...d.push(stream.slice(0, k)), ...d.push(stream.slice(k))];
    assert.equal(got, expected, `split at ${k}`);
    assert.is(d.pendingBytes(), 0);
  }
});

test('a stream fed one byte at a time decodes to the same packets', () => {
  const d = decoder();
  const got: MqttPacket[] = [];
  for (let i = 0; i < stream.length; i++) got.push(...d.push(stream[i]));
  assert.equal(got, expected);
});

test('every truncated packet waits for more bytes instead of failing', () => {
  for (const c of cases) {
    const full = encodePacket(c.packet);
    const step = full.length > 600 ? 53 : 1;
    for (let k = 0; k < full.length; k += step) {
      const d = decoder();
      assert.equal(d.push(full.slice(0, k)), [], `${c.name} cut at ${k}`);
      assert.is(d.pendingBytes(), k);
      assert.equal(d.push(full.slice(k)), [c.packet], `${c.name} completed after ${k}`);
    }
  }
});

const malformed: { name: string; hex: string; message: RegExp; max?: number }[] = [
  { name: 'remaining length of 5 bytes', hex: '30ffffffff01', message: /remaining length takes more than 4 bytes/ },
  { name: 'remaining length 5th byte not yet received', hex: '30ffffffff', message: /more than 4 bytes/ },
  { name: 'PUBACK with flags', hex: '42020001', message: /PUBACK: fixed-header flags are 2, must be 0/ },
  {
    name: 'SUBSCRIBE without its required flags',
    hex: '8006000100016100',
    message: /SUBSCRIBE: fixed-header flags are 0, must be 2/,
  },
  { name: 'PUBLISH with QoS bits 3', hex: '3603000161', message: /QoS bits are 3/ },
  { name: 'PUBLISH QoS 2', hex: '34050001610001', message: /QoS 2/ },
  { name: 'PUBLISH QoS 0 with DUP', hex: '3803000161', message: /DUP set on a QoS 0/ },
  { name: 'reserved packet type 0', hex: '0000', message: /reserved type 0/ },
  { name: 'reserved packet type 15', hex: 'f000', message: /reserved type 15/ },
  { name: 'PUBREC (QoS 2 flow)', hex: '50020001', message: /unsupported PUBREC/ },
  { name: 'CONNACK too long', hex: '2003000000', message: /CONNACK: 1 unexpected bytes/ },
  { name: 'CONNACK reserved flags', hex: '20020200', message: /reserved acknowledge flags/ },
  { name: 'PUBACK packet id 0', hex: '40020000', message: /packet id 0 is not allowed/ },
  { name: 'PUBACK too short', hex: '400101', message: /PUBACK: packet id runs past the end/ },
  { name: 'PUBLISH topic longer than packet', hex: '3003000561', message: /topic runs past the end/ },
  { name: 'PUBLISH topic with wildcard', hex: '3003000123', message: /contains a wildcard/ },
  { name: 'PUBLISH empty topic', hex: '30020000', message: /empty topic/ },
  { name: 'SUBACK with return code 3', hex: '9003000103', message: /return code 3/ },
  { name: 'PINGRESP with a body', hex: 'd00100', message: /PINGRESP: 1 unexpected bytes/ },
  { name: 'CONNECT protocol level 3', hex: '100c00044d5154540302001e0000', message: /protocol level 3 is not 4/ },
  {
    name: 'oversized PUBLISH rejected from its header',
    hex: '30e807',
    message: /PUBLISH of 1003 bytes exceeds the limit of 100 bytes/,
    max: 100,
  },
];

for (const m of malformed) {
  test(`rejects ${m.name}`, () => {
    const d = new MqttStreamDecoder(m.max);
    let caught: unknown;
    try {
      d.push(Buffer.from(m.hex, 'hex').toString('latin1'));
    } catch (err) {
      caught = err;
    }
    assert.instance(caught, MqttPacketError);
    assert.match((caught as Error).message, m.message);
    assert.throws(() => d.push(encodePacket({ kind: 'pingresp' })), m.message, 'the decoder stays failed');
  });
}

test('a malformed packet after good ones still yields an error (the good ones were returned earlier)', () => {
  const d = decoder();
  assert.equal(d.push(encodePacket({ kind: 'pingresp' })), [{ kind: 'pingresp' }]);
  assert.throws(() => d.push('\x40\x02\x00\x00'), /packet id 0/);
});

test('encoding refuses what cannot be sent, saying why', () => {
  const publish = (over: object) =>
    encodePacket({
      kind: 'publish',
      topic: 't',
      payload: bytes(),
      qos: 0,
      dup: false,
      retain: false,
      ...over,
    } as MqttPacket);
  assert.throws(
    () => publish({ topic: 'z\u00e4hler/1' }),
    /topic "z.hler\/1" has char code 228 at index 1: only ASCII/,
  );
  assert.throws(() => publish({ topic: 'a/+' }), /must not contain the wildcards/);
  assert.throws(() => publish({ qos: 2 }), /QoS 2 is not supported/);
  assert.throws(() => publish({ qos: 1 }), /QoS 1 PUBLISH needs a packet id/);
  assert.throws(() => publish({ dup: true }), /QoS 0 PUBLISH must not have DUP/);
  assert.throws(
    () => encodePacket({ kind: 'connect', clientId: 'c', cleanSession: true, keepAliveSeconds: 70000 }),
    /keep-alive must be 0..65535/,
  );
  assert.throws(
    () => encodePacket({ kind: 'connect', clientId: 'c', cleanSession: true, keepAliveSeconds: 1, password: 'p' }),
    /password needs a user name/,
  );
  assert.throws(
    () =>
      encodePacket({
        kind: 'connect',
        clientId: 'c',
        cleanSession: true,
        keepAliveSeconds: 1,
        username: 'u',
        password: 'p\u20ac',
      }),
    /char code 8364 at index 1 is not a byte/,
  );
});

test.run();
