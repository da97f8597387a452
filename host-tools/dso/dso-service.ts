// The DSO's running service: the collector with the reading verifier, over the registry that
// provisioning fills and a reading store, and the HTTP endpoint with /metrics and /healthz. This is
// what `veilgrid dso serve` runs; tests start it in-process.
//
// With a market (options.market: a MarketClient in process, or a deployment file with the DSO's account key)
// and an asset store, the service also takes the meters' asset requests on the collector's session and issues
// assets (asset-issuance.ts, docs/asset-issuance.md): the issuer ticks on its own schedule, authorizes and bans
// meters on chain as the registry changes, and answers each meter on its reply topic.
//
// The service publishes the mixnet's relay directory by itself (directory-publisher.ts): at start and whenever
// the set of active meters changes, a new epoch, retained on the broker, anchored on the market when it has one.
//
// The collector connects with a persistent session, so the broker keeps the meters' QoS 1 readings
// while the service is stopped or restarting, and it acknowledges each reading only once stored: a
// restart loses nothing. Its client id is its broker user name, DSO_USERNAME: both brokers tie a
// session to the login that owns it (broker/acl.ts), so no meter can take this session over.
import type { Hex } from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';
import { DSO_USERNAME } from '../broker/acl.ts';
import { openDeployedMarket, type MarketClient } from '../ledger/market.ts';
import { ASSET_REQUEST_TOPIC_FILTER, meterIdFromAssetRequestTopic } from '../../firmware/src/protocol/topics.ts';
import { AssetIssuer, type IssuanceOptions } from './asset-issuance.ts';
import { AssetStore } from './asset-store.ts';
import { startCollector, type Collector } from './collector.ts';
import { DirectoryPublisher, ExitKeyError, parseExitKey } from './directory-publisher.ts';
import { DsoKeyError, readDsoKey, type DsoKey } from './dso-key.ts';
import { startServiceHttpServer, type ServiceHttpServer } from '../service/http-server.ts';
import { MetricsRegistry } from '../service/metrics.ts';
import { ReadingStore } from './reading-store.ts';
import { MeterRegistry } from './registry.ts';
import { ReadingVerifier } from './verifier.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export const DEFAULT_HTTP_PORT = 9464;

export interface DsoServiceOptions {
  /** dso-key.json with its private key (`veilgrid dso key-init`). */
  keyFile: string;
  /** The registry provisioning writes (`veilgrid provision --dso-db`). */
  registryDb: string;
  readingsDb: string;
  /** e.g. mqtt://127.0.0.1:1883 */
  brokerUrl: string;
  /** The DSO's broker password (BrokerCredentials.dsoPassword()); user name DSO_USERNAME. */
  brokerPassword: string;
  /** Default 127.0.0.1 and DEFAULT_HTTP_PORT; port 0 picks a free one. */
  http?: { host?: string; port?: number };
  /** One JSON object per line (collector and verifier). Default: stderr. */
  log?: (line: string) => void;
  /** The grid's interval length: readings for intervals not yet over are refused (VerifyOptions). */
  intervalSeconds?: number;
  /**
   * Asset issuance: the market, as a client this process already has (with the DSO's account), or a
   * deployment file ('veilgrid ledger serve' or 'deploy' writes it) with the DSO account's private key.
   * Needs assetsDb. Without it the service meters only.
   */
  market?: { client: MarketClient; dso: PrivateKeyAccount } | { deploymentFile: string; privateKey: Hex };
  /** The DSO's issuance records (SQLite), created if absent. */
  assetsDb?: string;
  /** When to issue, feeder limits and ids, grant rounding (asset-issuance.ts IssuanceOptions). */
  issuance?: IssuanceOptions;
  /**
   * The mixnet exit's (the bridge's) mix public key, 128 hex digits x || y ('veilgrid bridge exit-key' prints
   * it), named in every relay directory head. Without it the directory is published all the same, but meters
   * cannot send through the mixnet.
   */
  exitKey?: string;
  /** When the relay directory is republished after a registry change (directory-publisher.ts defaults). */
  directory?: { pollMs?: number; settleMs?: number; maxDelayMs?: number };
}

export interface DsoService {
  readonly collector: Collector;
  readonly registry: MeterRegistry;
  readonly store: ReadingStore;
  readonly http: ServiceHttpServer;
  /** With a market only. */
  readonly issuer?: AssetIssuer;
  readonly assets?: AssetStore;
  /** The relay directory's publisher: the directory published last, the epochs signed. */
  readonly directory: DirectoryPublisher;
  close(): Promise<void>;
}

/** How long a reply may wait for the broker's PUBACK before the issuer tries it again at a later tick. */
const REPLY_TIMEOUT_MS = 10_000;

/** A start-up problem the operator can act on (key, databases, broker, HTTP port). */
export class DsoServiceError extends VeilgridError {
  constructor(message: string) {
    super('DsoServiceError', 'dso-service', message);
  }
}

export async function startDsoService(options: DsoServiceOptions): Promise<DsoService> {
  let dsoKey: DsoKey;
  let dsoPrivateKey: Uint8Array;
  let exitKey: Uint8Array | undefined;
  try {
    dsoKey = readDsoKey(options.keyFile);
    if (!dsoKey.privateKey)
      throw new DsoKeyError(
        `${options.keyFile} holds the public key only: the service needs the file 'veilgrid dso key-init' made`,
      );
    dsoPrivateKey = dsoKey.privateKey;
    if (options.exitKey !== undefined) exitKey = parseExitKey(options.exitKey);
  } catch (err) {
    if (err instanceof DsoKeyError || err instanceof ExitKeyError) throw new DsoServiceError(err.message);
    throw err;
  }
  const opened: Array<{ close(): void | Promise<void> }> = [];
  const closeAll = async () => {
    for (const item of opened.reverse()) await item.close();
  };
  try {
    const registry = open(() => new MeterRegistry(options.registryDb), `the registry ${options.registryDb}`);
    opened.push(registry);
    const store = open(() => new ReadingStore(options.readingsDb), `the reading store ${options.readingsDb}`);
    opened.push(store);
    const metrics = new MetricsRegistry();
    const verifier = new ReadingVerifier({
      registry,
      dsoPrivateKey,
      metrics,
      log: options.log,
      intervalSeconds: options.intervalSeconds,
    });
    let issuer: AssetIssuer | undefined;
    let assets: AssetStore | undefined;
    let collector: Collector | undefined;
    let directory: DirectoryPublisher | undefined;
    let market: { client: MarketClient; dso: PrivateKeyAccount } | undefined;
    if (options.market) {
      if (!options.assetsDb)
        throw new DsoServiceError("asset issuance needs assetsDb, the SQLite file of the DSO's issuance records");
      const store = open(() => new AssetStore(options.assetsDb!), `the asset store ${options.assetsDb}`);
      assets = store;
      opened.push(store);
      market = await marketOf(options.market);
      const { client, dso } = market;
      issuer = new AssetIssuer({
        ...options.issuance,
        log: options.issuance?.log ?? options.log,
        registry,
        store,
        market: client,
        dso,
        dsoPrivateKey,
        metrics,
        publish: (topic, payload) => {
          if (!collector) return Promise.reject(new Error('not connected to the broker yet'));
          return withTimeout(
            collector.publish(topic, payload),
            REPLY_TIMEOUT_MS,
            `no PUBACK for ${topic} within ${REPLY_TIMEOUT_MS} ms`,
          );
        },
        chainJobs: () => directory?.anchorLatest() ?? Promise.resolve(),
      });
      const started = issuer;
      opened.push({ close: () => started.close() });
    }
    const assetIntake = issuer;
    try {
      collector = await startCollector({
        brokerUrl: options.brokerUrl,
        db: store,
        verifier,
        metrics,
        username: DSO_USERNAME,
        password: options.brokerPassword,
        clientId: DSO_USERNAME,
        log: options.log,
        intakes: assetIntake
          ? [
              {
                filter: ASSET_REQUEST_TOPIC_FILTER,
                meterIdFromTopic: meterIdFromAssetRequestTopic,
                handle: (meterId, payload) => ({ refused: assetIntake.handleRequest(meterId, payload).charge }),
              },
            ]
          : [],
      });
    } catch (err) {
      throw new DsoServiceError(
        `${(err as Error).message} (is the broker running, and does its password file have the DSO user from the broker folder?)`,
      );
    }
    const connected = collector;
    // closed after the issuer (opened is closed in reverse): no reply is published on a closed session
    opened.splice(opened.length - (issuer ? 1 : 0), 0, connected);
    issuer?.start();
    const ticker = issuer;
    directory = new DirectoryPublisher({
      ...options.directory,
      registry,
      dsoKey,
      exitKey,
      db: store.db,
      publish: (topic, payload) =>
        withTimeout(
          connected.publish(topic, payload, true),
          REPLY_TIMEOUT_MS,
          `no PUBACK for ${topic} within ${REPLY_TIMEOUT_MS} ms`,
        ),
      connected: () => connected.connected,
      market,
      anchorDue: ticker ? () => void ticker.tick().catch(() => undefined) : undefined,
      log: options.log,
    });
    const publisher = directory;
    opened.push({ close: () => publisher.close() });
    await publisher.start();
    metrics.gauge(
      'veilgrid_dso_broker_connected',
      'Whether the collector is connected to the broker (1) or reconnecting (0).',
      [],
      (gauge) => gauge.set(connected.connected ? 1 : 0),
    );
    const http = await startServiceHttpServer({
      name: 'DSO',
      metrics,
      host: options.http?.host,
      port: options.http?.port ?? DEFAULT_HTTP_PORT,
      health: () =>
        connected.connected
          ? { ok: true }
          : { ok: false, detail: `not connected to the broker at ${options.brokerUrl}: reconnecting` },
    }).catch((err: Error) => {
      throw new DsoServiceError(err.message);
    });
    return {
      collector: connected,
      registry,
      store,
      http,
      issuer,
      assets,
      directory: publisher,
      close: async () => {
        await http.close();
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function marketOf(
  market: NonNullable<DsoServiceOptions['market']>,
): Promise<{ client: MarketClient; dso: PrivateKeyAccount }> {
  if ('client' in market) return market;
  let client: MarketClient;
  try {
    client = await openDeployedMarket(market.deploymentFile, [market.privateKey]);
  } catch (err) {
    throw new DsoServiceError(`cannot reach the market: ${(err as Error).message}`);
  }
  const dso = client.ledger.accounts[0];
  if (dso.address.toLowerCase() !== client.deployment.dso.toLowerCase()) {
    throw new DsoServiceError(
      `the account key given is ${dso.address}, but the market in ${market.deploymentFile} was deployed by ${client.deployment.dso}: only the deploying account may issue`,
    );
  }
  return { client, dso };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]).finally(() => clearTimeout(timer));
}

function open<T>(make: () => T, what: string): T {
  try {
    return make();
  } catch (err) {
    throw new DsoServiceError(`cannot open ${what}: ${(err as Error).message}`);
  }
}
