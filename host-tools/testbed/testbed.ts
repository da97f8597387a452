// The testbed: a grid (host-tools/grid/grid.ts: broker, the DSO service as `veilgrid dso serve` runs it,
// the market on an in-process EVM with the bridge, meters on the chosen backend) with N meters running the
// built firmware bundle, for K intervals of simulated time. Returns what the DSO received and, with the
// market, what the meters traded.
//
// Every meter is provisioned as in the field, by the field technician's own code (provisionMeter() over
// the board's console): its firmware configures and locks its ATECC608 and makes the identity and mix
// keys inside it, the grid's operator key issues its device certificate, the DSO registry takes it, the
// broker folder records its login (made by its secure element per connection) and ACL, and vg.config
// gets the broker, the DSO's public key and a console password. The broker enforces the same rules as a
// deployed one, and the DSO service stores only what its verifier accepts.
//
// The work folder ends up as a DSO's would be: operator/, broker/ (meter logins, password and ACL files),
// dso-key.json, registry.db and readings.db, beside the meters' flash images.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildFirmware } from '../build/build-firmware.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import type { Backend, MeterBoard } from '../../boards/harness/meter-board.ts';
import { startGrid, type Grid } from '../grid/grid.ts';
import { householdImport, pvExport } from '../../boards/emulator/load-profile.ts';
import { createBrokerObserver, type BrokerTrace } from '../observer/broker-observer.ts';
import { linkOffers, linkRate } from '../observer/offer-linker.ts';
import { chainOffersOfRun } from './chain-offers.ts';
import { roundStartMs, SLOTS_PER_ROUND, slotMs } from '../../firmware/src/protocol/mix-schedule.ts';
import {
  directOffersSent,
  emptyMixCounts,
  hopLatencyMs,
  mixLineCounter,
  mixRoundOf,
  mixSummary,
  type MixLogCounts,
  type MixSummary,
} from './mix-summary.ts';

export interface TestbedOptions {
  /** What runs each meter's firmware: the vm emulator (default) or the real interpreter (real time, speed 1). */
  board?: Backend;
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
  /** The DSO's log lines (JSON: collector events, each rejected reading with its reason); default: none. */
  dsoLog?: (line: string) => void;
  /** The meters trade on a market (default true): asset issuance by the DSO, offers through the bridge, clearing. */
  market?: boolean;
  /** The bridge's log lines (JSON); default: none. */
  bridgeLog?: (line: string) => void;
  /** With the market: the meters send their offers through the mixnet (default true); false: straight to the bridge. */
  mix?: boolean;
  /** Seeds the broker observer's tie-breaks (default 1). */
  seed?: number;
  /** Each meter's console output is appended to <consoleLogDir>/<meter id>.log (made if missing); default: none. */
  consoleLogDir?: string;
  /**
   * With the mixnet: this many meters lose power in the middle of a round's first slot, one per interval from
   * the window's second on, while they hold other meters' packets as relays, and get it back as the round
   * ends. What they held is lost, and its senders must send it again (default 0).
   */
  relayOutages?: number;
}

export interface TestbedProgress {
  phase: 'provisioning' | 'metering';
  /** Meters provisioned so far, of `meters`. */
  provisioned: number;
  meters: number;
  interval: number;
  intervals: number;
  readingsReceived: number;
  readingsExpected: number;
}

export interface TestbedSummary {
  board: Backend;
  broker: 'aedes' | 'mosquitto';
  meters: number;
  intervals: number;
  intervalSeconds: number;
  readings: {
    expected: number;
    received: number;
    duplicates: number;
    missing: number;
    verified: number;
    rejected: number;
  };
  /** rotations: reading keys the DSO registered (each meter's first key counts: one SE counter step each). */
  keys: { rotations: number };
  energy: { importWh: number; exportWh: number };
  /** What the S0 sources emitted from power-on to the window's end, for comparison with what was received. */
  emitted: { importWh: number; exportWh: number };
  gaps: { lostSequenceNumbers: number; flaggedReadings: number };
  simulatedSeconds: number;
  wallSeconds: number;
  /**
   * Simulated seconds per real second while the meters metered: the requested speed, or less when the
   * host could not keep up (the clock counts only time the host spent waiting: docs/emulator.md).
   */
  achievedSpeed: number;
  /** With the market: the offers that reached the bridge (sent), on chain, and refused by bridge or chain. */
  offers?: { sent: number; onChain: number; rejected: number };
  /** With the market: asset requests the DSO took (zero-amount ones included), issued, refused. */
  assets?: { requested: number; issued: number; refused: number };
  /**
   * With the market: intervals cleared with energy traded, Wh traded, and real ms from each gate closure to
   * the broker's acknowledgement of that interval's clearing result on the broadcast topic.
   */
  clearing?: { intervals: number; tradedWh: number; latencyMs: { p50: number; p99: number } };
  /** The meters that lost power mid-round (TestbedOptions.relayOutages), and the interval it was in. */
  relayOutages?: Array<{ meterId: string; interval: number }>;
  /**
   * With the market: the mixnet's packets (from the meters' consoles), offers delivered to the bridge and lost,
   * and how often a passive observer at the broker named an offer's sender (host-tools/observer/), next to
   * chance; observerLinkRate is null with mosquitto (the observer hooks the in-process broker).
   */
  mix?: MixSummary & { seCommandsPerMeterInterval: number };
}

export const TESTBED_DEFAULTS = {
  meters: 10,
  intervals: 10,
  intervalSeconds: 60,
  speed: 12,
  impulsesPerKWh: 1000,
  rotationSeconds: 300,
};

const BOARD_ID = 'esp32-meter';

export async function runTestbed(options: TestbedOptions): Promise<TestbedSummary> {
  const started = Date.now();
  const workDir = options.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-testbed-'));
  fs.mkdirSync(workDir, { recursive: true });
  clearPreviousRun(workDir);
  const backend = options.board ?? 'vm';
  if (backend === 'espruino-linux' && options.speed !== 1)
    throw new Error(`the espruino-linux board runs in real time: its speed is 1, not ${options.speed}`);
  const { outFile } = await buildFirmware({ board: BOARD_ID });
  const bundle = fs.readFileSync(outFile, 'latin1');

  // The virtual clock starts at 15:00 UTC tomorrow (16:00 in the profiles' Central European time), an
  // interval boundary plus a second: the same hour every run, one where PV roofs still have a surplus and
  // households already draw enough to buy (load-profile.ts), so there is something to trade even in short
  // intervals; and after the certificates the run makes now, which the DSO checks against its clock, the
  // boards' own.
  const DAY = 86_400;
  const tomorrow = (Math.floor(Date.now() / 1000 / DAY) + 1) * DAY + 15 * 3600;
  const startEpochSeconds = Math.ceil(tomorrow / options.intervalSeconds) * options.intervalSeconds + 1;

  // The grid: operator and DSO keys, broker folder, broker and the DSO service, as the operators' commands
  // leave them; meters on the chosen backend.
  const trading = options.market ?? true;
  const mix = options.mix ?? true;
  // The observer records what the broker sees, by the wall clock and the meters' (virtual) one.
  let simNowMs = () => Number.NaN;
  const observer = createBrokerObserver(() => simNowMs());
  const grid = await startGrid({
    dir: workDir,
    broker: options.broker,
    backend,
    speed: options.speed,
    startEpochSeconds,
    log: options.dsoLog,
    market: trading ? { intervalSeconds: options.intervalSeconds, log: options.bridgeLog } : undefined,
    mix,
    onBroker: (aedes) => observer.attach(aedes),
  });
  const { rig, dso } = grid;
  const { clock, definition } = rig;
  simNowMs = () => clock.now() * 1000;
  const mixCounts = emptyMixCounts();
  const startSeconds = clock.now();
  const sources: S0PulseSource[] = [];
  const boards: MeterBoard[] = [];
  // Real interpreters are provisioned one at a time, as on a bench, and installed (powered) together
  // afterwards: each one running takes a core (docs/hil.md), which would slow the next one's provisioning.
  const onTheBench = backend === 'espruino-linux';
  try {
    for (let i = 0; i < options.meters; i++) {
      const meterId = `meter-${String(i + 1).padStart(4, '0')}`;
      const board = await grid.addBoard(meterId);
      boards.push(board);
      board.onOutput(mixLineCounter(mixCounts));
      if (options.consoleLogDir) board.onOutput(consoleAppender(options.consoleLogDir, meterId));
      board.writeFile('.bootcde', bundle);
      await board.powerOn();
      await grid.provision(board, meterId, {
        feeder: 'testbed-feeder',
        intervalSeconds: options.intervalSeconds,
        rotationSeconds: options.rotationSeconds,
        impulsesPerKWh: options.impulsesPerKWh,
      });
      if (onTheBench) await board.powerCut();
      options.onProgress?.({
        phase: 'provisioning',
        provisioned: i + 1,
        meters: options.meters,
        interval: 0,
        intervals: options.intervals,
        readingsReceived: 0,
        readingsExpected: options.meters * options.intervals,
      });
      sources.push(
        new S0PulseSource({
          board,
          pin: definition.pins.s0Import,
          impulsesPerKWh: options.impulsesPerKWh,
          profile: householdImport({ seed: i + 1 }),
        }),
      );
      // Every third household has PV on its roof.
      if (i % 3 === 0) {
        sources.push(
          new S0PulseSource({
            board,
            pin: definition.pins.s0Export,
            impulsesPerKWh: options.impulsesPerKWh,
            profile: pvExport({ seed: i + 1 }),
          }),
        );
      }
    }
    if (onTheBench) {
      // Installed boards still connect to the broker (seconds each for a real interpreter and its secure
      // element's login): the window starts once every meter is on the grid, as a field test's would, so
      // a slow start is not counted as a missing reading.
      const connected = new Set<MeterBoard>();
      for (const board of boards) {
        let seen = '';
        board.onOutput((text) => {
          seen = (seen + text).slice(-200);
          if (seen.includes('mqtt: connected')) connected.add(board);
        });
        await board.powerOn();
      }
      const online = Date.now();
      while (connected.size < boards.length && Date.now() - online < 120_000)
        await new Promise((r) => setTimeout(r, 200));
    }
    await grid.reloadBroker();
    // The window: K intervals from the one in progress as the S0 sources start. Provisioning took
    // simulated time too, so each meter's first (partial) interval ends in it or before it.
    const firstInterval = Math.floor(clock.now() / options.intervalSeconds);
    const lastInterval = firstInterval + options.intervals - 1;
    const endSeconds = (lastInterval + 1) * options.intervalSeconds;
    for (const source of sources) source.start();
    const outages = scheduleRelayOutages(grid.market && mix ? (options.relayOutages ?? 0) : 0, boards, clock, {
      intervalSeconds: options.intervalSeconds,
      firstInterval,
      lastInterval,
    });
    const metering = { simulated: clock.now(), wallMs: Date.now() };
    const seCommandsBefore = boards.reduce((n, b) => n + b.seCommands, 0);
    // What the sources emitted up to the window's end, to compare with what the meters reported.
    const emitted = { importWh: 0, exportWh: 0 };
    // Real time at each gate closure the meters trade for in the window (d's gate closes as d starts).
    const gateClosedAtMs = new Map<number, number>();
    for (let d = firstInterval + 1; d <= lastInterval + 1; d++)
      clock.setTimeoutAt(() => gateClosedAtMs.set(d, Date.now()), d * options.intervalSeconds);
    clock.setTimeoutAt(() => {
      for (const source of sources) {
        if (source.pin === definition.pins.s0Import) emitted.importWh += source.energyWh;
        else emitted.exportWh += source.energyWh;
      }
    }, endSeconds);

    const expected = options.meters * options.intervals;
    const store = dso.store;
    const collector = dso.collector;
    const inWindow = () => store.countInIntervals(firstInterval, lastInterval);
    // Run until every reading of the window arrived, or two intervals past the window's end.
    const deadline = endSeconds + 2 * options.intervalSeconds;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const interval = Math.min(
          options.intervals,
          Math.max(0, Math.floor(clock.now() / options.intervalSeconds) - firstInterval),
        );
        const received = inWindow();
        options.onProgress?.({
          phase: 'metering',
          provisioned: options.meters,
          meters: options.meters,
          interval,
          intervals: options.intervals,
          readingsReceived: received,
          readingsExpected: expected,
        });
        if (received >= expected || clock.now() >= deadline) resolve();
        else setTimeout(tick, 200);
      };
      tick();
    });
    for (const source of sources) source.stop();
    if (grid.market) {
      // The last gate closed as the window ended: give its clearing the time it takes (two intervals at most).
      const market = grid.market;
      const published = () =>
        market.bridgeLog.some(
          (line) =>
            /"event":"clearing_published"/.test(line) &&
            (JSON.parse(line) as { interval: number }).interval >= lastInterval + 1,
        );
      await market.bridge
        .waitFor(() => published(), Math.ceil((2 * options.intervalSeconds * 1000) / options.speed) + 5000)
        .catch(() => undefined);
    }

    if (outages.failures.length > 0) throw outages.failures[0];
    const seCommands = boards.reduce((n, b) => n + b.seCommands, 0) - seCommandsBefore;
    const window = store.summaryInIntervals(firstInterval, lastInterval);
    const gaps = store.gaps();
    const trading: Pick<TestbedSummary, 'offers' | 'assets' | 'clearing'> = grid.market
      ? tradingSummary(grid, gateClosedAtMs)
      : {};
    return {
      board: backend,
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
      gaps: {
        lostSequenceNumbers: gaps.reduce((n, g) => n + g.missingCount, 0),
        flaggedReadings: gaps.reduce((n, g) => n + g.flaggedIntervals.length, 0),
      },
      simulatedSeconds: Math.round(clock.now() - startSeconds),
      wallSeconds: Math.round((Date.now() - started) / 100) / 10,
      achievedSpeed:
        Math.round(((clock.now() - metering.simulated) / Math.max(0.001, (Date.now() - metering.wallMs) / 1000)) * 10) /
        10,
      ...trading,
      ...(outages.cut.length > 0 ? { relayOutages: outages.cut } : {}),
      ...(trading.offers
        ? {
            mix: {
              ...(await mixReport(grid, observer.trace, mixCounts, {
                enabled: mix,
                meters: options.meters,
                intervalSeconds: options.intervalSeconds,
                delivered: trading.offers.sent,
                seed: options.seed ?? 1,
                observed: (options.broker ?? 'aedes') === 'aedes',
              })),
              seCommandsPerMeterInterval: Math.round((seCommands / (options.meters * options.intervals)) * 10) / 10,
            },
          }
        : {}),
    };
  } finally {
    observer.detach();
    for (const source of sources) source.stop();
    await grid.close();
    if (!options.workDir) fs.rmSync(workDir, { recursive: true, force: true });
  }
}

/**
 * Power cuts in the middle of mix rounds (TestbedOptions.relayOutages): the k-th in the window's interval
 * firstInterval + 1 + k, whose round 0 carries the offers for the next interval (the market's genesis is 0 in
 * the grid), three quarters into slot 0 (the senders have published, the relays hold what came), power back as
 * the round ends.
 */
function scheduleRelayOutages(
  count: number,
  boards: MeterBoard[],
  clock: { setTimeoutAt(run: () => void, seconds: number): unknown },
  window: { intervalSeconds: number; firstInterval: number; lastInterval: number },
): { cut: Array<{ meterId: string; interval: number }>; failures: Error[] } {
  const marketClock = { genesisTime: 0, intervalSeconds: window.intervalSeconds };
  const slotSeconds = slotMs(marketClock) / 1000;
  const cut: Array<{ meterId: string; interval: number }> = [];
  const failures: Error[] = [];
  for (let k = 0; k < count && window.firstInterval + 1 + k <= window.lastInterval; k++) {
    const interval = window.firstInterval + 2 + k;
    const roundStart = roundStartMs(marketClock, interval, 0) / 1000;
    const board = boards[(2 * k + 1) % boards.length];
    const failed = (err: unknown) => failures.push(err as Error);
    clock.setTimeoutAt(() => void board.powerCut().catch(failed), roundStart + 0.75 * slotSeconds);
    clock.setTimeoutAt(() => void board.powerOn().catch(failed), roundStart + SLOTS_PER_ROUND * slotSeconds);
    cut.push({ meterId: board.name, interval });
  }
  return { cut, failures };
}

/** What the meters traded: from the bridge's counts and log, and the DSO's asset records. */
function tradingSummary(
  grid: Grid,
  gateClosedAtMs: Map<number, number>,
): Pick<TestbedSummary, 'offers' | 'assets' | 'clearing'> {
  const market = grid.market!;
  const stats = market.bridge.stats;
  const dropped = Object.entries(stats.dropped)
    .filter(([reason]) => reason !== 'duplicate')
    .reduce((n, [, count]) => n + count, 0);
  const rejectedOnChain = Object.values(stats.rejectedOnChain).reduce((n, count) => n + count, 0);
  const events = market.bridgeLog.map(
    (line) => JSON.parse(line) as { event: string; time: string; interval?: number; volumeWh?: string },
  );
  const volumes = new Map<number, number>();
  for (const e of events)
    if (e.event === 'interval_settled' && e.interval !== undefined) volumes.set(e.interval, Number(e.volumeWh));
  const latencies: number[] = [];
  let intervals = 0;
  let tradedWh = 0;
  for (const e of events) {
    if (e.event !== 'clearing_published' || e.interval === undefined) continue;
    const gate = gateClosedAtMs.get(e.interval);
    if (gate === undefined) continue;
    latencies.push(Date.parse(e.time) - gate);
    const volume = volumes.get(e.interval) ?? 0;
    if (volume > 0) intervals++;
    tradedWh += volume;
  }
  const assets = grid.dso.assets!;
  const requests = assets.requestsOfMeter.bind(assets);
  const records = grid.dso.registry.meters().flatMap((meter) => requests(meter.meterId));
  const refusals = assets.refusals().length;
  return {
    offers: { sent: stats.queued + dropped, onChain: stats.accepted, rejected: rejectedOnChain + dropped },
    assets: {
      requested: records.length + refusals,
      issued: records.filter((r) => r.status === 'issued').length,
      refused: refusals + records.filter((r) => r.status === 'expired').length,
    },
    clearing: { intervals, tradedWh, latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) } },
  };
}

/**
 * The mixnet's figures: the meters' console counts, and the broker observer's attempt at naming the sender of
 * every offer on chain (judged against the DSO's record of whose trading key signed it).
 */
async function mixReport(
  grid: Grid,
  trace: BrokerTrace,
  counts: MixLogCounts,
  run: {
    enabled: boolean;
    meters: number;
    intervalSeconds: number;
    delivered: number;
    seed: number;
    /** The observer hooks the in-process broker (aedes) only. */
    observed: boolean;
  },
): Promise<MixSummary> {
  const market = grid.market!;
  // The grid's market starts at genesis 0 (grid.ts startChain): interval d is the meters' interval d.
  const clock = { genesisTime: 0, intervalSeconds: run.intervalSeconds };
  let rate: number | null = null;
  if (run.observed) {
    const chain = await chainOffersOfRun({
      market: market.client,
      bridge: market.bridge,
      bridgeLog: market.bridgeLog,
      registry: grid.dso.registry,
      assets: grid.dso.assets!,
    });
    // The bridge orders a transaction's offers at random but for each key's own (bridge/batch-order.ts), not by arrival.
    const links = linkOffers(trace, chain.offers, {
      seed: run.seed,
      roundOf: mixRoundOf(clock),
      orderedBatches: false,
    });
    rate = linkRate(links, chain.senders);
  }
  return mixSummary({
    enabled: run.enabled,
    meters: run.meters,
    counts,
    delivered: run.delivered,
    offersSent: run.enabled ? counts.offers : directOffersSent(trace, clock),
    observerLinkRate: rate,
    hopLatencyMs: hopLatencyMs(trace, clock),
    exit: { ...market.bridge.stats.mix },
  });
}

/** The q-quantile of values by the nearest-rank method (0 for none). */
function percentile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Appends a meter's console output to DIR/<meter id>.log, as an operator's serial logger would. */
function consoleAppender(dir: string, meterId: string): (text: string) => void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${meterId}.log`);
  return (text) => fs.appendFileSync(file, text);
}

/** Every run starts a fresh grid: what an earlier run left in the work folder goes (nothing else in it). */
function clearPreviousRun(workDir: string): void {
  const ours =
    /^(operator|broker|dso-key\.json|registry\.db.*|readings\.db.*|assets\.db.*|bridge\.db.*|meter-\d{4,}(\.flash.*)?|mosquitto-\d+\.conf)$/;
  for (const name of fs.readdirSync(workDir)) {
    if (ours.test(name)) fs.rmSync(path.join(workDir, name), { recursive: true, force: true });
  }
}
