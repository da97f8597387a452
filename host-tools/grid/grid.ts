// One microgrid on this machine, on 127.0.0.1: the operator key (`veilgrid operator init`), the DSO key
// (`veilgrid dso key-init`), the broker folder, a broker (aedes in this process, or a mosquitto process
// with its meter-login service), the DSO service exactly as `veilgrid dso serve` runs it, and meters on a
// chosen board backend, each provisioned as `veilgrid provision` does it. With a market: an EVM in this
// process running the market contract on the boards' clock, the DSO service issuing assets on it, and the
// bridge (`veilgrid bridge`) relaying offers and clearing. The testbed, the hardware-in-the-loop tests and
// the benchmarks start grids with this. The broker can go away and come back on the same port (an
// outage); the services reconnect.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Aedes } from 'aedes';
import path from 'node:path';
import { createRig, type Backend, type MeterBoard, type Rig } from '../../boards/harness/meter-board.ts';
import { BRIDGE_USERNAME } from '../broker/acl.ts';
import { BrokerCredentials } from '../broker/credentials.ts';
import { startEmbeddedBroker } from '../broker/embedded-broker.ts';
import { startLoginService } from '../broker/login-service.ts';
import { startMosquitto } from '../broker/mosquitto.ts';
import { loginPluginPath } from '../broker/mosquitto-plugin.ts';
import { startBridge, type Bridge } from '../bridge/bridge.ts';
import { ensureExitKey, exitKeyHex } from '../bridge/exit-key.ts';
import type { IssuanceOptions } from '../dso/asset-issuance.ts';
import { createDsoKey, type DsoKey } from '../dso/dso-key.ts';
import { startDsoService, type DsoService } from '../dso/dso-service.ts';
import { followClock, type ChainClock } from '../ledger/chain-clock.ts';
import { openLedger, type Ledger } from '../ledger/ledger-client.ts';
import { deployMarket, MarketClient } from '../ledger/market.ts';
import { initOperator, unlockOperatorKey, type OperatorKey } from '../operator/operator-key.ts';
import { ConsolePasswords } from '../provision/console-passwords.ts';
import { provisionMeter } from '../provision/provision.ts';

export type BrokerKind = 'aedes' | 'mosquitto';
type AedesPersistence = import('aedes-persistence').AedesPersistence;
// aedes's own in-memory persistence (a CommonJS module whose typings declare an ES default export).
const memoryPersistence = createRequire(import.meta.url)('aedes-persistence') as () => AedesPersistence;

export interface GridOptions {
  /** Where the grid keeps its keys, broker folder and databases (the caller removes it). */
  dir: string;
  /** Default aedes. */
  broker?: BrokerKind;
  /** Default vm. */
  backend?: Backend;
  /** vm only: virtual seconds per real second, and the virtual clock's start. */
  speed?: number;
  startEpochSeconds?: number;
  /** The DSO service's JSON log lines. Default: kept in `dsoLog` only. */
  log?: (line: string) => void;
  /** A market for the meters to trade on; without it the grid meters only. */
  market?: GridMarketOptions;
  /** With a market: the meters send their offers through the mixnet (vg.config's mixnet knob; default the firmware's, on); false: straight to the bridge. Without a market the meters run no mixnet. */
  mix?: boolean;
  /** aedes only: called with each broker instance as it starts (again after stopBroker/startBroker), e.g. to observe it. */
  onBroker?: (aedes: Aedes) => void;
}

export interface GridMarketOptions {
  /** The market's interval: the meters' too (provision them with it). */
  intervalSeconds: number;
  /** The DSO's prices, money units per Wh (default 300 to sell, 80 to buy). */
  prices?: { consumption: number; production: number };
  /** The DSO's issuance choices (feeder limits, timing); the grid supplies its clock. */
  issuance?: Omit<IssuanceOptions, 'now' | 'log' | 'prices'>;
  /** The bridge's JSON log lines. Default: kept in `bridgeLog` only. */
  log?: (line: string) => void;
}

export interface GridMarket {
  readonly ledger: Ledger;
  readonly client: MarketClient;
  readonly bridge: Bridge;
  readonly bridgeLog: string[];
}

export const DEFAULT_GRID_PRICES = { consumption: 300, production: 80 };

export interface ProvisionChoices {
  intervalSeconds: number;
  rotationSeconds?: number;
  impulsesPerKWh?: number;
  feeder?: string;
}

export interface ReadingCounts {
  /** Readings the DSO stored. */
  n: number;
  /** Highest sequence number among them (0: none). */
  last: number;
  /** Import energy they carry, Wh. */
  wh: number;
}

interface RunningBroker {
  port: number;
  url: string;
  /** Makes the broker read the broker folder again (aedes reads it on every connect). */
  reload(): Promise<void>;
  close(): Promise<void>;
}

export interface Grid {
  readonly dir: string;
  readonly rig: Rig;
  readonly dso: DsoService;
  readonly dsoKey: DsoKey;
  readonly credentials: BrokerCredentials;
  readonly brokerUrl: string;
  /** The DSO service's log lines (JSON), every one. */
  readonly dsoLog: string[];
  /** The market, when the grid has one. */
  readonly market?: GridMarket;
  /** The DSO's refusals: its log lines about rejected readings and key certificates. */
  rejections(): string[];
  readings(): ReadingCounts;
  /** A new board on the grid's backend (not yet powered). */
  addBoard(name: string): Promise<MeterBoard>;
  /** Provisions the meter on `board` through its console, and keeps its console password for the rig's own calls. */
  provision(board: MeterBoard, meterId: string, choices: ProvisionChoices): Promise<void>;
  /** The broker goes away (as a crash would); the DSO service keeps what it received and reconnects. */
  stopBroker(): Promise<void>;
  /** The broker again, on its earlier port. */
  startBroker(): Promise<void>;
  /** Re-reads the broker folder after provisioning (mosquitto; aedes reads it on every connect). */
  reloadBroker(): Promise<void>;
  close(): Promise<void>;
}

const OPERATOR_ID = 'grid-operator';

/**
 * The broker, on `port` when given. aedes keeps its sessions and queued messages in `persistence` across
 * a restart, as a deployed broker keeps them on disk: the DSO's persistent session survives an outage.
 */
async function startBroker(
  kind: BrokerKind,
  credentials: BrokerCredentials,
  dir: string,
  persistence: AedesPersistence,
  port?: number,
  onBroker?: (aedes: Aedes) => void,
): Promise<RunningBroker> {
  if (kind === 'aedes') {
    const aedes = await startEmbeddedBroker({ port, auth: credentials, log: () => {}, aedes: { persistence } });
    onBroker?.(aedes.aedes);
    return { port: aedes.port, url: aedes.url, reload: async () => {}, close: () => aedes.close() };
  }
  // Meters log in with their secure element: mosquitto asks the login service through its plugin.
  const logins = await startLoginService({
    check: (username, password) => credentials.checkLogin(username, password),
    log: () => {},
  });
  try {
    const mosquitto = await startMosquitto({
      dir,
      port,
      configLines: credentials.mosquittoConfigLines({ pluginPath: loginPluginPath(), port: logins.port }),
    });
    return {
      port: mosquitto.port,
      url: mosquitto.url,
      reload: () => mosquitto.reload(),
      async close() {
        await mosquitto.stop();
        await logins.close();
      },
    };
  } catch (err) {
    await logins.close();
    throw err;
  }
}

/**
 * The market on an EVM in this process whose clock follows the boards' (so gate closures fall when the
 * meters' clocks say), deployed by development account 0 (the DSO) with genesis at time 0, so that market
 * interval d is the meters' interval d (both floor(t / intervalSeconds)).
 */
async function startChain(
  rig: Rig,
  options: GridMarketOptions,
  tickMs: number,
): Promise<{ ledger: Ledger; client: MarketClient; clock: ChainClock }> {
  const ledger = await openLedger({ kind: 'in-process', accounts: 2, genesisTime: Math.floor(rig.clock.now()) });
  const deployment = await deployMarket(ledger, ledger.accounts[0], {
    intervalSeconds: options.intervalSeconds,
    genesisTime: 0,
  });
  const client = new MarketClient(ledger, deployment);
  const prices = options.prices ?? DEFAULT_GRID_PRICES;
  await client.setPrices(
    ledger.accounts[0],
    (await client.currentInterval()) + 1,
    prices.consumption,
    prices.production,
  );
  const clock = followClock(ledger, () => rig.clock.now(), tickMs);
  return { ledger, client, clock };
}

export async function startGrid(options: GridOptions): Promise<Grid> {
  const dir = options.dir;
  const kind = options.broker ?? 'aedes';
  const operatorDir = path.join(dir, 'operator');
  const passphrase = randomBytes(18).toString('base64url');
  await initOperator({ dir: operatorDir, passphrase, operatorId: OPERATOR_ID });
  const operatorKey: OperatorKey = await unlockOperatorKey(operatorDir, passphrase);
  const keyFile = path.join(dir, 'dso-key.json');
  const dsoKey = createDsoKey(keyFile);
  const credentials = new BrokerCredentials(path.join(dir, 'broker'));
  const dsoPassword = credentials.ensureDsoUser();
  // Before the broker starts: mosquitto reads its password file then.
  const bridgePassword = options.market ? credentials.ensureBridgeUser() : undefined;
  const persistence = memoryPersistence();
  let broker: RunningBroker | undefined = await startBroker(
    kind,
    credentials,
    dir,
    persistence,
    undefined,
    options.onBroker,
  );
  const port = broker.port;
  const brokerUrl = broker.url;
  const dsoLog: string[] = [];
  const started: Array<{ close(): void | Promise<void> }> = [broker];
  const closeStarted = async () => {
    for (const part of started.reverse()) await part.close();
  };
  let rig: Rig;
  let dso: DsoService;
  let market: GridMarket | undefined;
  let chainClock: ChainClock | undefined;
  try {
    rig = await createRig(options.backend ?? 'vm', {
      dir,
      speed: options.speed,
      startEpochSeconds: options.startEpochSeconds,
    });
    started.push(rig);
    // The services look for work a few times per virtual second at most: on a clock running faster than
    // real time, their default pace (set for real time) would miss the gates.
    const speed = rig.backend === 'vm' ? (options.speed ?? 1) : 1;
    const tickMs = Math.max(20, Math.round(250 / speed));
    const chain = options.market ? await startChain(rig, options.market, tickMs) : undefined;
    chainClock = chain?.clock;
    if (chain) started.push({ close: () => chain.clock.stop() });
    // The bridge is the mixnet's exit: its key goes into the DSO's relay directory, so make it first.
    const exitKey = chain ? ensureExitKey(path.join(dir, 'exit-key.json')) : undefined;
    dso = await startDsoService({
      keyFile,
      registryDb: path.join(dir, 'registry.db'),
      readingsDb: path.join(dir, 'readings.db'),
      brokerUrl,
      brokerPassword: dsoPassword,
      http: { host: '127.0.0.1', port: 0 },
      log: (line) => {
        dsoLog.push(line);
        options.log?.(line);
      },
      ...(chain && options.market && exitKey
        ? {
            exitKey: exitKeyHex(exitKey),
            market: { client: chain.client, dso: chain.ledger.accounts[0] },
            assetsDb: path.join(dir, 'assets.db'),
            issuance: {
              tickMs: Math.max(20, Math.round((options.market.intervalSeconds * 1000) / 20 / speed)),
              ...options.market.issuance,
              prices: options.market.prices ?? DEFAULT_GRID_PRICES,
              now: () => rig.clock.now() * 1000,
            },
          }
        : {}),
    });
    started.push(dso);
    if (chain && options.market) {
      const bridgeLog: string[] = [];
      const log = options.market.log;
      const bridge = await startBridge({
        market: chain.client,
        relayer: chain.ledger.accounts[1],
        exitKey,
        db: path.join(dir, 'bridge.db'),
        brokerUrl,
        username: BRIDGE_USERNAME,
        password: bridgePassword,
        http: false,
        tickMs,
        log: (line) => {
          bridgeLog.push(line);
          log?.(line);
        },
      });
      started.push(bridge);
      market = { ledger: chain.ledger, client: chain.client, bridge, bridgeLog };
    }
  } catch (err) {
    await closeStarted();
    throw err;
  }
  return {
    dir,
    rig,
    dso,
    dsoKey,
    credentials,
    brokerUrl,
    dsoLog,
    market,
    rejections: () => dsoLog.filter((line) => /"event":"(reading|key_certificate)_rejected"/.test(line)),
    readings() {
      const row = dso.store.db
        .prepare('SELECT COUNT(*) AS n, MAX(seq) AS last, SUM(import_wh) AS wh FROM readings')
        .get() as { n: number; last: number | null; wh: number | null };
      return { n: row.n, last: row.last ?? 0, wh: row.wh ?? 0 };
    },
    addBoard: (name) => rig.addBoard(name),
    async provision(board, meterId, choices) {
      const meterConsole = await board.meterConsole();
      try {
        await provisionMeter(
          {
            meterId,
            feeder: choices.feeder ?? 'feeder-1',
            operatorDir,
            operatorKey,
            dsoDb: dso.registry,
            brokerDir: credentials.dir,
            broker: { host: '127.0.0.1', port },
            dsoPublicKey: dsoKey.publicKey,
            intervalSeconds: choices.intervalSeconds,
            rotationSeconds: choices.rotationSeconds,
            impulsesPerKWh: choices.impulsesPerKWh,
            // Without a market there is no exit and nothing to carry: the meters run no mixnet.
            mixnet: options.market ? options.mix : false,
          },
          meterConsole,
        );
      } finally {
        await meterConsole.close();
      }
      // Provisioning locked the meter's console: the rig's own calls at it unlock it as the tools do.
      board.useConsolePassword(new ConsolePasswords(operatorDir).get(meterId));
    },
    async stopBroker() {
      await broker?.close();
      broker = undefined;
    },
    async startBroker() {
      if (!broker) broker = await startBroker(kind, credentials, dir, persistence, port, options.onBroker);
    },
    async reloadBroker() {
      await broker?.reload();
    },
    async close() {
      await rig.close();
      await market?.bridge.close();
      await dso.close();
      chainClock?.stop();
      await broker?.close();
      broker = undefined;
    },
  };
}
