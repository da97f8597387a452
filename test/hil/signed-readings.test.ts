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
import { p256 } from '@noble/curves/nist.js';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startCollector } from '../../host-tools/dso/collector.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { ReadingVerifier } from '../../host-tools/dso/verifier.ts';
import { issueDeviceCertificate } from '../../host-tools/operator/operator-key.ts';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { CONFIG_FILE, type MeterConfig } from '../../firmware/src/config/config.ts';
import { makeOperator } from '../unit/verifier-fixtures.ts';

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

function consoleJson(board: Board, expression: string): any {
  const answer = board.evaluate(expression);
  assert.is(typeof answer.value, 'string', `${expression} returns a JSON string (got ${JSON.stringify(answer)})`);
  return JSON.parse(answer.value as string);
}

test(`readings signed in the SE and sealed to the DSO verify over ${DAYS} simulated days of key rotations`, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-signed-'));
  const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(work, 'esp32-meter.js') });
  const bundle = fs.readFileSync(outFile, 'latin1');
  const definition = loadBoardDefinition('esp32-meter');
  const start = Math.ceil(1_790_000_000 / INTERVAL) * INTERVAL + 60;
  const clock = new SimClock({ speed: SPEED, startEpochSeconds: start });
  const broker = await startEmbeddedBroker();
  const store = new ReadingStore(path.join(work, 'readings.db'));
  const registry = new MeterRegistry(':memory:');
  const operator = makeOperator();
  registry.trustOperator(operator.certificate);
  const dso = p256.keygen();
  const rejections: string[] = [];
  const verifier = new ReadingVerifier({ registry, dsoPrivateKey: dso.secretKey, log: (line) => rejections.push(line) });
  const collector = await startCollector({ brokerUrl: broker.url, db: store, verifier, log: () => {} });
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

      registry.registerMeter(issueDeviceCertificate(operator.key, {
        meterId, feeder: 'feeder-1',
        identityKey: new Uint8Array(Buffer.from(provisioned.identityKey, 'hex')),
        mixKey: new Uint8Array(Buffer.from(provisioned.mixKey, 'hex')),
        limits: { maxImportW: 11_000, maxExportW: 7_000 },
        issuedAt: Math.floor(Date.now() / 1000),
      }));
      const config: MeterConfig = {
        meterId,
        broker: { host: '127.0.0.1', port: broker.port },
        mqtt: { username: meterId, password: 'x' },
        intervalSeconds: INTERVAL,
        s0: { importPin: definition.pins.s0Import, exportPin: definition.pins.s0Export, impulsesPerKWh: 1000, debounceMs: 10 },
        journal: { commitEveryWh: 10 },
        dsoPublicKey: Buffer.from(p256.getPublicKey(dso.secretKey, false)).toString('hex'),
        keys: { rotationSeconds: ROTATION },
      };
      board.storage.write(CONFIG_FILE, JSON.stringify(config));
      board.powerCut();
      board.powerOn();
      assert.is(consoleJson(board, 'vgInfo()').meterId, meterId);
    }

    const firstInterval = Math.floor(start / INTERVAL);
    const intervals = (DAYS * 86_400) / INTERVAL;
    const lastInterval = firstInterval + intervals - 1;
    const inWindow = () => store.countInIntervals(firstInterval, lastInterval);
    // Half-way, a forced rotation on the first meter: the reading of the interval it happens in is
    // signed by the new key, any reading still open before it by the previous one.
    await until(() => clock.now() >= start + 1.5 * 86_400, 'a day and a half of simulated time');
    const forced = consoleJson(boards[0], 'vgRotateKeys()');
    assert.ok(forced.rotation >= 2, JSON.stringify(forced));
    await until(() => inWindow() >= METERS * intervals, `${METERS * intervals} verified readings (have ${inWindow()}); rejections: ${rejections.join('\n')}`);

    assert.equal(rejections, [], 'no reading or key certificate was refused');
    assert.is(collector.stats.rejected, 0);
    assert.ok((collector.stats.verified ?? 0) >= METERS * intervals);
    for (let i = 0; i < METERS; i++) {
      const keys = registry.keyCertificates(`signed-${i + 1}`);
      // A first key, then one per simulated day (lazy: the reading past a key's validTo makes the next).
      assert.ok(keys.length >= DAYS + (i === 0 ? 1 : 0), `meter ${i + 1}: ${keys.length} key certificates`);
      assert.equal(keys.map((k) => k.rotation), keys.map((_, n) => n + 1), 'rotation numbers 1, 2, 3 ... from the SE counter');
      assert.ok(!/not sent|cannot/.test(outputs[i]), outputs[i]);
    }
    assert.is(collector.stats.keyCertificates, registry.keyCertificates('signed-1').length + registry.keyCertificates('signed-2').length);
  } finally {
    for (const board of boards) board.close();
    clock.close();
    await collector.close();
    await broker.close();
    store.close();
    registry.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test.run();
