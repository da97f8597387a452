// Signed, sealed readings from the real firmware bundle on emulated meters, over a real broker, to the
// DSO: each meter's ATECC608 is provisioned through its console (vgProvisionSE), registered under a
// device certificate, and for three simulated days every reading is opened and verified by the DSO's
// ReadingVerifier, across daily key rotations and a forced one (vgRotateKeys) -- including the readings
// at each key's edge, signed by the previous key during the overlap.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { consoleJson, startSigningDso } from '../support/signing-dso.ts';

const METERS = 2;
const INTERVAL = 21_600; // 6 h: four readings a simulated day
const ROTATION = 86_400; // one key a day
const DAYS = 3;
const SPEED = 8000;

/** Polls (real time) until cond holds; a bound against hangs, not a timing assertion. */
async function until(cond: () => boolean, what: string, tries = 3000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gave up waiting for ${what}`);
}

test(`readings signed in the SE and sealed to the DSO verify over ${DAYS} simulated days of key rotations`, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-signed-'));
  const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(work, 'esp32-meter.js') });
  const bundle = fs.readFileSync(outFile, 'latin1');
  const definition = loadBoardDefinition('esp32-meter');
  const start = Math.ceil(1_790_000_000 / INTERVAL) * INTERVAL + 60;
  const clock = new SimClock({ speed: SPEED, startEpochSeconds: start });
  const dso = await startSigningDso(work);
  const { store, registry, rejections, collector } = dso;
  const boards: Board[] = [];
  const outputs: string[] = [];
  try {
    for (let i = 0; i < METERS; i++) {
      const meterId = `signed-${i + 1}`;
      const board = new Board({ definition, clock, name: meterId, flashPath: path.join(work, `${meterId}.flash`) });
      boards.push(board);
      outputs.push('');
      board.onOutput((t) => (outputs[i] += t));
      board.storage.write('.bootcde', bundle);
      board.powerOn();

      const before = consoleJson(board, 'vgInfo()');
      assert.is(before.meterId, null);
      assert.equal([before.se.configLocked, before.se.dataLocked, before.se.ours], [false, false, false]);
      const provisioned = consoleJson(board, 'vgProvisionSE()');
      assert.is(provisioned.error, undefined, provisioned.error);
      assert.equal(consoleJson(board, 'vgProvisionSE()'), provisioned, 'provisioning again returns the same keys');
      const after = consoleJson(board, 'vgInfo()');
      assert.equal(after.se, { serial: provisioned.serial, configLocked: true, dataLocked: true, ours: true });
      assert.ok(consoleJson(board, 'vgRotateKeys()').error, 'no rotation before the meter runs signed');

      dso.provision(board, definition, meterId, { intervalSeconds: INTERVAL, rotationSeconds: ROTATION });
      assert.is(consoleJson(board, 'vgInfo()').meterId, meterId);
    }
    // Each meter seeded its Math.random from its secure element at boot (reconnect jitter): on Espruino
    // the generator starts from the same constants on every board.
    const draws = boards.map((b) => b.evaluate('Math.random()').value);
    assert.is.not(draws[0], draws[1], 'two meters draw different reconnect jitter');

    const firstInterval = Math.floor(start / INTERVAL);
    const intervals = (DAYS * 86_400) / INTERVAL;
    const lastInterval = firstInterval + intervals - 1;
    const inWindow = () => store.countInIntervals(firstInterval, lastInterval);
    // Half-way, a forced rotation on the first meter: the reading of the interval it happens in is
    // signed by the new key, any reading still open before it by the previous one.
    await until(() => clock.now() >= start + 1.5 * 86_400, 'a day and a half of simulated time');
    const forced = consoleJson(boards[0], 'vgRotateKeys()');
    assert.ok(forced.rotation >= 2, JSON.stringify(forced));
    await until(
      () => inWindow() >= METERS * intervals,
      `${METERS * intervals} verified readings (have ${inWindow()}); rejections: ${rejections.join('\n')}`,
    );

    assert.equal(rejections, [], 'no reading or key certificate was refused');
    assert.is(collector.stats.rejected, 0);
    assert.ok((collector.stats.verified ?? 0) >= METERS * intervals);
    for (let i = 0; i < METERS; i++) {
      const keys = registry.keyCertificates(`signed-${i + 1}`);
      // A first key, then one per simulated day (lazy: the reading past a key's validTo makes the next).
      assert.ok(keys.length >= DAYS + (i === 0 ? 1 : 0), `meter ${i + 1}: ${keys.length} key certificates`);
      assert.equal(
        keys.map((k) => k.rotation),
        keys.map((_, n) => n + 1),
        'rotation numbers 1, 2, 3 ... from the SE counter',
      );
      assert.ok(!/not sent|cannot/.test(outputs[i]), outputs[i]);
    }
    assert.is(
      collector.stats.keyCertificates,
      registry.keyCertificates('signed-1').length + registry.keyCertificates('signed-2').length,
    );
  } finally {
    for (const board of boards) board.close();
    clock.close();
    await dso.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test.run();
