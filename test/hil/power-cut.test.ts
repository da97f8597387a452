// 200 power cuts at random instants on an emulated meter running the real firmware bundle: some cut
// by the board (power gone at a moment), some by the flash (the n-th next byte programmed is the
// last, so the cut lands inside a Storage write, mostly journal commits). After every power-on:
// the journal boots, the registers never go backwards, the energy lost stays within the documented
// bound (docs/energy-journal.md), and at the end every reading of an interval in which power was
// lost carries FLAG_POWER_LOSS. No broker: readings stay in the outbox in Storage, read at the end.
// The meter is provisioned first (vgProvisionSE at its console, and a DSO key in its config), so
// its readings are signed and sealed and the cuts also land in key records and sealed-reading notes;
// the test opens the envelopes with the DSO's private key.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import { constant } from '../../boards/emulator/load-profile.ts';
import { CONFIG_FILE, type MeterConfig } from '../../firmware/src/config/config.ts';
import { Outbox } from '../../firmware/src/mqtt/outbox.ts';
import { decodeReading, FLAG_PARTIAL, FLAG_POWER_LOSS, type Reading } from '../../firmware/src/readings/reading.ts';
import { readingTopic } from '../../firmware/src/readings/topics.ts';
import { pulsesForWh } from '../../firmware/src/metering/registers.ts';
import { p256 } from '@noble/curves/nist.js';
import { decodeSign1 } from '../../firmware/src/codec/cose.ts';
import { decodeEnvelope, openEnvelope } from '../../firmware/src/readings/sealed-reading.ts';
import { nodeCryptoPrimitives } from '../../host-tools/crypto/node-primitives.ts';

const CUTS = 200;
// Virtual seconds per real second. The emulator counts every S0 pulse at any speed (edges carry the
// instant they happened: docs/emulator.md); 400x keeps the run short.
const SPEED = 400;
const INTERVAL = 60;
const IPK = 1000; // 1 Wh per pulse: registers in Wh are pulse counts
const COMMIT_EVERY_WH = 10;
/** Pulses a cut may cost (docs/energy-journal.md): a whole commit step; +2 for the edge in flight at the cut and at power-on. */
const BOUND_PULSES = pulsesForWh(COMMIT_EVERY_WH, IPK) + 2;

/** Mulberry32: a small seeded PRNG, so every run cuts at the same instants. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test(`${CUTS} power cuts: the journal always boots, registers never go back, loss within the bound, gaps flagged`, async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-power-cut-'));
  const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(work, 'esp32-meter.js') });
  const bundle = fs.readFileSync(outFile, 'latin1');
  const definition = loadBoardDefinition('esp32-meter');
  const start = Math.ceil(1_790_000_000 / INTERVAL) * INTERVAL + 7;
  const clock = new SimClock({ speed: SPEED, startEpochSeconds: start });
  const board = new Board({ definition, clock, name: 'power-cut', flashPath: path.join(work, 'meter.flash') });
  const meterId = 'meter-cuts';
  const config: MeterConfig = {
    meterId,
    broker: { host: '127.0.0.1', port: 1 }, // nothing listens: readings stay in the outbox
    mqtt: { username: meterId, password: 'x' },
    intervalSeconds: INTERVAL,
    s0: { importPin: definition.pins.s0Import, exportPin: definition.pins.s0Export, impulsesPerKWh: IPK, debounceMs: 10 },
    journal: { commitEveryWh: COMMIT_EVERY_WH },
  };
  board.storage.write('.bootcde', bundle);
  board.powerOn();
  const provisioned = board.evaluate('vgProvisionSE()');
  assert.ok(typeof provisioned.value === 'string' && !JSON.parse(provisioned.value).error, JSON.stringify(provisioned));
  board.powerCut();
  const dso = p256.keygen();
  config.dsoPublicKey = Buffer.from(p256.getPublicKey(dso.secretKey, false)).toString('hex');
  board.storage.write(CONFIG_FILE, JSON.stringify(config));
  const imp = new S0PulseSource({ board, pin: definition.pins.s0Import, impulsesPerKWh: IPK, profile: constant(7200) }); // 2 pulses/s
  const exp = new S0PulseSource({ board, pin: definition.pins.s0Export, impulsesPerKWh: IPK, profile: constant(1800) });
  // Pulses delivered to the meter's inputs while it watched them: the falling edges its pin
  // interrupt reported. The meter prints its restored registers in the same step that starts its
  // pulse counters, so the count starts there; it stops by itself at the cut (a board without
  // power watches nothing), at the very instant, however late this test's own code runs.
  let delivered = { importWh: 0, exportWh: 0 };
  const stopEdges = board.pins.onEdge((edge) => {
    if (edge.level !== 0) return;
    if (edge.pin === definition.pins.s0Import) delivered.importWh++;
    if (edge.pin === definition.pins.s0Export) delivered.exportWh++;
  });
  let output = '';
  const stopListening = board.onOutput((text) => {
    output += text;
    if (/meter: (journal restored|first start|journal unreadable)/.test(text)) delivered = { importWh: 0, exportWh: 0 };
  });
  const random = prng(20260101);
  const wait = (seconds: number) => new Promise<void>((resolve) => clock.setTimeoutAt(resolve, clock.now() + seconds));
  /** Runs fn inside a clock timer at the given virtual time (where now() is exact). */
  const at = <T>(t: number, fn: () => T) => new Promise<T>((resolve) => clock.setTimeoutAt(() => resolve(fn()), t));

  const cutIntervals: number[] = [];
  const bootIntervals: number[] = [];
  let previous = { importWh: -1, exportWh: -1 };
  let flashCuts = 0;
  let maxLost = 0;
  const failures: string[] = [];

  /** Powers on, waits for the meter's restore line, checks it against what came before. */
  const powerOnAndCheck = async (cycle: number) => {
    output = '';
    const bootTime = await at(clock.now() + 0.001, () => {
      board.powerOn();
      return clock.now();
    });
    bootIntervals.push(Math.floor(bootTime / INTERVAL));
    let line: RegExpMatchArray | null = null;
    for (let i = 0; i < 200 && !(line = output.match(/meter: (journal restored|first start|journal unreadable)[^(]*\(import (\d+) Wh, export (\d+) Wh/)); i++) await wait(0.05);
    if (!line) throw new Error(`cycle ${cycle}: the meter did not report its registers after power-on; console:\n${output}`);
    const restored = { importWh: Number(line[2]), exportWh: Number(line[3]) };
    if (cycle > 0 && line[1] !== 'journal restored') failures.push(`cycle ${cycle}: journal did not restore (${line[0]})`);
    if (restored.importWh < previous.importWh || restored.exportWh < previous.exportWh) {
      failures.push(`cycle ${cycle}: registers went back from ${JSON.stringify(previous)} to ${JSON.stringify(restored)}`);
    }
    return restored;
  };

  try {
    board.powerOn();
    bootIntervals.push(Math.floor(clock.now() / INTERVAL));
    imp.start();
    exp.start();
    previous = { importWh: 0, exportWh: 0 };
    for (let cycle = 1; cycle <= CUTS; cycle++) {
      const onSeconds = 2 + random() * 38;
      let cutTime: number;
      if (cycle > 1 && random() < 0.4) {
        // Arm a cut inside the next Storage writes: the n-th next byte is the last to reach the flash.
        await wait(onSeconds);
        flashCuts++;
        board.flash.cutPowerAfterBytes(1 + Math.floor(random() * 60));
        let lastSeenOn = clock.now();
        while (board.running) {
          lastSeenOn = clock.now();
          await wait(0.05);
        }
        cutTime = lastSeenOn;
      } else {
        cutTime = await at(clock.now() + onSeconds, () => {
          board.powerCut();
          return clock.now();
        });
      }
      cutIntervals.push(Math.floor(cutTime / INTERVAL));
      const counted = {
        importWh: previous.importWh + delivered.importWh,
        exportWh: previous.exportWh + delivered.exportWh,
      };
      // Off for a moment, or (one time in eight) for one or two whole intervals.
      await wait(random() < 0.125 ? INTERVAL + random() * INTERVAL : 0.2 + random() * 8);
      const restored = await powerOnAndCheck(cycle);
      for (const k of ['importWh', 'exportWh'] as const) {
        const lost = counted[k] - restored[k];
        maxLost = Math.max(maxLost, lost);
        if (lost > BOUND_PULSES || lost < -2) failures.push(`cycle ${cycle}: ${k} lost ${lost} Wh (bound ${BOUND_PULSES}); counted ${counted[k]}, restored ${restored[k]}`);
      }
      previous = restored;
    }
    await wait(INTERVAL + 1); // let the last boot's interval close
    board.powerCut();
  } finally {
    imp.stop();
    exp.stop();
    stopListening();
    stopEdges();
    clock.close();
  }

  const readings: Reading[] = [];
  const outbox = new Outbox(board.storage);
  for (let e = outbox.first(); e; e = outbox.after(e.id)) {
    if (e.topic !== readingTopic(meterId)) continue;
    const shared = p256.getSharedSecret(dso.secretKey, decodeEnvelope(e.payload).ephemeralPublicKey, true).subarray(1);
    readings.push(decodeReading(decodeSign1(openEnvelope(nodeCryptoPrimitives, shared, e.payload)).payload));
  }
  board.close();
  fs.rmSync(work, { recursive: true, force: true });

  assert.equal(failures, [], failures.slice(0, 10).join('\n'));
  assert.ok(flashCuts >= 60, `only ${flashCuts} cuts inside Storage writes`);
  assert.ok(readings.length >= 100, `only ${readings.length} readings stored`);
  for (let i = 1; i < readings.length; i++) {
    const [a, b] = [readings[i - 1], readings[i]];
    assert.ok(b.seq > a.seq, `seq ${b.seq} after ${a.seq}: a sequence number was reused`);
    assert.ok(b.interval > a.interval, `interval ${b.interval} after ${a.interval}`);
    assert.ok(b.importTotalWh >= a.importTotalWh && b.exportTotalWh >= a.exportTotalWh, `registers went back between seq ${a.seq} and ${b.seq}`);
  }
  const byInterval = new Map(readings.map((r) => [r.interval, r]));
  const unflagged = cutIntervals.filter((k) => byInterval.has(k) && !(byInterval.get(k)!.flags & FLAG_POWER_LOSS));
  assert.equal(unflagged, [], 'readings of intervals with a power cut lack FLAG_POWER_LOSS');
  const notPartial = bootIntervals.filter((k) => byInterval.has(k) && !(byInterval.get(k)!.flags & FLAG_PARTIAL));
  assert.equal(notPartial, [], 'readings of intervals with a power-on lack FLAG_PARTIAL');
  console.log(`  ${CUTS} cuts (${flashCuts} inside Storage writes), ${readings.length} readings, most energy lost in one cut: ${maxLost} Wh (bound ${BOUND_PULSES})`);
});

test.run();
