// The DSO's running service: the collector with the reading verifier, over the registry that
// provisioning fills and a reading store, and the HTTP endpoint with /metrics and /healthz. This is
// what `veilgrid dso serve` runs; tests start it in-process.
//
// The collector connects with a persistent session, so the broker keeps the meters' QoS 1 readings
// while the service is stopped or restarting, and it acknowledges each reading only once stored: a
// restart loses nothing. Its client id is its broker user name, DSO_USERNAME: both brokers tie a
// session to the login that owns it (broker/acl.ts), so no meter can take this session over.
import { DSO_USERNAME } from '../broker/acl.ts';
import { startCollector, type Collector } from './collector.ts';
import { DsoKeyError, readDsoKey } from './dso-key.ts';
import { startDsoHttpServer, type DsoHttpServer } from './http-server.ts';
import { MetricsRegistry } from './metrics.ts';
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
}

export interface DsoService {
  readonly collector: Collector;
  readonly registry: MeterRegistry;
  readonly store: ReadingStore;
  readonly http: DsoHttpServer;
  close(): Promise<void>;
}

/** A start-up problem the operator can act on (key, databases, broker, HTTP port). */
export class DsoServiceError extends VeilgridError {
  constructor(message: string) {
    super('DsoServiceError', 'dso-service', message);
  }
}

export async function startDsoService(options: DsoServiceOptions): Promise<DsoService> {
  let dsoPrivateKey: Uint8Array;
  try {
    const key = readDsoKey(options.keyFile);
    if (!key.privateKey) throw new DsoKeyError(`${options.keyFile} holds the public key only: the service needs the file 'veilgrid dso key-init' made`);
    dsoPrivateKey = key.privateKey;
  } catch (err) {
    if (err instanceof DsoKeyError) throw new DsoServiceError(err.message);
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
    const verifier = new ReadingVerifier({ registry, dsoPrivateKey, metrics, log: options.log, intervalSeconds: options.intervalSeconds });
    let collector: Collector;
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
      });
    } catch (err) {
      throw new DsoServiceError(`${(err as Error).message} (is the broker running, and does its password file have the DSO user from the broker folder?)`);
    }
    opened.push(collector);
    metrics.gauge('veilgrid_dso_broker_connected', 'Whether the collector is connected to the broker (1) or reconnecting (0).', [], (gauge) => gauge.set(collector.connected ? 1 : 0));
    const http = await startDsoHttpServer({
      metrics,
      host: options.http?.host,
      port: options.http?.port ?? DEFAULT_HTTP_PORT,
      health: () => (collector.connected ? { ok: true } : { ok: false, detail: `not connected to the broker at ${options.brokerUrl}: reconnecting` }),
    }).catch((err: Error) => {
      throw new DsoServiceError(err.message);
    });
    return { collector, registry, store, http, close: async () => { await http.close(); await closeAll(); } };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

function open<T>(make: () => T, what: string): T {
  try {
    return make();
  } catch (err) {
    throw new DsoServiceError(`cannot open ${what}: ${(err as Error).message}`);
  }
}
