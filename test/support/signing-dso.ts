// A DSO for tests of signing meters on vm boards: an open aedes broker, the registry, verifier, collector
// and a reading store, an operator key, and provisioning done by hand at a board's console (vgProvisionSE,
// registration under a device certificate, vg.config written, restart) -- the steps `veilgrid provision`
// automates, spelled out so a test can watch each.
import path from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import type { BoardDefinition } from '../../boards/board-definition.ts';
import type { Board } from '../../boards/emulator/board.ts';
import { CONFIG_FILE, type MeterConfig } from '../../firmware/src/protocol/meter-config.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startCollector, type Collector } from '../../host-tools/dso/collector.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { ReadingVerifier } from '../../host-tools/dso/verifier.ts';
import { issueDeviceCertificate } from '../../host-tools/operator/operator-key.ts';
import { makeOperator } from '../unit/verifier-fixtures.ts';

/** What vgProvisionSE returned: the chip's serial and public keys, hex. */
export interface ProvisionedSe {
  serial: string;
  identityKey: string;
  mixKey: string;
}

export interface SigningDso {
  readonly broker: EmbeddedBroker;
  readonly store: ReadingStore;
  readonly registry: MeterRegistry;
  readonly collector: Collector;
  readonly dsoPublicKey: Uint8Array;
  /** The verifier's log lines about what it refused. */
  readonly rejections: string[];
  /**
   * Provisions the meter on `board` (running its firmware, SE not yet provisioned): SE keys, DSO
   * registration, configuration, restart into it.
   */
  provision(
    board: Board,
    definition: BoardDefinition,
    meterId: string,
    times: { intervalSeconds: number; rotationSeconds: number },
  ): ProvisionedSe;
  close(): Promise<void>;
}

/** Runs `evaluate` at the board's console and parses the JSON string it returns. */
export function consoleJson(board: Board, expression: string): any {
  const answer = board.evaluate(expression);
  if (typeof answer.value !== 'string')
    throw new Error(`${expression} returned ${JSON.stringify(answer)}, not a JSON string`);
  return JSON.parse(answer.value);
}

export async function startSigningDso(work: string): Promise<SigningDso> {
  const broker = await startEmbeddedBroker();
  const store = new ReadingStore(path.join(work, 'readings.db'));
  const registry = new MeterRegistry(':memory:');
  const operator = makeOperator();
  registry.trustOperator(operator.certificate);
  const dso = p256.keygen();
  const dsoPublicKey = p256.getPublicKey(dso.secretKey, false);
  const rejections: string[] = [];
  const verifier = new ReadingVerifier({
    registry,
    dsoPrivateKey: dso.secretKey,
    log: (line) => rejections.push(line),
  });
  const collector = await startCollector({ brokerUrl: broker.url, db: store, verifier, log: () => {} });
  return {
    broker,
    store,
    registry,
    collector,
    dsoPublicKey,
    rejections,
    provision(board, definition, meterId, times) {
      const se = consoleJson(board, 'vgProvisionSE()') as ProvisionedSe & { error?: string };
      if (se.error) throw new Error(`vgProvisionSE on ${meterId}: ${se.error}`);
      registry.registerMeter(
        issueDeviceCertificate(operator.key, {
          meterId,
          feeder: 'feeder-1',
          identityKey: new Uint8Array(Buffer.from(se.identityKey, 'hex')),
          mixKey: new Uint8Array(Buffer.from(se.mixKey, 'hex')),
          limits: { maxImportW: 11_000, maxExportW: 7_000 },
          issuedAt: Math.floor(Date.now() / 1000),
        }),
      );
      const config: MeterConfig = {
        meterId,
        broker: { host: '127.0.0.1', port: broker.port },
        mqtt: { username: meterId, password: 'x' },
        intervalSeconds: times.intervalSeconds,
        s0: {
          importPin: definition.pins.s0Import,
          exportPin: definition.pins.s0Export,
          impulsesPerKWh: 1000,
          debounceMs: 10,
        },
        journal: { commitEveryWh: 10 },
        dsoPublicKey: Buffer.from(dsoPublicKey).toString('hex'),
        keys: { rotationSeconds: times.rotationSeconds },
      };
      board.storage.write(CONFIG_FILE, JSON.stringify(config));
      board.powerCut();
      board.powerOn();
      return se;
    },
    async close() {
      await collector.close();
      await broker.close();
      store.close();
      registry.close();
    },
  };
}
