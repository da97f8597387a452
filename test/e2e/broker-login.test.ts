// Meter logins on both brokers (issue 8 item 3, docs/broker-login.md): a meter logs in with a password its
// secure element makes for that one connection, and someone who read it off the wire cannot use it.
// aedes checks logins in process; mosquitto through the veilgrid_login plugin (built here with gcc) and
// the login service. The services keep logging in with the password file on both.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { meterLoginPassword } from '../../firmware/src/keys/meter-login.ts';
import { kidOf } from '../../firmware/src/protocol/certificate.ts';
import { bytesToHex } from '../../firmware/src/protocol/hex.ts';
import { READING_TOPIC_FILTER, readingTopic, relayInboxTopic } from '../../firmware/src/protocol/topics.ts';
import { DSO_USERNAME } from '../../host-tools/broker/acl.ts';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startLoginService, type LoginService } from '../../host-tools/broker/login-service.ts';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../../host-tools/broker/mosquitto.ts';
import { loginPluginPath, loginPluginUnavailable } from '../../host-tools/broker/mosquitto-plugin.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { provisionedSecureElement, type ProvisionedSecureElement } from '../support/provisioned-se.ts';

const METER = 'meter-login-1';

interface RunningBroker {
  url: string;
  /** The login service goes away (mosquitto only). */
  stopLogins?(): Promise<void>;
  close(): Promise<void>;
}

type StartBroker = (
  credentials: BrokerCredentials,
  dir: string,
  refusals: string[],
) => Promise<RunningBroker | undefined>;

/** Connects; resolves to the client, or to the refusal's message. */
async function connect(url: string, username: string, password: string): Promise<MqttClient | string> {
  try {
    return await mqtt.connectAsync(url, {
      clientId: username,
      username,
      password,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      clean: true,
    });
  } catch (err) {
    return (err as Error).message;
  }
}

function brokers(name: string, start: StartBroker): void {
  const test = suite(`meter logins on ${name}`);
  let dir = '';
  let chip: ProvisionedSecureElement;
  let credentials: BrokerCredentials;
  const refusals: string[] = [];
  let broker: RunningBroker | undefined;
  const clients: MqttClient[] = [];

  test.before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `veilgrid-login-${name}-`));
    chip = provisionedSecureElement();
    credentials = new BrokerCredentials(path.join(dir, 'broker'));
    credentials.ensureDsoUser();
    assert.ok(credentials.addMeterLogin(METER, chip.identityKey, chip.mixKey), 'a new meter login');
    broker = await start(credentials, dir, refusals);
  });

  test.after(async () => {
    for (const client of clients) client.end(true);
    await broker?.close();
    chip.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("a meter logs in with its chip's login and publishes; the same login again is refused", async () => {
    if (!broker) return;
    const dso = await connect(broker.url, DSO_USERNAME, credentials.dsoPassword());
    assert.ok(typeof dso !== 'string', `the DSO logs in with its password: ${dso}`);
    clients.push(dso as MqttClient);
    const received: string[] = [];
    (dso as MqttClient).on('message', (_topic, payload) => received.push(payload.toString()));
    await (dso as MqttClient).subscribeAsync(READING_TOPIC_FILTER, { qos: 1 });

    const login = meterLoginPassword(chip.se, nodeSha256, METER);
    const meter = await connect(broker.url, METER, login);
    assert.ok(typeof meter !== 'string', `the meter logs in: ${meter}`);
    clients.push(meter as MqttClient);
    await (meter as MqttClient).publishAsync(readingTopic(METER), 'reading 1', { qos: 1 });
    for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(received, ['reading 1'], 'the ACL lets a login meter publish its readings');

    // The mixnet: its own inbox (named by its mix key's relay id) it may read, no other; any inbox it may
    // fill. (mosquitto grants a subscription its ACL forbids and delivers nothing on it; aedes refuses it.)
    const inbox = relayInboxTopic(bytesToHex(kidOf(nodeSha256, chip.mixKey)));
    const otherInbox = relayInboxTopic('00112233445566ff');
    const packets: string[] = [];
    (meter as MqttClient).on(
      'message',
      (topic, payload) => topic.startsWith('veilgrid/mix/') && packets.push(`${topic} ${payload}`),
    );
    const granted = await (meter as MqttClient).subscribeAsync(inbox, { qos: 1 });
    assert.is(granted[0].qos, 1, `the meter reads its inbox ${inbox}`);
    for (const filter of [otherInbox, 'veilgrid/mix/#'])
      await (meter as MqttClient).subscribeAsync(filter, { qos: 1 }).catch(() => undefined);
    await (meter as MqttClient).publishAsync(otherInbox, 'for another relay', { qos: 1 });
    await (meter as MqttClient).publishAsync(inbox, 'a packet', { qos: 1 });
    for (let i = 0; i < 100 && packets.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(packets, [`${inbox} a packet`], 'only its own inbox reaches it');

    // Someone on the LAN recorded the CONNECT: its password is worth nothing now.
    const replayed = await connect(broker.url, METER, login);
    assert.is(typeof replayed, 'string', 'the captured login is refused');
    const next = await connect(broker.url, METER, meterLoginPassword(chip.se, nodeSha256, METER));
    assert.ok(typeof next !== 'string', `the meter's next login works: ${next}`);
    clients.push(next as MqttClient);
    assert.match(refusals.join('\n'), /replayed login/);
  });

  test("another meter's login, a static password and a made-up login are refused", async () => {
    if (!broker) return;
    const forOther = meterLoginPassword(chip.se, nodeSha256, 'meter-login-2');
    assert.is(typeof (await connect(broker.url, METER, forOther)), 'string', 'a login names its meter');
    assert.is(typeof (await connect(broker.url, METER, 'hunter2')), 'string');
    assert.is(typeof (await connect(broker.url, METER, 'vgl1.999.' + '00'.repeat(64))), 'string');
  });

  test('with the login service gone, meters are refused and the services still log in', async () => {
    if (!broker?.stopLogins) return;
    await broker.stopLogins();
    assert.is(typeof (await connect(broker.url, METER, meterLoginPassword(chip.se, nodeSha256, METER))), 'string');
    const dso = await connect(broker.url, DSO_USERNAME, credentials.dsoPassword());
    assert.ok(typeof dso !== 'string', `${dso}`);
    clients.push(dso as MqttClient);
  });

  test.run();
}

const cli = suite('veilgrid broker logins');

cli('prints the lines mosquitto needs, checks meter logins until stopped, and says what is missing', async () => {
  const unavailable = findMosquitto() ? loginPluginUnavailable() : MOSQUITTO_MISSING;
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-login-cli-'));
  const chip = provisionedSecureElement();
  const brokerDir = path.join(dir, 'broker');
  const run = (args: string[]) =>
    spawn(process.execPath, ['bin/veilgrid.js', 'broker', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const missing = run(['logins', '--broker-dir', brokerDir, '--port', '0']);
  let missingErr = '';
  missing.stderr.on('data', (d) => (missingErr += d));
  assert.is(await new Promise((resolve) => missing.on('exit', resolve)), 2);
  assert.match(missingErr, "the folder 'veilgrid provision --broker-dir' writes");

  const credentials = new BrokerCredentials(brokerDir);
  credentials.addMeterLogin(METER, chip.identityKey, chip.mixKey);
  const service = run(['logins', '--broker-dir', brokerDir, '--port', '0']);
  let out = '';
  service.stdout.on('data', (d) => (out += d));
  let mosquitto: Awaited<ReturnType<typeof startMosquitto>> | undefined;
  try {
    for (let i = 0; i < 500 && !out.includes('plugin_opt_login_port'); i++) await new Promise((r) => setTimeout(r, 20));
    const lines = out.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.ok(
      lines.some((l) => /^plugin .*veilgrid_login-[0-9a-f]{12}\.so$/.test(l)),
      out,
    );
    mosquitto = await startMosquitto({ dir, configLines: lines });
    const meter = await connect(mosquitto.url, METER, meterLoginPassword(chip.se, nodeSha256, METER));
    assert.ok(typeof meter !== 'string', `the meter logs in through the CLI's service: ${meter}`);
    (meter as MqttClient).end(true);
  } finally {
    await mosquitto?.stop();
    service.kill('SIGTERM');
    await new Promise((resolve) => service.on('exit', resolve));
    chip.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

cli.run();

brokers('aedes', async (credentials, _dir, refusals) => {
  const broker = await startEmbeddedBroker({ auth: credentials, log: (line) => refusals.push(line) });
  return { url: broker.url, close: () => broker.close() };
});

brokers('mosquitto', async (credentials, dir, refusals) => {
  const unavailable = findMosquitto() ? loginPluginUnavailable() : MOSQUITTO_MISSING;
  if (unavailable) {
    console.log(`  SKIPPED the mosquitto part: ${unavailable}`);
    return undefined;
  }
  let service: LoginService | undefined = await startLoginService({
    check: (u, p) => credentials.checkLogin(u, p),
    log: (line) => refusals.push(line),
  });
  const mosquitto = await startMosquitto({
    dir,
    configLines: credentials.mosquittoConfigLines({ pluginPath: loginPluginPath(), port: service.port }),
  });
  return {
    url: mosquitto.url,
    async stopLogins() {
      await service?.close();
      service = undefined;
    },
    async close() {
      await mosquitto.stop();
      await service?.close();
    },
  };
});
