// The broker rules for real: a mosquitto started with the generated password and ACL files, and the
// embedded aedes with the same rules as hooks. Meter A's credentials publish to A's topics but not to
// B's (mosquitto drops such a publish silently under MQTT 3.1.1, so a subscriber checks nothing arrives),
// and a wrong password is refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { READING_TOPIC_FILTER } from '../../firmware/src/protocol/topics.ts';
import { DSO_USERNAME } from '../../host-tools/broker/acl.ts';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../../host-tools/broker/mosquitto.ts';

interface Broker {
  url: string;
  close(): Promise<void>;
}

/** A folder with meters A and B and the DSO, as provisioning writes it. */
function credentialsFolder(): { dir: string; credentials: BrokerCredentials } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-acl-'));
  const credentials = new BrokerCredentials(path.join(dir, 'broker'));
  credentials.setUser('meter-a', 'password-of-a');
  credentials.setUser('meter-b', 'password-of-b');
  return { dir, credentials };
}

function connect(url: string, username: string, password: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      username,
      password,
      clientId: username,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
}

/** The error a connection attempt failed with (fails the test if it succeeded). */
async function refusal(attempt: Promise<MqttClient>): Promise<string> {
  try {
    const client = await attempt;
    client.end(true);
  } catch (err) {
    return (err as Error).message;
  }
  assert.unreachable('the broker accepted the connection');
  return '';
}

/** Subscribes; true when the broker granted it (MQTT.js rejects a SUBACK of 0x80). */
async function subscribe(client: MqttClient, filter: string): Promise<boolean> {
  try {
    const granted = await client.subscribeAsync(filter, { qos: 1 });
    return granted[0].qos !== 128;
  } catch {
    return false;
  }
}

/** Publishes QoS 1 and waits for the acknowledgement (or the connection to close). */
function publishAndSettle(client: MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise((resolve) => {
    client.once('close', () => resolve());
    client.publish(topic, payload, { qos: 1 }, () => resolve());
  });
}

function checkRules(name: string, start: (credentials: BrokerCredentials, dir: string) => Promise<Broker | undefined>) {
  const test = suite(name);
  test("meter A publishes to its own topics and not to meter B's; a wrong password is refused", async () => {
    const { dir, credentials } = credentialsFolder();
    const broker = await start(credentials, dir);
    if (!broker) {
      fs.rmSync(dir, { recursive: true, force: true });
      return;
    }
    const clients: MqttClient[] = [];
    try {
      const dso = await connect(broker.url, DSO_USERNAME, credentials.dsoPassword());
      clients.push(dso);
      const received: string[] = [];
      dso.on('message', (topic, payload) => received.push(`${topic} ${payload}`));
      assert.ok(await subscribe(dso, READING_TOPIC_FILTER), "the DSO may read every meter's readings");

      // mosquitto grants a subscription its ACL does not allow and then delivers nothing on it; aedes
      // refuses it (0x80). Either way meter A must receive nothing of meter B's.
      const a = await connect(broker.url, 'meter-a', 'password-of-a');
      clients.push(a);
      const leakedToA: string[] = [];
      a.on('message', (topic) => leakedToA.push(topic));
      await subscribe(a, 'veilgrid/meters/meter-b/#');
      await publishAndSettle(a, 'veilgrid/meters/meter-b/readings', 'forged by A');
      // B's own publish after A's forged one: once it arrives, A's would have arrived before it.
      const b = await connect(broker.url, 'meter-b', 'password-of-b');
      clients.push(b);
      await publishAndSettle(b, 'veilgrid/meters/meter-b/readings', 'from B');
      const a2 = a.connected ? a : await connect(broker.url, 'meter-a', 'password-of-a');
      if (a2 !== a) clients.push(a2);
      await publishAndSettle(a2, 'veilgrid/meters/meter-a/readings', 'from A');
      for (let i = 0; i < 500 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(received, ['veilgrid/meters/meter-b/readings from B', 'veilgrid/meters/meter-a/readings from A']);
      assert.equal(leakedToA, [], 'meter A read nothing of meter B');

      assert.match(
        await refusal(connect(broker.url, 'meter-a', 'password-of-b')),
        /Not authorized|Bad username or password/i,
        'a wrong password is refused',
      );
      assert.match(
        await refusal(connect(broker.url, 'meter-c', 'anything')),
        /Not authorized|Bad username or password/i,
        'an unknown user is refused',
      );
    } finally {
      for (const client of clients) client.end(true);
      await broker.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  test.run();
}

checkRules('mosquitto with the generated password and ACL files', async (credentials, dir) => {
  if (!findMosquitto()) {
    console.log(`  SKIPPED the mosquitto part: ${MOSQUITTO_MISSING}`);
    return undefined;
  }
  const mosquitto = await startMosquitto({ dir, configLines: credentials.mosquittoConfigLines() });
  return { url: mosquitto.url, close: () => mosquitto.stop() };
});

checkRules('aedes with the same rules as hooks', async (credentials) => {
  const broker = await startEmbeddedBroker({ auth: credentials, log: () => {} });
  return { url: broker.url, close: () => broker.close() };
});
