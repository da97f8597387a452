// A meter's whole life as its users see it, over the emulated console and the real tools: a blank
// board is flashed (`veilgrid flash`, the espruino CLI), provisioned (`veilgrid provision` over TCP),
// connects to a broker that enforces the provisioned credentials, and the DSO service (`veilgrid dso
// serve`) verifies and stores its sealed, signed readings, counting them on /metrics. The DSO service
// is then stopped while the meter goes on metering and started again: its persistent session gets it
// the readings it missed, so none is lost. Finally the meter is revoked and its next reading refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { startConsole } from '../../boards/emulator/console.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import { constant } from '../../boards/emulator/load-profile.ts';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { createDsoKey } from '../../host-tools/dso/dso-key.ts';
import { startDsoService, type DsoService } from '../../host-tools/dso/dso-service.ts';
import { flash } from '../../host-tools/flash/flash-command.ts';
import { initOperator } from '../../host-tools/operator/operator-key.ts';
import { command as provisionCommand } from '../../host-tools/provision/provision-command.ts';

const METER = 'meter-0777';
const INTERVAL = 60;
const PASSPHRASE = 'lifecycle passphrase';

/** Polls until check() holds (real time), or fails with what describe() says. */
async function until(check: () => boolean, what: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One sample of a Prometheus text body, e.g. metric(body, 'x_total') or metric(body, 'x_total{reason="revoked"}'). */
function metric(body: string, name: string): number {
  const line = body.split('\n').find((l) => l.startsWith(name + ' '));
  if (!line) assert.unreachable(`no ${name} in /metrics:\n${body}`);
  return Number(line!.slice(name.length + 1));
}

test('flash -> provision -> readings verified by the DSO service; a DSO restart loses none; revocation refuses', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-lifecycle-'));
  const definition = loadBoardDefinition('esp32-meter');
  const clock = new SimClock({ speed: 1, startEpochSeconds: 1_790_000_000 });
  const board = new Board({ definition, clock, name: METER, flashPath: path.join(dir, 'meter.flash') });
  const output: string[] = [];
  board.onOutput((text) => output.push(text));
  board.powerOn();
  const repl = await startConsole(board, { port: 0 });
  const port = `tcp://127.0.0.1:${repl.port}`;
  const brokerDir = path.join(dir, 'broker');
  const credentials = new BrokerCredentials(brokerDir);
  const broker = await startEmbeddedBroker({ auth: credentials });
  const source = new S0PulseSource({
    board,
    pin: definition.pins.s0Import,
    impulsesPerKWh: 1000,
    profile: constant(3600),
  });
  let dso: DsoService | undefined;
  const log: string[] = [];
  const startDso = () =>
    startDsoService({
      keyFile: path.join(dir, 'dso-key.json'),
      registryDb: path.join(dir, 'dso.db'),
      readingsDb: path.join(dir, 'readings.db'),
      brokerUrl: broker.url,
      brokerPassword: credentials.dsoPassword(),
      http: { port: 0 },
      log: (line) => log.push(line),
    });
  try {
    // 1. Flash the blank board with the real espruino CLI.
    const firmware = await buildFirmware({ board: 'esp32-meter', outFile: path.join(dir, 'esp32-meter.js') });
    let flashOutput = '';
    const flashed = await flash(
      { ports: [port], firmware: firmware.outFile },
      { write: (t) => void (flashOutput += t) },
    );
    assert.is(flashed.exitCode, 0, flashOutput);
    assert.is(flashed.results[0].running?.build, firmware.buildId);

    // 2. The operator's key and the DSO's key, then provisioning through the console.
    const operatorDir = path.join(dir, 'operator');
    await initOperator({ dir: operatorDir, passphrase: PASSPHRASE, operatorId: 'op-lifecycle' });
    const passphraseFile = path.join(dir, 'passphrase');
    fs.writeFileSync(passphraseFile, PASSPHRASE + '\n', { mode: 0o600 });
    createDsoKey(path.join(dir, 'dso-key.json'));
    const provisionLines: string[] = [];
    const { log: consoleLog } = console;
    console.log = (...args: unknown[]) => void provisionLines.push(args.join(' '));
    let code: number;
    try {
      code = await provisionCommand.run([
        '--port',
        port,
        '--meter-id',
        METER,
        '--feeder',
        'feeder-7',
        '--operator-dir',
        operatorDir,
        '--passphrase-file',
        passphraseFile,
        '--dso-db',
        path.join(dir, 'dso.db'),
        '--broker-dir',
        brokerDir,
        '--broker',
        `127.0.0.1:${broker.port}`,
        '--dso-key',
        path.join(dir, 'dso-key.json'),
        '--interval-seconds',
        String(INTERVAL),
      ]);
    } finally {
      console.log = consoleLog;
    }
    assert.is(code, 0, provisionLines.join('\n'));

    // 3. The DSO service verifies what the meter sends; time runs fast from here on.
    dso = await startDso();
    source.start();
    clock.setSpeed(60);
    await until(
      () => dso!.collector.stats.received >= 2,
      () => `2 readings stored; DSO log ${log.join('\n')}; meter printed ${output.join('').slice(-800)}`,
    );
    let body = await (await fetch(`${dso.http.url}/metrics`)).text();
    assert.ok(metric(body, 'veilgrid_dso_readings_verified_total') >= 2, body);
    assert.is(
      metric(body, 'veilgrid_dso_key_certificates_accepted_total'),
      1,
      'the first reading key was certified before use',
    );
    assert.is(metric(body, 'veilgrid_dso_broker_connected'), 1);
    assert.is(metric(body, 'veilgrid_dso_meters{status="active"}'), 1);
    assert.is((await fetch(`${dso.http.url}/healthz`)).status, 200);

    // 4. The DSO service stops for two intervals; the broker keeps the readings for its session.
    await dso.close();
    dso = undefined;
    await new Promise((resolve) => clock.setTimeout(() => resolve(undefined), 2.5 * INTERVAL * 1000));
    dso = await startDso();
    const firstInterval = () =>
      dso!.store.db.prepare('SELECT MIN(interval_index) AS i FROM readings').get() as { i: number };
    const stored = () =>
      dso!.store.db.prepare('SELECT COUNT(*) AS n, MAX(interval_index) AS last FROM readings').get() as {
        n: number;
        last: number;
      };
    await until(
      () => stored().n >= 5,
      () => `5 readings after the DSO restart, have ${JSON.stringify(stored())}`,
    );
    assert.is(
      stored().n,
      stored().last - firstInterval().i + 1,
      'one reading for every interval, none missing across the restart',
    );
    const gaps = dso.store.gaps();
    assert.is(
      gaps.reduce((n, g) => n + g.missingCount, 0),
      0,
      `no sequence numbers lost: ${JSON.stringify(gaps)}`,
    );
    const energy = dso.store.db
      .prepare('SELECT SUM(import_wh) AS wh, MAX(import_total_wh) AS total FROM readings')
      .get() as { wh: number; total: number };
    assert.is(energy.wh, energy.total, 'the intervals add up to the register');
    assert.ok(
      energy.total > 0 && energy.total <= source.energyWh + 1,
      `reported ${energy.total} Wh, the source emitted ${source.energyWh.toFixed(1)} Wh`,
    );

    // 5. Revoked at the DSO: the next reading is refused and counted with its reason.
    console.log = (...args: unknown[]) => void provisionLines.push(args.join(' '));
    try {
      code = await provisionCommand.run([
        '--revoke',
        '--meter-id',
        METER,
        '--dso-db',
        path.join(dir, 'dso.db'),
        '--broker-dir',
        brokerDir,
      ]);
    } finally {
      console.log = consoleLog;
    }
    assert.is(code, 0, provisionLines.join('\n'));
    await until(
      () => dso!.collector.stats.rejected >= 1,
      () => `a rejection after revocation; DSO log ${log.join('\n')}`,
    );
    body = await (await fetch(`${dso.http.url}/metrics`)).text();
    assert.ok(metric(body, 'veilgrid_dso_readings_rejected_total{reason="revoked"}') >= 1, body);
    assert.ok(
      log.some((line) => JSON.parse(line).reason === 'revoked'),
      'the rejection is logged with its reason',
    );
  } finally {
    source.stop();
    await dso?.close();
    await repl.close();
    board.close();
    clock.close();
    await broker.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
