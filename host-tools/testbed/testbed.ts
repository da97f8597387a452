// The testbed: an embedded broker, the DSO's reading collector and N emulated meters running the
// built firmware bundle, for K intervals of simulated time. Returns what the collector received.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedBroker } from '../broker/embedded-broker.ts';
import { startCollector } from '../dso/collector.ts';
import { ReadingStore } from '../dso/reading-store.ts';
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
  meters: number;
  intervals: number;
  intervalSeconds: number;
  readings: { expected: number; received: number; duplicates: number; missing: number; rejected: number };
  energy: { importWh: number; exportWh: number };
  /** What the S0 sources emitted from power-on to the window's end, for comparison with what was received. */
  emitted: { importWh: number; exportWh: number };
  gaps: { lostSequenceNumbers: number; flaggedReadings: number };
  simulatedSeconds: number;
  wallSeconds: number;
}

export const TESTBED_DEFAULTS = { meters: 10, intervals: 10, intervalSeconds: 60, speed: 12, impulsesPerKWh: 1000 };

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

  const broker = await startEmbeddedBroker();
  const store = new ReadingStore(path.join(workDir, 'readings.db'));
  const collector = await startCollector({ brokerUrl: broker.url, db: store, log: () => {} });
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
      board.storage.write(CONFIG_FILE, JSON.stringify(meterConfig(meterId, broker.port, options, definition.pins)));
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
      meters: options.meters,
      intervals: options.intervals,
      intervalSeconds: options.intervalSeconds,
      readings: {
        expected,
        received: window.readings,
        duplicates: collector.stats.duplicates,
        missing: Math.max(0, expected - window.readings),
        rejected: collector.stats.rejected,
      },
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
    await broker.close();
    store.close();
    if (!options.workDir) fs.rmSync(workDir, { recursive: true, force: true });
  }
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
