// The testbed: an embedded broker, the DSO's reading collector and N emulated meters running the
// built firmware bundle, for K intervals of simulated time. Returns what the collector received.
//
// Every meter is provisioned as in the field before it meters: its firmware configures and locks its
// ATECC608 and makes the identity and mix keys inside it (vgProvisionSE() at its console), a testbed
// operator key issues its device certificate, the DSO registry takes it, and vg.config gets the DSO's
// public key. Readings then arrive sealed and signed, and the collector stores only what the DSO's
// ReadingVerifier accepts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedBroker } from '../broker/embedded-broker.ts';
import { startMosquitto } from '../broker/mosquitto.ts';
import { p256 } from '@noble/curves/nist.js';
import { startCollector } from '../dso/collector.ts';
import { ReadingStore } from '../dso/reading-store.ts';
import { MeterRegistry } from '../dso/registry.ts';
import { ReadingVerifier } from '../dso/verifier.ts';
import { nodeSha256 } from '../crypto/node-primitives.ts';
import { issueDeviceCertificate, type OperatorKey } from '../operator/operator-key.ts';
import { encodeOperatorCertificate, kidOf, signedCertificate } from '../../firmware/src/keys/certificate.ts';
import { buildFirmware } from '../build/build-firmware.ts';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import { householdImport, pvExport } from '../../boards/emulator/load-profile.ts';
import { CONFIG_FILE, type MeterConfig } from '../../firmware/src/config/config.ts';

export interface TestbedOptions {
  meters: number;
  intervals: number;
  intervalSeconds: number;
  /** Virtual seconds per real second. */
  speed: number;
  impulsesPerKWh: number;
  /** Reading-key rotation period in simulated seconds (default: the firmware's, a day). */
  rotationSeconds?: number;
  /** aedes in this process (default), or a mosquitto child process. */
  broker?: 'aedes' | 'mosquitto';
  /** Working folder for flash images and the readings database; a temporary one when absent. */
  workDir?: string;
  onProgress?: (progress: TestbedProgress) => void;
}

export interface TestbedProgress {
  interval: number;
  intervals: number;
  readingsReceived: number;
  readingsExpected: number;
}

export interface TestbedSummary {
  broker: 'aedes' | 'mosquitto';
  meters: number;
  intervals: number;
  intervalSeconds: number;
  readings: { expected: number; received: number; duplicates: number; missing: number; verified: number; rejected: number };
  /** rotations: reading keys the DSO registered (each meter's first key counts: one SE counter step each). */
  keys: { rotations: number };
  energy: { importWh: number; exportWh: number };
  /** What the S0 sources emitted from power-on to the window's end, for comparison with what was received. */
  emitted: { importWh: number; exportWh: number };
  gaps: { lostSequenceNumbers: number; flaggedReadings: number };
  simulatedSeconds: number;
  wallSeconds: number;
}

export const TESTBED_DEFAULTS = { meters: 10, intervals: 10, intervalSeconds: 60, speed: 12, impulsesPerKWh: 1000, rotationSeconds: 300 };

const BOARD_ID = 'esp32-meter';

export async function runTestbed(options: TestbedOptions): Promise<TestbedSummary> {
  const started = Date.now();
  const workDir = options.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-testbed-'));
  fs.mkdirSync(workDir, { recursive: true });
  const definition = loadBoardDefinition(BOARD_ID);
  const { outFile } = await buildFirmware({ board: BOARD_ID });
  const bundle = fs.readFileSync(outFile, 'latin1');

  // Start just after an interval boundary so the first (partial) interval is short.
  const startEpochSeconds = Math.ceil(1_790_000_000 / options.intervalSeconds) * options.intervalSeconds + 1;
  const firstInterval = Math.floor(startEpochSeconds / options.intervalSeconds);
  const lastInterval = firstInterval + options.intervals - 1;
  const endSeconds = (lastInterval + 1) * options.intervalSeconds;

  const broker = options.broker === 'mosquitto' ? await startMosquitto({ dir: workDir }) : await startEmbeddedBroker();
  const store = new ReadingStore(path.join(workDir, 'readings.db'));
  const dso = p256.keygen();
  const operator = testbedOperator();
  const registry = new MeterRegistry(path.join(workDir, 'registry.db'));
  registry.trustOperator(operator.certificate);
  const verifier = new ReadingVerifier({ registry, dsoPrivateKey: dso.secretKey, log: () => {} });
  const collector = await startCollector({ brokerUrl: broker.url, db: store, verifier, log: () => {} });
  const clock = new SimClock({ speed: options.speed, startEpochSeconds });
  const boards: Board[] = [];
  const sources: S0PulseSource[] = [];
  try {
    for (let i = 0; i < options.meters; i++) {
      const meterId = `meter-${String(i + 1).padStart(4, '0')}`;
      const board = new Board({ definition, clock, name: meterId, flashPath: path.join(workDir, `${meterId}.flash`) });
      boards.push(board);
      board.storage.eraseAll();
      board.storage.write('.bootcde', bundle);
      provisionMeter(board, meterId, operator.key, registry);
      const config = meterConfig(meterId, broker.port, options, definition.pins);
      config.dsoPublicKey = Buffer.from(p256.getPublicKey(dso.secretKey, false)).toString('hex');
      if (options.rotationSeconds !== undefined) config.keys = { rotationSeconds: options.rotationSeconds };
      board.storage.write(CONFIG_FILE, JSON.stringify(config));
      board.powerCut(); // it booted unconfigured for provisioning; the next power-on runs the meter
      const importSource = new S0PulseSource({ board, pin: definition.pins.s0Import, impulsesPerKWh: options.impulsesPerKWh, profile: householdImport({ seed: i + 1 }) });
      sources.push(importSource);
      // Every third household has PV on its roof.
      if (i % 3 === 0) {
        sources.push(new S0PulseSource({ board, pin: definition.pins.s0Export, impulsesPerKWh: options.impulsesPerKWh, profile: pvExport({ seed: i + 1 }) }));
      }
      board.powerOn();
    }
    for (const source of sources) source.start();
    // What the sources emitted up to the window's end, to compare with what the meters reported.
    const emitted = { importWh: 0, exportWh: 0 };
    clock.setTimeoutAt(() => {
      for (const source of sources) {
        if (source.pin === definition.pins.s0Import) emitted.importWh += source.energyWh;
        else emitted.exportWh += source.energyWh;
      }
    }, endSeconds);

    const expected = options.meters * options.intervals;
    const inWindow = () => store.countInIntervals(firstInterval, lastInterval);
    // Run until every reading of the window arrived, or two intervals past the window's end.
    const deadline = endSeconds + 2 * options.intervalSeconds;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const interval = Math.min(options.intervals, Math.max(0, Math.floor(clock.now() / options.intervalSeconds) - firstInterval));
        const received = inWindow();
        options.onProgress?.({ interval, intervals: options.intervals, readingsReceived: received, readingsExpected: expected });
        if (received >= expected || clock.now() >= deadline) resolve();
        else setTimeout(tick, 200);
      };
      tick();
    });
    for (const source of sources) source.stop();

    const window = store.summaryInIntervals(firstInterval, lastInterval);
    const gaps = store.gaps();
    return {
      broker: options.broker ?? 'aedes',
      meters: options.meters,
      intervals: options.intervals,
      intervalSeconds: options.intervalSeconds,
      readings: {
        expected,
        received: window.readings,
        duplicates: collector.stats.duplicates,
        missing: Math.max(0, expected - window.readings),
        verified: collector.stats.verified ?? 0,
        rejected: collector.stats.rejected,
      },
      keys: { rotations: collector.stats.keyCertificates ?? 0 },
      energy: { importWh: window.importWh, exportWh: window.exportWh },
      emitted: { importWh: Math.round(emitted.importWh), exportWh: Math.round(emitted.exportWh) },
      gaps: { lostSequenceNumbers: gaps.reduce((n, g) => n + g.missingCount, 0), flaggedReadings: gaps.reduce((n, g) => n + g.flaggedIntervals.length, 0) },
      simulatedSeconds: Math.round(clock.now() - startEpochSeconds),
      wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    };
  } finally {
    for (const source of sources) source.stop();
    for (const board of boards) board.close();
    clock.close();
    await collector.close();
    if ('close' in broker) await broker.close();
    else await broker.stop();
    store.close();
    registry.close();
    if (!options.workDir) fs.rmSync(workDir, { recursive: true, force: true });
  }
}

/** A throwaway operator for this run: its key signs the meters' device certificates. */
function testbedOperator(): { key: OperatorKey; certificate: Uint8Array } {
  const secretKey = p256.utils.randomSecretKey();
  const publicKey = p256.getPublicKey(secretKey, false);
  const signDigest = (digest: Uint8Array) => p256.sign(digest, secretKey, { prehash: false, lowS: false });
  const notBefore = Math.floor(Date.now() / 1000) - 3600;
  const payload = encodeOperatorCertificate({ operatorId: 'testbed-operator', publicKey, notBefore, notAfter: notBefore + 30 * 86400 });
  const key: OperatorKey = { operatorId: 'testbed-operator', publicKey, kid: kidOf(nodeSha256, publicKey), signDigest };
  return { key, certificate: signedCertificate({ sha256: nodeSha256, sign: signDigest }, publicKey, payload) };
}

/**
 * Boots the board unconfigured, has its firmware provision its secure element (vgProvisionSE() at the
 * console), and registers it with the DSO under a device certificate for the keys it returned.
 */
function provisionMeter(board: Board, meterId: string, operator: OperatorKey, registry: MeterRegistry): void {
  board.powerOn();
  const answer = board.evaluate('vgProvisionSE()');
  const result = typeof answer.value === 'string' ? JSON.parse(answer.value) : { error: answer.error ?? `vgProvisionSE() returned ${String(answer.value)}` };
  if (result.error) throw new Error(`testbed: provisioning ${meterId}'s secure element failed: ${result.error}`);
  registry.registerMeter(issueDeviceCertificate(operator, {
    meterId,
    feeder: 'testbed-feeder',
    identityKey: new Uint8Array(Buffer.from(result.identityKey, 'hex')),
    mixKey: new Uint8Array(Buffer.from(result.mixKey, 'hex')),
    limits: { maxImportW: 17_250, maxExportW: 4_600 },
    issuedAt: Math.floor(Date.now() / 1000),
  }));
}

function meterConfig(meterId: string, brokerPort: number, options: TestbedOptions, pins: { s0Import: number; s0Export: number }): MeterConfig {
  return {
    meterId,
    broker: { host: '127.0.0.1', port: brokerPort },
    mqtt: { username: meterId, password: `${meterId}-testbed` },
    intervalSeconds: options.intervalSeconds,
    s0: { importPin: pins.s0Import, exportPin: pins.s0Export, impulsesPerKWh: options.impulsesPerKWh, debounceMs: 10 },
    journal: { commitEveryWh: 10 },
  };
}
