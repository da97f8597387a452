// The DSO side of a hardware-in-the-loop run, on 127.0.0.1: an aedes broker with the project's logins,
// the DSO's key, registry, reading verifier and collector (SQLite in memory), and an operator key to
// provision meters with. The HIL scenarios and the real-interpreter benches share it. The broker can go
// away and come back on the same port (an outage); the DSO keeps what it received.
import path from 'node:path';
import { DSO_USERNAME } from '../../host-tools/broker/acl.ts';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startCollector, type Collector } from '../../host-tools/dso/collector.ts';
import { createDsoKey, type DsoKey } from '../../host-tools/dso/dso-key.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { ReadingVerifier } from '../../host-tools/dso/verifier.ts';
import { initOperator, unlockOperatorKey, type OperatorKey } from '../../host-tools/operator/operator-key.ts';
import { ConsolePasswords } from '../../host-tools/provision/console-passwords.ts';
import { provisionMeter } from '../../host-tools/provision/provision.ts';
import type { MeterBoard } from './meter-board.ts';

const OPERATOR_PASSPHRASE = 'hardware in the loop';

export interface ReadingCounts {
  /** Readings the DSO stored. */
  n: number;
  /** Highest sequence number among them (0: none). */
  last: number;
  /** Import energy they carry, Wh. */
  wh: number;
}

export class ReportingRig {
  readonly registry = new MeterRegistry(':memory:');
  readonly store = new ReadingStore(':memory:');
  /** The DSO's log lines about what it refused. */
  readonly rejections: string[] = [];
  private readonly credentials: BrokerCredentials;
  private readonly dsoPassword: string;
  private readonly verifier: ReadingVerifier;
  private broker: EmbeddedBroker | undefined;
  private collector: Collector | undefined;
  /** The broker's port, kept across an outage so meters find it again. */
  private port = 0;

  private constructor(
    private readonly dir: string,
    private readonly dsoKey: DsoKey,
    private readonly operator: OperatorKey,
  ) {
    this.credentials = new BrokerCredentials(path.join(dir, 'broker'));
    this.dsoPassword = this.credentials.ensureDsoUser();
    this.verifier = new ReadingVerifier({ registry: this.registry, dsoPrivateKey: dsoKey.privateKey!, log: (line) => this.rejections.push(line) });
  }

  /** Broker, DSO and operator key in `dir` (which the caller removes). */
  static async start(dir: string): Promise<ReportingRig> {
    const operatorDir = path.join(dir, 'operator');
    await initOperator({ dir: operatorDir, passphrase: OPERATOR_PASSPHRASE });
    const rig = new ReportingRig(dir, createDsoKey(path.join(dir, 'dso-key.json')), await unlockOperatorKey(operatorDir, OPERATOR_PASSPHRASE));
    await rig.startBroker();
    return rig;
  }

  /** Readings the DSO verified and refused so far (this collector; it restarts with the broker). */
  get collectorStats(): Collector['stats'] {
    return this.collector!.stats;
  }

  /** Provisions the meter on `board` through its console, as the field technician's tool does. */
  async provision(board: MeterBoard, meterId: string, options: { intervalSeconds: number }): Promise<void> {
    const meterConsole = await board.meterConsole();
    try {
      await provisionMeter({
        meterId,
        feeder: 'feeder-1',
        operatorDir: path.join(this.dir, 'operator'),
        operatorKey: this.operator,
        dsoDb: this.registry,
        brokerDir: this.credentials.dir,
        broker: { host: '127.0.0.1', port: this.port },
        dsoPublicKey: this.dsoKey.publicKey,
        intervalSeconds: options.intervalSeconds,
      }, meterConsole);
    } finally {
      await meterConsole.close();
    }
    // Provisioning locked the meter's console: the rig's own calls at it unlock it as the tools do.
    board.useConsolePassword(new ConsolePasswords(path.join(this.dir, 'operator')).get(meterId));
  }

  readings(): ReadingCounts {
    const row = this.store.db.prepare('SELECT COUNT(*) AS n, MAX(seq) AS last, SUM(import_wh) AS wh FROM readings').get() as { n: number; last: number | null; wh: number | null };
    return { n: row.n, last: row.last ?? 0, wh: row.wh ?? 0 };
  }

  /** The broker and the DSO's collector go away (the DSO's store and registry stay). */
  async stopBroker(): Promise<void> {
    await this.collector?.close();
    await this.broker?.close();
    this.collector = undefined;
    this.broker = undefined;
  }

  /** The broker (on its earlier port, if it had one) and the collector, running. */
  async startBroker(): Promise<void> {
    this.broker = await startEmbeddedBroker({ port: this.port || undefined, auth: this.credentials });
    this.port = this.broker.port;
    this.collector = await startCollector({ brokerUrl: this.broker.url, db: this.store, verifier: this.verifier, username: DSO_USERNAME, password: this.dsoPassword, log: () => {} });
  }

  async close(): Promise<void> {
    await this.stopBroker();
    this.store.close();
    this.registry.close();
  }
}
