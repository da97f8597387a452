// The meter's whole reporting path on every board backend (boards/harness): the vm emulator and the real
// Espruino interpreter (espruino-linux, real time). Each meter runs the built bundle, is provisioned
// through its console by the field technician's code (provisionMeter: SE configured and locked, keys made
// inside the chip, certificate, broker password, configuration), counts S0 pulses, and its readings —
// signed in the SE and sealed to the DSO — reach a broker and verify at the DSO, across a forced key
// rotation (vgRotateKeys), a broker restart (the outbox holds what could not be sent) and a power cut at a
// random instant; its console is locked from every boot on (a console without the password is refused) and
// provisioning it again unlocks it with the stored password. And `veilgrid flash` through the real
// espruino CLI on the board's console port, to a meter whose console is locked: refused without its
// console password, done with it (--meter-id, --operator-dir); the board holds the bundle, reboots into it,
// reports its build, and boots it again after a power cut. Where the interpreter is absent, its part says
// so and is skipped.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BACKENDS,
  createRig,
  unavailable,
  type Backend,
  type MeterBoard,
  type Rig,
} from '../../boards/harness/meter-board.ts';
import { startGrid } from '../../host-tools/grid/grid.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import { constant } from '../../boards/emulator/load-profile.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { flash } from '../../host-tools/flash/flash-command.ts';
import { ConsolePasswords } from '../../host-tools/provision/console-passwords.ts';
import { MeterConsoleError } from '../../boards/console/meter-console.ts';
import { CONFIG_FILE } from '../../firmware/src/protocol/meter-config.ts';

/** Interval length and clock speed per backend: the real interpreter runs in real time. */
const TIMING: Record<Backend, { interval: number; speed: number }> = {
  vm: { interval: 60, speed: 60 },
  'espruino-linux': { interval: 10, speed: 1 },
};

/** Waits (on the boards' clock) until check() holds; a bound against hangs, not a timing assertion. */
async function until(rig: Rig, check: () => boolean, what: () => string, intervals = 12): Promise<void> {
  const deadline = rig.clock.now() + intervals * TIMING[rig.backend].interval;
  while (!check()) {
    if (rig.clock.now() > deadline) assert.unreachable(`timed out waiting: ${what()}`);
    await rig.wait(TIMING[rig.backend].interval / 20);
  }
}

for (const backend of BACKENDS) {
  const test = suite(`hil on ${backend}`);
  const missing = unavailable(backend);
  if (missing) {
    test(`${backend}: skipped (${missing})`, () => {
      console.log(`    SKIPPED the ${backend} backend: ${missing}`);
    });
    test.run();
    continue;
  }

  test(`${backend}: provisioned through its console, signed and sealed readings verify at the DSO across a key rotation, a broker restart and a power cut`, async () => {
    const { interval, speed } = TIMING[backend];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `veilgrid-hil-${backend}-`));
    const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(dir, 'esp32-meter.js') });
    const grid = await startGrid({
      dir,
      backend,
      speed,
      startEpochSeconds: Math.ceil(Date.now() / 1000 / interval) * interval + 1,
    });
    const { rig } = grid;
    let source: S0PulseSource | undefined;
    let board: MeterBoard | undefined;
    let output = '';
    try {
      board = await grid.addBoard('meter-0001');
      board.onOutput((text) => (output += text));
      board.writeFile('.bootcde', fs.readFileSync(outFile, 'latin1'));
      await board.powerOn();
      await grid.provision(board, 'meter-0001', { intervalSeconds: interval });
      source = new S0PulseSource({
        board,
        pin: rig.definition.pins.s0Import,
        impulsesPerKWh: 1000,
        profile: constant(7200),
      }); // 2 pulses/s
      source.start();

      const readings = () => grid.readings();
      const status = () =>
        `readings ${JSON.stringify(readings())}, rejections ${grid.rejections().join('; ')}; the meter printed ${output.slice(-1500)}`;
      await until(rig, () => readings().n >= 2, status);
      assert.ok(readings().wh > 0, `the readings carry the S0 pulses: ${status()}`);

      // A forced rotation: the following readings are signed by the new key, and verify.
      const rotated = await board.evaluate('JSON.parse(vgRotateKeys())', 60_000);
      assert.ok('value' in rotated && (rotated.value as { rotation: number }).rotation >= 2, JSON.stringify(rotated));
      const afterRotation = readings().n;
      await until(rig, () => readings().n >= afterRotation + 2, status);
      assert.ok(grid.dso.registry.keyCertificates('meter-0001').length >= 2, 'the new key certificate reached the DSO');

      // The broker goes away for two intervals: readings wait in the outbox, then all arrive.
      await grid.stopBroker();
      const lastBefore = readings().last;
      await rig.wait(2 * interval);
      await grid.startBroker();
      await until(rig, () => readings().last >= lastBefore + 3, status);

      // Power cut at a random instant inside an interval; the meter boots and reports on.
      await rig.wait(Math.random() * interval);
      await board.powerCut();
      await rig.wait(interval / 4);
      const lastAtCut = readings().last;
      await board.powerOn();
      // The boot locked the console: a console without the password gets nothing.
      const bare = await board.meterConsole();
      bare.setConsolePassword(undefined);
      const refused = await bare.evaluate('require("Storage").read("vg.config")').catch((err) => err);
      await bare.close();
      assert.instance(refused, MeterConsoleError);
      assert.is((refused as MeterConsoleError).locked, 'no-password', String(refused));
      await until(rig, () => readings().last >= lastAtCut + 2, status);
      // Provisioning the locked meter again: it unlocks with the stored password and changes nothing.
      await grid.provision(board, 'meter-0001', { intervalSeconds: interval });

      const { n, last } = readings();
      assert.is(n, last, `every sequence number 1..${last} arrived once: ${status()}`);
      assert.equal(grid.rejections(), [], 'the DSO refused nothing');
      assert.is(grid.dso.collector.stats.rejected, 0);
      console.log(
        `    ${backend}: ${n} readings verified, ${grid.dso.registry.keyCertificates('meter-0001').length} reading keys, ${board.seCommands} SE commands`,
      );
    } finally {
      source?.stop();
      await grid.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${backend}: veilgrid flash uploads the bundle with the espruino CLI, the board runs it and boots it again after a power cut`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `veilgrid-hil-flash-${backend}-`));
    const rig = await createRig(backend, { dir, speed: 1 });
    try {
      const built = await buildFirmware({ board: 'esp32-meter', outFile: path.join(dir, 'esp32-meter.js') });
      const board = await rig.addBoard('flash-meter');
      let output = '';
      board.onOutput((text) => (output += text));
      // A provisioned meter: its firmware locks the console at boot with the password its operator keeps.
      const operatorDir = path.join(dir, 'operator');
      const password = 'Flash-Test_012345678';
      new ConsolePasswords(operatorDir).set('flash-meter', password);
      // (an older build on it: another build id, so only the upload can make it report the new one)
      board.writeFile(
        '.bootcde',
        fs.readFileSync(built.outFile, 'latin1').split(built.buildId).join('0123456789abcdef'),
      );
      board.writeFile(CONFIG_FILE, JSON.stringify({ consolePassword: password }));
      await board.powerOn();
      const port = `tcp://127.0.0.1:${board.consolePort}`;
      let printed = '';
      const locked = await flash(
        { ports: [port], firmware: built.outFile },
        { write: (text) => void (printed += text) },
      );
      assert.is(locked.exitCode, 1, printed);
      assert.is(locked.results[0].failure, 'locked', printed);
      assert.match(locked.results[0].message ?? '', /--meter-id/);
      printed = '';
      const outcome = await flash(
        { ports: [port], firmware: built.outFile, operatorDir, meterIds: ['flash-meter'] },
        { write: (text) => void (printed += text) },
      );
      assert.is(outcome.exitCode, 0, printed);
      assert.is(outcome.results[0].running?.build, built.buildId, printed);
      await board.powerCut();
      assert.is(
        board.readFile('.bootcde'),
        fs.readFileSync(built.outFile, 'latin1'),
        'Storage .bootcde holds the bundle',
      );
      const boots = () => output.split(`(build ${built.buildId})`).length - 1;
      const before = boots();
      await board.powerOn();
      await until(
        rig,
        () => boots() > before,
        () => `the bundle to boot again; the board printed ${output.slice(-800)}`,
      );
    } finally {
      await rig.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test.run();
}
