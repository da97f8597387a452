// 1,000 power cuts at random instants on an emulated meter running the real firmware bundle, provisioned
// as in the field (veilgrid provision through its console) and publishing to a broker and the DSO's
// collector, which verifies every reading. Cuts come three ways:
// - the board loses power at a random instant (between flash operations: JavaScript runs to completion);
// - the flash is armed to die after its n-th next programmed or erased byte, so the cut lands inside a
//   flash operation: the raw-flash rings' record writes and page erases (a cut erase leaves the page
//   partially erased, boards/emulator/flash.ts);
// - maintenance: at the console, vg.config is rewritten and Storage compacted (what provisioning and key
//   rotation on a full Storage would do), with the cut armed inside the compaction.
// After every power-on: the meter boots its firmware with its configuration (after a cut inside a forced
// compaction Espruino may wipe or damage Storage: then the firmware and configuration are flashed again, as
// a technician would, and the registers must still be there: they live outside Storage), the registers
// never go backwards, the energy lost stays within the documented bound (docs/energy-journal.md), and
// normal operation writes nothing to Storage (so it never compacts). At the end every sequence number has
// reached the collector, verified, none used twice.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import { constant } from '../../boards/emulator/load-profile.ts';
import { DSO_USERNAME } from '../../host-tools/broker/acl.ts';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { startCollector } from '../../host-tools/dso/collector.ts';
import { createDsoKey } from '../../host-tools/dso/dso-key.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { ReadingVerifier } from '../../host-tools/dso/verifier.ts';
import { initOperator, unlockOperatorKey } from '../../host-tools/operator/operator-key.ts';
import { inProcessConsole } from '../../boards/console/meter-console.ts';
import { provisionMeter } from '../../host-tools/provision/provision.ts';
import { CONFIG_FILE } from '../../firmware/src/protocol/meter-config.ts';
import { pulsesForWh } from '../../firmware/src/metering/registers.ts';
import { FLAG_PARTIAL, FLAG_POWER_LOSS } from '../../firmware/src/protocol/reading.ts';

const CUTS = 1000;
// Virtual seconds per real second. The emulator counts every S0 pulse at any speed (edges carry the
// instant they happened: docs/emulator.md). While the meter is not connected to the broker the clock runs
// at CONNECTING_SPEED: its MQTT client gives a CONNACK 10 virtual seconds, which at full speed is a few real
// milliseconds, too few on a loaded host (docs/emulator.md, the load limit).
const SPEED = 1000;
const CONNECTING_SPEED = 50;
const INTERVAL = 60;
const IPK = 1000; // 1 Wh per pulse: registers in Wh are pulse counts (the provisioning default)
const COMMIT_EVERY_WH = 10; // the configuration default
/** Pulses a cut may cost (docs/energy-journal.md): a whole commit step; +2 for the edge in flight at the cut and at power-on. */
const BOUND_PULSES = pulsesForWh(COMMIT_EVERY_WH, IPK) + 2;
/** One cycle in MAINTENANCE_EVERY rewrites vg.config and compacts Storage, with the cut inside the compaction. */
const MAINTENANCE_EVERY = 20;
const BOOT_LINE = /meter: (journal restored|first start|journal unreadable)[^(]*\(import (\d+) Wh, export (\d+) Wh/;

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

/** Waits (real time) until check() holds; a bound against hangs, not a timing assertion. */
async function until(check: () => boolean, what: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

test(`${CUTS} power cuts, compaction included: firmware and configuration boot, registers never go back, no reading lost`, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-power-cut-'));
  const definition = loadBoardDefinition('esp32-meter');
  const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(dir, 'esp32-meter.js') });
  const bundle = fs.readFileSync(outFile, 'latin1');
  const start = Math.ceil(1_790_000_000 / INTERVAL) * INTERVAL + 7;
  const clock = new SimClock({ speed: 1, startEpochSeconds: start });
  const board = new Board({ definition, clock, name: 'meter-cuts', flashPath: path.join(dir, 'meter.flash') });
  const credentials = new BrokerCredentials(path.join(dir, 'broker'));
  const dsoPassword = credentials.ensureDsoUser();
  const registry = new MeterRegistry(':memory:');
  const store = new ReadingStore(':memory:');
  const broker = await startEmbeddedBroker({ auth: credentials });
  const dsoKey = createDsoKey(path.join(dir, 'dso-key.json'));
  const verifier = new ReadingVerifier({ registry, dsoPrivateKey: dsoKey.privateKey!, log: () => {} });
  const collector = await startCollector({
    brokerUrl: broker.url,
    db: store,
    verifier,
    username: DSO_USERNAME,
    password: dsoPassword,
    log: () => {},
  });
  const imp = new S0PulseSource({ board, pin: definition.pins.s0Import, impulsesPerKWh: IPK, profile: constant(7200) }); // 2 pulses/s
  const exp = new S0PulseSource({ board, pin: definition.pins.s0Export, impulsesPerKWh: IPK, profile: constant(1800) });

  // Where each cut landed: the flash operation it stopped, by region (the raw partition lies below Storage).
  const storageOffset = definition.storage.addr - board.flashModule.baseAddress;
  let lastOp = 'between flash operations';
  let inCompaction = false;
  const flash = board.flash;
  const program = flash.program.bind(flash);
  const erasePage = flash.erasePage.bind(flash);
  const where = (offset: number, kind: string) =>
    inCompaction ? 'Storage compaction' : offset < storageOffset ? `ring ${kind}` : `Storage ${kind}`;
  /** The virtual instant the flash last lost power (when a cut stopped one of its operations). */
  let cutAt = 0;
  const noting = (op: () => void) => {
    try {
      op();
    } catch (e) {
      if (!flash.hasPower) cutAt = clock.now();
      throw e;
    }
  };
  flash.program = (offset, bytes) => {
    lastOp = where(offset, 'write');
    noting(() => program(offset, bytes));
  };
  flash.erasePage = (offset) => {
    lastOp = where(offset, 'erase');
    noting(() => erasePage(offset));
  };
  const landed = new Map<string, number>();
  const count = (what: string) => landed.set(what, (landed.get(what) ?? 0) + 1);
  const storageHash = () =>
    createHash('sha256').update(flash.read(storageOffset, definition.storage.bytes)).digest('hex');

  // Delivered pulses, counted from the meter's restore line on (it starts its counters in that step).
  let delivered = { importWh: 0, exportWh: 0 };
  const stopEdges = board.pins.onEdge((edge) => {
    if (edge.level !== 0) return;
    if (edge.pin === definition.pins.s0Import) delivered.importWh++;
    if (edge.pin === definition.pins.s0Export) delivered.exportWh++;
  });
  let output = '';
  let running = false;
  board.onOutput((text) => {
    output += text;
    if (BOOT_LINE.test(text)) delivered = { importWh: 0, exportWh: 0 };
    if (running && /mqtt: connected/.test(text)) clock.setSpeed(SPEED);
    if (running && /mqtt: disconnected/.test(text)) clock.setSpeed(CONNECTING_SPEED);
  });
  const random = prng(20261206);
  const wait = (seconds: number) => new Promise<void>((resolve) => clock.setTimeoutAt(resolve, clock.now() + seconds));
  /** Runs fn inside a clock timer at the given virtual time (where now() is exact). */
  const at = <T>(t: number, fn: () => T) => new Promise<T>((resolve) => clock.setTimeoutAt(() => resolve(fn()), t));

  const failures: string[] = [];
  const cutIntervals: number[] = [];
  const bootIntervals: number[] = [];
  let previous = { importWh: 0, exportWh: 0 };
  let maxLost = 0;
  let storageLost = 0;
  let storageWiped = 0;
  let compactionUnits = 400_000;
  let compactions = 0;

  /** Powers on; if a cut inside a compaction cost the firmware or its configuration, flashes them again. */
  const powerOnAndCheck = async (cycle: number, afterCompactionCut: boolean) => {
    for (let attempt = 0; ; attempt++) {
      output = '';
      clock.setSpeed(CONNECTING_SPEED);
      const bootInterval = await at(clock.now() + 0.001, () => {
        board.powerOn();
        return Math.floor(clock.now() / INTERVAL);
      });
      let line: RegExpMatchArray | null = null;
      for (let i = 0; i < 100 && !(line = output.match(BOOT_LINE)); i++) await wait(0.05);
      if (line) {
        bootIntervals.push(bootInterval);
        const restored = { importWh: Number(line[2]), exportWh: Number(line[3]) };
        if (line[1] !== 'journal restored') failures.push(`cycle ${cycle}: journal did not restore (${line[0]})`);
        if (restored.importWh < previous.importWh || restored.exportWh < previous.exportWh) {
          failures.push(
            `cycle ${cycle}: registers went back from ${JSON.stringify(previous)} to ${JSON.stringify(restored)}`,
          );
        }
        return restored;
      }
      if (!afterCompactionCut || attempt > 0)
        throw new Error(
          `cycle ${cycle}: the meter did not boot its firmware with its configuration; console:\n${output}`,
        );
      // Espruino wiped or damaged Storage: erase it and flash the firmware and configuration again, as a
      // technician would (damaged file headers can survive a rewrite of the same name).
      board.powerCut();
      const firmwareLost = board.storage.read('.bootcde') !== bundle;
      const configLost = board.storage.read(CONFIG_FILE) !== config;
      if (!firmwareLost && !configLost)
        throw new Error(
          `cycle ${cycle}: firmware and configuration intact, yet the meter did not boot; console:\n${output}`,
        );
      storageLost++;
      if (/Storage is corrupt/.test(output)) storageWiped++;
      board.storage.eraseAll();
      board.storage.write('.bootcde', bundle);
      board.storage.write(CONFIG_FILE, config);
    }
  };

  let config = '';
  try {
    // Trash at the start of Storage, so that the first compaction moves the firmware too.
    board.storage.write('filler', 'x'.repeat(40_000));
    board.storage.write('.bootcde', bundle);
    board.storage.erase('filler');
    board.powerOn();
    const operatorDir = path.join(dir, 'operator');
    await initOperator({ dir: operatorDir, passphrase: 'power cut passphrase' });
    await provisionMeter(
      {
        meterId: 'meter-cuts',
        feeder: 'feeder-1',
        operatorDir,
        operatorKey: await unlockOperatorKey(operatorDir, 'power cut passphrase'),
        dsoDb: registry,
        brokerDir: credentials.dir,
        broker: { host: '127.0.0.1', port: broker.port },
        dsoPublicKey: dsoKey.publicKey,
        intervalSeconds: INTERVAL,
      },
      inProcessConsole(board),
    );
    config = board.storage.read(CONFIG_FILE)!;
    await until(
      () => BOOT_LINE.test(output),
      () => `the meter to start after provisioning: ${output.slice(-400)}`,
    );
    running = true;
    clock.setSpeed(SPEED);
    imp.start();
    exp.start();
    bootIntervals.push(Math.floor(clock.now() / INTERVAL));
    // The first reading makes the first reading key (its record goes to raw flash too). From then on
    // Storage stays as the last maintenance left it.
    await until(
      () => (store.db.prepare('SELECT COUNT(*) AS n FROM readings').get() as { n: number }).n >= 1,
      () =>
        `the first reading at the collector; the meter printed ${output
          .split('\n')
          .filter((l) => /mqtt|veilgrid|wifi/.test(l))
          .slice(0, 15)
          .join('\n')}`,
    );
    let storageRef = storageHash();

    for (let cycle = 1; cycle <= CUTS; cycle++) {
      const maintenance = cycle % MAINTENANCE_EVERY === 0;
      const onSeconds = 1 + random() * 14;
      lastOp = 'between flash operations';
      let cutTime: number;
      if (maintenance) {
        await wait(onSeconds);
        // As provisioning or a key rotation on a full Storage would: a file rewritten, then compaction.
        board.evaluate(
          `require("Storage").write(${JSON.stringify(CONFIG_FILE)}, require("Storage").read(${JSON.stringify(CONFIG_FILE)}) + " ")`,
        );
        config = board.storage.read(CONFIG_FILE)!;
        const before = flash.bytesWritten;
        flash.cutPowerAfterBytes(1 + Math.floor(random() * compactionUnits * 1.1));
        inCompaction = true;
        const result = board.evaluate('require("Storage").compact()');
        inCompaction = false;
        compactions++;
        if (board.running) {
          compactionUnits = flash.bytesWritten - before;
          flash.restorePower(); // disarms the cut
          cutTime = await at(clock.now() + random() * 3, () => {
            board.powerCut();
            return clock.now();
          });
          lastOp = 'between flash operations';
        } else {
          assert.match(String(result.error), /power/, 'the compaction was cut');
          cutTime = cutAt;
        }
      } else if (random() < 0.5) {
        // Armed: the n-th next flash byte is the last; often past a page, so erases get cut too.
        await wait(onSeconds);
        flash.cutPowerAfterBytes(1 + Math.floor(random() < 0.85 ? random() * 400 : random() * 5000));
        while (board.running) await wait(0.05);
        cutTime = cutAt;
      } else {
        cutTime = await at(clock.now() + onSeconds, () => {
          board.powerCut();
          return clock.now();
        });
        lastOp = 'between flash operations';
      }
      count(lastOp);
      cutIntervals.push(Math.floor(cutTime / INTERVAL));
      const counted = {
        importWh: previous.importWh + delivered.importWh,
        exportWh: previous.exportWh + delivered.exportWh,
      };
      if (!maintenance && storageHash() !== storageRef)
        failures.push(
          `cycle ${cycle}: normal operation wrote to Storage (cut ${lastOp}); files ${JSON.stringify(board.storage.list())}`,
        );
      // Off for a moment, or (one time in twenty) for one or two whole intervals.
      await wait(random() < 0.05 ? INTERVAL + random() * INTERVAL : 0.2 + random() * 5);
      const restored = await powerOnAndCheck(cycle, maintenance && lastOp === 'Storage compaction');
      if (maintenance) storageRef = storageHash();
      for (const k of ['importWh', 'exportWh'] as const) {
        const lost = counted[k] - restored[k];
        maxLost = Math.max(maxLost, lost);
        if (lost > BOUND_PULSES || lost < -2)
          failures.push(
            `cycle ${cycle}: ${k} lost ${lost} Wh (bound ${BOUND_PULSES}); counted ${counted[k]}, restored ${restored[k]}`,
          );
      }
      previous = restored;
      if (failures.length > 20) break;
    }
    // Let the last boot's interval close and every waiting reading reach the collector.
    const last = () =>
      store.db.prepare('SELECT COUNT(*) AS n, MIN(seq) AS first, MAX(seq) AS last FROM readings').get() as {
        n: number;
        first: number;
        last: number;
      };
    const missing = () => {
      const seqs = new Set((store.db.prepare('SELECT seq FROM readings').all() as { seq: number }[]).map((r) => r.seq));
      const gaps: number[] = [];
      for (let q = 1; q <= last().last; q++) if (!seqs.has(q)) gaps.push(q);
      return gaps;
    };
    const nextSeq = () => Number((output.match(/next reading seq (\d+)/) ?? ['', '0'])[1]);
    const bootSeq = nextSeq();
    await wait(2 * INTERVAL);
    imp.stop();
    exp.stop();
    await until(
      () => last().last >= bootSeq && last().n === last().last,
      () =>
        `every reading up to seq ${bootSeq} at the collector; have ${JSON.stringify(last())}, missing ${missing().slice(0, 20).join(' ')}, ` +
        `collector ${JSON.stringify(collector.stats)}; ${failures.slice(0, 5).join('; ')}`,
    );

    assert.equal(failures, [], failures.slice(0, 10).join('\n'));
    const { n, first, last: lastSeq } = last();
    assert.is(first, 1);
    assert.is(n, lastSeq, `seq 1..${lastSeq} all verified, none missing`);
    assert.is(collector.stats.rejected, 0, 'no reading refused by the DSO');
    assert.is(collector.stats.conflicts, 0, 'no sequence number used for two different readings');
    const flagsOf = new Map(
      (
        store.db.prepare('SELECT interval_index AS i, flags AS f FROM readings').all() as { i: number; f: number }[]
      ).map((r) => [r.i, r.f]),
    );
    const unflagged = cutIntervals.filter((k) => flagsOf.has(k) && !(flagsOf.get(k)! & FLAG_POWER_LOSS));
    assert.equal(unflagged, [], 'readings of intervals with a power cut lack FLAG_POWER_LOSS');
    const notPartial = bootIntervals.filter((k) => flagsOf.has(k) && !(flagsOf.get(k)! & FLAG_PARTIAL));
    assert.equal(notPartial, [], 'readings of intervals with a power-on lack FLAG_PARTIAL');
    assert.ok(
      (landed.get('ring write') ?? 0) >= 100 &&
        (landed.get('ring erase') ?? 0) >= 10 &&
        (landed.get('Storage compaction') ?? 0) >= 20,
      `cuts landed: ${JSON.stringify([...landed])}`,
    );
    assert.is(landed.get('Storage write') ?? 0, 0, 'no cut found the firmware writing Storage');
    console.log(
      `  ${CUTS} cuts: ${[...landed].map(([k, v]) => `${v} ${k}`).join(', ')}; ${compactions} forced compactions, ` +
        `${storageLost} of them cost the firmware or its config (${storageWiped} by erasing all Storage at power-on; both flashed again, registers kept); ` +
        `${lastSeq} readings verified; ` +
        `most energy lost in one cut: ${maxLost} Wh (bound ${BOUND_PULSES})`,
    );
  } finally {
    imp.stop();
    exp.stop();
    stopEdges();
    await collector.close();
    board.close();
    clock.close();
    await broker.close();
    store.close();
    registry.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
