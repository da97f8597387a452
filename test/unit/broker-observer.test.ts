// The broker observer on the embedded broker (aedes) with real MQTT clients on 127.0.0.1: it records each
// accepted PUBLISH (client, topic, bytes, a hash of the bytes) and each SUBSCRIBE, nothing the broker refused,
// nothing after it is detached, and the broker delivers exactly as without it.
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { createBrokerObserver, payloadHash } from '../../host-tools/observer/broker-observer.ts';

test('records what the broker accepted, by whom and when, and leaves delivery alone', async () => {
  const broker = await startEmbeddedBroker({
    log: () => {},
    aedes: {
      authorizePublish: (_client, packet, done) => done(packet.topic === 'refused' ? new Error('not yours') : null),
    },
  });
  const observer = createBrokerObserver(() => 42_000);
  observer.attach(broker.aedes);
  const reader = await mqtt.connectAsync(broker.url, { clientId: 'reader', reconnectPeriod: 0 });
  const writer = await mqtt.connectAsync(broker.url, { clientId: 'writer', reconnectPeriod: 0 });
  // aedes drops the connection of a client whose publish it refuses: that one has its own.
  const intruder = await mqtt.connectAsync(broker.url, { clientId: 'intruder', reconnectPeriod: 0 });
  try {
    await reader.subscribeAsync('veilgrid/mix/00000000000000aa', { qos: 0 });
    const got = new Promise<[string, Buffer]>((resolve) => reader.once('message', (t, p) => resolve([t, p])));
    const packet = new Uint8Array(1024).fill(7);
    const before = Date.now();
    const refused = new Promise<void>((resolve) => intruder.once('close', () => resolve()));
    intruder.publish('refused', 'x', { qos: 0 });
    await refused;
    await writer.publishAsync('veilgrid/mix/00000000000000aa', Buffer.from(packet), { qos: 1 });
    const [topic, payload] = await got;
    assert.is(topic, 'veilgrid/mix/00000000000000aa');
    assert.equal(new Uint8Array(payload), packet, 'delivered unchanged');

    assert.equal(
      observer.trace.publishes.map((p) => p.topic),
      ['veilgrid/mix/00000000000000aa'],
      'the refused publish is not recorded',
    );
    const records = observer.trace.publishes.filter((p) => p.clientId === 'writer');
    const [record] = records;
    assert.equal(
      { ...record, timeMs: 0 },
      {
        timeMs: 0,
        simMs: 42_000,
        clientId: 'writer',
        topic: 'veilgrid/mix/00000000000000aa',
        bytes: 1024,
        payloadHash: payloadHash(packet),
      },
    );
    assert.ok(record.timeMs >= before && record.timeMs <= Date.now());
    assert.equal(
      observer.trace.subscriptions.map((s) => [s.clientId, s.topic]),
      [['reader', 'veilgrid/mix/00000000000000aa']],
    );

    observer.detach();
    await writer.publishAsync('veilgrid/mix/00000000000000aa', 'after', { qos: 1 });
    assert.is(observer.trace.publishes.filter((p) => p.clientId === 'writer').length, 1, 'nothing after detach');
  } finally {
    await Promise.all([reader.endAsync(), writer.endAsync(), intruder.endAsync(true)]);
    await broker.close();
  }
});

test.run();
