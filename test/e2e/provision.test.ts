// `veilgrid provision` end to end: an emulated meter running the current firmware bundle with its console
// on TCP, an operator key made by `veilgrid operator init`, a DSO key and registry, a broker folder.
// Provisioning, re-running it (nothing changes), each error case (and that it leaves nothing registered
// or written), and --revoke.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { startConsole, type RunningConsole } from '../../boards/emulator/console.ts';
import { eepromPathFor } from '../../boards/emulator/devices/atecc608/persistence.ts';
import { CFG, Eeprom } from '../../boards/emulator/devices/atecc608/zones.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import mqtt, { type MqttClient } from 'mqtt';
import { DSO_USERNAME } from '../../host-tools/broker/acl.ts';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { createDsoKey, readDsoKey } from '../../host-tools/dso/dso-key.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { command as operatorCommand } from '../../host-tools/operator/operator-command.ts';
import { inProcessConsole } from '../../boards/console/meter-console.ts';
import { command as provisionCommand } from '../../host-tools/provision/provision-command.ts';
import { provisionMeter } from '../../host-tools/provision/provision.ts';
import { CONFIG_FILE, parseMeterConfig } from '../../firmware/src/protocol/meter-config.ts';
import { decodeDeviceCertificate, openSignedCertificate } from '../../firmware/src/protocol/certificate.ts';

const definition = loadBoardDefinition('esp32-meter');
const PASSPHRASE = 'correct horse battery staple';

interface Rig {
  dir: string;
  clock: SimClock;
  board: Board;
  console: RunningConsole;
  output: string[];
  operatorDir: string;
  dsoDb: string;
  dsoKey: string;
  brokerDir: string;
  passphraseFile: string;
}

const shared = { dir: '', bundle: '', operatorDir: '', passphraseFile: '', dsoKey: '' };

const test = suite<{ rig?: Rig }>('provision');

test.before(async () => {
  shared.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-provision-'));
  const built = await buildFirmware({ board: 'esp32-meter', outFile: path.join(shared.dir, 'esp32-meter.js') });
  shared.bundle = fs.readFileSync(built.outFile, 'latin1');
  shared.passphraseFile = path.join(shared.dir, 'passphrase');
  fs.writeFileSync(shared.passphraseFile, PASSPHRASE + '\n', { mode: 0o600 });
  shared.operatorDir = path.join(shared.dir, 'operator');
  const code = await quietly(() =>
    operatorCommand.run([
      'init',
      '--dir',
      shared.operatorDir,
      '--operator-id',
      'op-test',
      '--passphrase-file',
      shared.passphraseFile,
    ]),
  );
  assert.is(code, 0, 'veilgrid operator init');
  shared.dsoKey = path.join(shared.dir, 'dso-key.json');
  createDsoKey(shared.dsoKey);
});

test.after(() => {
  fs.rmSync(shared.dir, { recursive: true, force: true });
});

/** A board with the firmware as boot code and its console on a TCP port; `seImage` preloads its SE. */
async function startRig(ctx: { rig?: Rig }, seImage?: Eeprom): Promise<Rig> {
  const dir = fs.mkdtempSync(path.join(shared.dir, 'rig-'));
  const flashPath = path.join(dir, 'board.flash');
  if (seImage) fs.writeFileSync(eepromPathFor(flashPath), JSON.stringify(seImage.toJSON()));
  const clock = new SimClock({ speed: 1 });
  const board = new Board({ definition, clock, flashPath });
  board.storage.write('.bootcde', shared.bundle);
  const output: string[] = [];
  board.onOutput((text) => output.push(text));
  board.powerOn();
  const rig: Rig = {
    dir,
    clock,
    board,
    console: await startConsole(board, { port: 0 }),
    output,
    operatorDir: shared.operatorDir,
    dsoDb: path.join(dir, 'dso.db'),
    dsoKey: shared.dsoKey,
    brokerDir: path.join(dir, 'broker'),
    passphraseFile: shared.passphraseFile,
  };
  ctx.rig = rig;
  return rig;
}

test.after.each(async (ctx) => {
  const rig = ctx.rig;
  if (!rig) return;
  await rig.console.close();
  rig.board.close();
  rig.clock.close();
  ctx.rig = undefined;
});

/** Runs fn with console.log/error captured; returns fn's result and keeps the lines in `captured`. */
const captured: string[] = [];
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const { log, error } = console;
  captured.length = 0;
  console.log = (...args: unknown[]) => void captured.push(args.join(' '));
  console.error = (...args: unknown[]) => void captured.push(args.join(' '));
  try {
    return await fn();
  } finally {
    console.log = log;
    console.error = error;
  }
}

function provisionArgs(rig: Rig, overrides: Record<string, string> = {}, flags: string[] = []): string[] {
  const options: Record<string, string> = {
    port: `tcp://127.0.0.1:${rig.console.port}`,
    'meter-id': 'meter-0001',
    feeder: 'feeder-7',
    limits: '12000,5000',
    'operator-dir': rig.operatorDir,
    'passphrase-file': rig.passphraseFile,
    'dso-db': rig.dsoDb,
    'broker-dir': rig.brokerDir,
    broker: '127.0.0.1:1883',
    'dso-key': rig.dsoKey,
    'interval-seconds': '60',
    ...overrides,
  };
  return [...Object.entries(options).flatMap(([k, v]) => [`--${k}`, v]), ...flags];
}

/** Runs `veilgrid provision` (the command module); a CliError comes back as its message. */
async function provision(args: string[]): Promise<{ code: number; error?: string; lines: string[] }> {
  try {
    const code = await quietly(() => provisionCommand.run(args));
    return { code, lines: [...captured] };
  } catch (err) {
    return { code: (err as { exitCode?: number }).exitCode ?? -1, error: (err as Error).message, lines: [...captured] };
  }
}

function registeredMeters(rig: Rig): string[] {
  if (!fs.existsSync(rig.dsoDb)) return [];
  const registry = new MeterRegistry(rig.dsoDb);
  try {
    return registry.meters().map((m) => `${m.meterId}:${m.status}`);
  } finally {
    registry.close();
  }
}

/** The broker's users: the services' (password file) and the meters' (logins), sorted. */
function brokerUsers(rig: Rig): string[] {
  const folder = new BrokerCredentials(rig.brokerDir);
  const meters = fs.existsSync(folder.meterLoginsFile) ? folder.withMeterLogins((logins) => logins.meterIds()) : [];
  return [...folder.passwords().keys(), ...meters].sort();
}

function meterConfigText(rig: Rig): string | undefined {
  return rig.board.storage.read(CONFIG_FILE);
}

/** Whether the bundle under test has the provisioning entry points (the firmware helper adds them). */
function firmwareHasEntryPoints(rig: Rig): boolean {
  return rig.board.evaluate('typeof vgProvisionSE').value === 'function';
}

test('provisions a meter over its console; re-running changes nothing; --revoke revokes it', async (ctx) => {
  const rig = await startRig(ctx);
  if (!firmwareHasEntryPoints(rig)) {
    console.log('  SKIPPED: the firmware bundle has no vgProvisionSE() yet');
    return;
  }
  const first = await provision(provisionArgs(rig));
  assert.is(first.code, 0, `provision failed: ${first.error}\n${first.lines.join('\n')}`);
  assert.ok(
    first.lines.some((l) => l.includes('registering the meter with the DSO')),
    'progress lines for each step',
  );

  const config = parseMeterConfig(meterConfigText(rig));
  assert.is(config.meterId, 'meter-0001');
  assert.is(config.mqtt.username, 'meter-0001');
  assert.is(
    config.mqtt.password,
    undefined,
    'no broker password in vg.config: the meter logs in with its secure element',
  );
  assert.is(config.intervalSeconds, 60);
  assert.equal(config.broker, { host: '127.0.0.1', port: 1883 });
  const dsoKey = JSON.parse(fs.readFileSync(rig.dsoKey, 'utf8'));
  assert.is(config.dsoPublicKey, dsoKey.publicKey);
  const brokerFolder = new BrokerCredentials(rig.brokerDir);
  assert.is(
    brokerFolder.withMeterLogins((logins) => logins.lastCounter('meter-0001')),
    -1,
    'the broker lets the meter log in with its chip',
  );
  assert.not.ok(brokerFolder.passwords().has('meter-0001'), 'and holds no password for it');
  assert.ok(
    fs
      .readFileSync(path.join(rig.brokerDir, 'mosquitto.acl'), 'utf8')
      .includes('topic write veilgrid/meters/meter-0001/#'),
  );

  const registry = new MeterRegistry(rig.dsoDb);
  const meter = registry.meter('meter-0001')!;
  registry.close();
  assert.is(meter.status, 'active');
  const cert = decodeDeviceCertificate(openSignedCertificate(meter.deviceCertificate).payload);
  assert.is(cert.feeder, 'feeder-7');
  assert.equal(cert.limits, { maxImportW: 12000, maxExportW: 5000 });
  assert.is(cert.operatorId, 'op-test');
  const info = JSON.parse(rig.board.evaluate('vgInfo()').value as string);
  assert.is(info.meterId, 'meter-0001', 'the meter runs its new configuration');
  assert.ok(info.se.configLocked && info.se.dataLocked && info.se.ours);

  // Re-running: same keys, same login, same certificate, no restart.
  const files = () =>
    ['mosquitto.passwd', 'mosquitto.acl'].map((f) => fs.readFileSync(path.join(rig.brokerDir, f), 'utf8'));
  const brokerFiles = files();
  const configText = meterConfigText(rig);
  const again = await provision(provisionArgs(rig));
  assert.is(again.code, 0, `re-run failed: ${again.error}`);
  assert.ok(
    again.lines.some((l) => l.includes('registration unchanged')),
    again.lines.join('\n'),
  );
  assert.is(meterConfigText(rig), configText);
  assert.equal(files(), brokerFiles);
  const registry2 = new MeterRegistry(rig.dsoDb);
  assert.equal(registry2.meter('meter-0001')!.deviceCertificate, meter.deviceCertificate);
  assert.is(registry2.meters().length, 1);
  registry2.close();

  // --rotate: a new reading key, the rest as it was
  const rotated = await provision(provisionArgs(rig, {}, ['--rotate']));
  assert.is(rotated.code, 0, `--rotate failed: ${rotated.error}\n${rotated.lines.join('\n')}`);
  assert.ok(
    rotated.lines.some((l) => /key rotation \d+/.test(l)),
    rotated.lines.join('\n'),
  );
  assert.is(meterConfigText(rig), configText);

  // --revoke
  const revoked = await provision([
    '--revoke',
    '--meter-id',
    'meter-0001',
    '--dso-db',
    rig.dsoDb,
    '--broker-dir',
    rig.brokerDir,
  ]);
  assert.is(revoked.code, 0, revoked.error);
  assert.equal(registeredMeters(rig), ['meter-0001:revoked']);
  assert.equal(brokerUsers(rig), ['dso']);
  const afterRevoke = await provision(provisionArgs(rig));
  assert.match(afterRevoke.error ?? '', /was revoked.*--replace/, 'a revoked meter is not silently re-activated');
  assert.equal(brokerUsers(rig), ['dso'], 'and its broker credentials stay removed');
});

test('the same flow in-process (board.evaluate), as the testbed runs it', async (ctx) => {
  const rig = await startRig(ctx);
  if (!firmwareHasEntryPoints(rig)) return;
  const registry = new MeterRegistry(':memory:');
  const lines: string[] = [];
  const result = await provisionMeter(
    {
      meterId: 'meter-0042',
      feeder: 'feeder-1',
      operatorDir: rig.operatorDir,
      passphrase: PASSPHRASE,
      dsoDb: registry,
      brokerDir: rig.brokerDir,
      broker: { host: '127.0.0.1', port: 1883 },
      dsoPublicKey: readDsoKey(rig.dsoKey).publicKey,
      progress: (line) => lines.push(line),
    },
    inProcessConsole(rig.board),
  );
  assert.is(result.registration, 'registered');
  assert.is(registry.meter('meter-0042')!.status, 'active');
  assert.is(parseMeterConfig(meterConfigText(rig)).meterId, 'meter-0042');
  assert.equal(brokerUsers(rig), ['dso', 'meter-0042']);
  registry.close();
});

test('the provisioned meter connects to a broker enforcing the rules, with the credentials provisioning gave it', async (ctx) => {
  const rig = await startRig(ctx);
  if (!firmwareHasEntryPoints(rig)) return;
  const credentials = new BrokerCredentials(rig.brokerDir);
  const broker = await startEmbeddedBroker({ auth: credentials });
  const seen: string[] = [];
  let dso: MqttClient | undefined;
  try {
    const result = await provision(provisionArgs(rig, { broker: `127.0.0.1:${broker.port}` }));
    assert.is(result.code, 0, result.error);
    dso = await mqtt.connectAsync(broker.url, {
      username: DSO_USERNAME,
      clientId: DSO_USERNAME,
      password: credentials.dsoPassword(),
      reconnectPeriod: 0,
    });
    dso.on('message', (topic) => seen.push(topic));
    await dso.subscribeAsync(['veilgrid/meters/+/keys', 'veilgrid/meters/+/status'], { qos: 1 });
    // The meter's key certificate is retained, and it reports its status once connected.
    for (let i = 0; i < 1000 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(
      seen.length > 0 && seen.every((t) => t.startsWith('veilgrid/meters/meter-0001/')),
      `the DSO saw ${JSON.stringify(seen)}; the board printed ${rig.output.join('').slice(-600)}`,
    );
  } finally {
    await dso?.endAsync(true);
    await broker.close();
  }
});

// A serial device for the test: a pseudo-terminal whose other end python3 bridges to the board's TCP console.
const PTY_BRIDGE = `
import os, pty, select, socket, sys, tty
master, slave = pty.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
while True:
    r, _, _ = select.select([master, s], [], [])
    if master in r:
        try:
            d = os.read(master, 4096)
        except OSError:
            d = b""
        if d:
            s.sendall(d)
    if s in r:
        d = s.recv(4096)
        if not d:
            break
        os.write(master, d)
`;

test('provisions over a serial device (a pty bridged to the console)', async (ctx) => {
  const rig = await startRig(ctx);
  if (!firmwareHasEntryPoints(rig)) return;
  const bridge = spawn('python3', ['-c', PTY_BRIDGE, String(rig.console.port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const device = await new Promise<string | undefined>((resolve) => {
      bridge.once('error', () => resolve(undefined));
      bridge.stdout.once('data', (d) => resolve(String(d).trim()));
    });
    if (!device) {
      console.log('  SKIPPED the serial-port case: python3 (used to make a pseudo-terminal) is not installed');
      return;
    }
    const result = await provision(provisionArgs(rig, { port: device }));
    assert.is(result.code, 0, `provision over ${device} failed: ${result.error}\n${result.lines.join('\n')}`);
    assert.equal(registeredMeters(rig), ['meter-0001:active']);
  } finally {
    bridge.kill();
  }
});

test('error: port unreachable', async (ctx) => {
  const rig = await startRig(ctx);
  const port = rig.console.port;
  await rig.console.close();
  rig.console = { port, host: '127.0.0.1', close: async () => {} };
  const result = await provision(provisionArgs(rig));
  assert.is(result.code, 1);
  assert.match(result.error!, /cannot reach the meter console at tcp:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  const serial = await provision(provisionArgs(rig, { port: path.join(rig.dir, 'ttyUSB9') }));
  assert.is(serial.code, 1);
  assert.match(serial.error!, /cannot open the serial port .*ttyUSB9/);
  assert.equal(registeredMeters(rig), []);
  assert.equal(brokerUsers(rig), []);
});

test('error: wrong operator passphrase, before anything is touched', async (ctx) => {
  const rig = await startRig(ctx);
  const wrong = path.join(rig.dir, 'wrong-passphrase');
  fs.writeFileSync(wrong, 'not the passphrase\n');
  const result = await provision(provisionArgs(rig, { 'passphrase-file': wrong }));
  assert.is(result.code, 1);
  assert.match(result.error!, /wrong passphrase/);
  assert.equal(registeredMeters(rig), []);
  assert.equal(brokerUsers(rig), []);
  assert.is(meterConfigText(rig), undefined);
  if (firmwareHasEntryPoints(rig))
    assert.not.ok(JSON.parse(rig.board.evaluate('vgInfo()').value as string).se.configLocked, 'the SE was not touched');
});

test('error: firmware without the provisioning entry points', async (ctx) => {
  const rig = await startRig(ctx);
  rig.board.storage.write('.bootcde', 'print("old firmware");');
  rig.board.powerCut();
  rig.board.powerOn();
  const result = await provision(provisionArgs(rig));
  assert.is(result.code, 1);
  assert.is(result.error, 'firmware too old: flash it first (veilgrid flash)');
  assert.equal(registeredMeters(rig), []);
});

test('error: meter provisioned under another id', async (ctx) => {
  const rig = await startRig(ctx);
  if (!firmwareHasEntryPoints(rig)) return;
  assert.is((await provision(provisionArgs(rig))).code, 0);
  const configText = meterConfigText(rig);
  const result = await provision(provisionArgs(rig, { 'meter-id': 'meter-0002' }));
  assert.is(result.code, 1);
  // Its console is locked with meter-0001's password, which the tool never sends for another id.
  assert.match(
    result.error!,
    /console is locked and no console password is stored for meter "meter-0002".*another meter, give its --meter-id/,
  );
  assert.equal(registeredMeters(rig), ['meter-0001:active']);
  assert.equal(brokerUsers(rig), ['dso', 'meter-0001']);
  assert.is(meterConfigText(rig), configText);
});

test('error: secure element locked with a foreign configuration', async (ctx) => {
  const foreign = Eeprom.factory();
  foreign.config[CFG.LOCK_CONFIG] = 0x00; // locked as it left some other factory line
  const rig = await startRig(ctx, foreign);
  if (!firmwareHasEntryPoints(rig)) return;
  const result = await provision(provisionArgs(rig));
  assert.is(result.code, 1);
  assert.match(result.error!, /locked with a foreign configuration/);
  assert.equal(registeredMeters(rig), []);
  assert.equal(brokerUsers(rig), []);
  assert.is(meterConfigText(rig), undefined);
});

test('error: DSO registry unreachable: the broker files are put back and the meter is not reconfigured', async (ctx) => {
  const rig = await startRig(ctx);
  if (!firmwareHasEntryPoints(rig)) return;
  const result = await provision(provisionArgs(rig, { 'dso-db': path.join(rig.dir, 'no-such-dir', 'dso.db') }));
  assert.is(result.code, 1);
  assert.match(result.error!, /DSO registry .* is unreachable/);
  assert.ok(
    result.lines.some((l) => l.includes('undoing')),
    result.lines.join('\n'),
  );
  assert.is(meterConfigText(rig), undefined, 'vg.config is gone again');
  assert.equal(brokerUsers(rig), [], 'no broker user was left behind');
  assert.is(JSON.parse(rig.board.evaluate('vgInfo()').value as string).meterId, null);
});

test.run();
