// A broker outage long enough to fill the meter's outbox, on the real firmware bundle: the meter goes on
// metering, seals each reading once (retrying a full outbox costs no secure-element command), and once
// the broker is back every reading arrives at the DSO, verified, in sequence, none lost.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
import { freePort } from '../../host-tools/broker/mosquitto.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { startCollector } from '../../host-tools/dso/collector.ts';
import { createDsoKey } from '../../host-tools/dso/dso-key.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { ReadingVerifier } from '../../host-tools/dso/verifier.ts';
import { initOperator, unlockOperatorKey } from '../../host-tools/operator/operator-key.ts';
import { inProcessConsole } from '../../boards/console/meter-console.ts';
import { provisionMeter } from '../../host-tools/provision/provision.ts';

const INTERVAL = 60;
const SPEED = 1000;

function seCommands(board: Board): number {
  let total = 0;
  for (const count of board.secureElement.executedCommands.values()) total += count;
  return total;
}

/** Waits (real time) until check() holds; a bound against hangs, not a timing assertion. */
async function until(check: () => boolean, what: () => string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('a full outbox holds the reading sealed once, and every reading arrives after the outage', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-outbox-full-'));
  const definition = loadBoardDefinition('esp32-meter');
  const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(dir, 'esp32-meter.js') });
  const clock = new SimClock({ speed: 1, startEpochSeconds: Math.ceil(1_790_000_000 / INTERVAL) * INTERVAL + 1 });
  const board = new Board({ definition, clock, name: 'meter-0001', flashPath: path.join(dir, 'meter.flash') });
  const output: string[] = [];
  board.onOutput((text) => output.push(text));
  const credentials = new BrokerCredentials(path.join(dir, 'broker'));
  const dsoPassword = credentials.ensureDsoUser();
  const registry = new MeterRegistry(':memory:');
  const store = new ReadingStore(':memory:');
  const source = new S0PulseSource({
    board,
    pin: definition.pins.s0Import,
    impulsesPerKWh: 1000,
    profile: constant(1200),
  });
  const port = await freePort(); // nothing listens here until the outage ends
  let broker: Awaited<ReturnType<typeof startEmbeddedBroker>> | undefined;
  let collector: Awaited<ReturnType<typeof startCollector>> | undefined;
  try {
    board.storage.write('.bootcde', fs.readFileSync(outFile, 'latin1'));
    board.powerOn();
    const operatorDir = path.join(dir, 'operator');
    await initOperator({ dir: operatorDir, passphrase: 'outbox passphrase' });
    const dsoKey = createDsoKey(path.join(dir, 'dso-key.json'));
    await provisionMeter(
      {
        meterId: 'meter-0001',
        feeder: 'feeder-1',
        operatorDir,
        operatorKey: await unlockOperatorKey(operatorDir, 'outbox passphrase'),
        dsoDb: registry,
        brokerDir: credentials.dir,
        broker: { host: '127.0.0.1', port },
        dsoPublicKey: dsoKey.publicKey,
        intervalSeconds: INTERVAL,
      },
      inProcessConsole(board),
    );
    source.start();
    clock.setSpeed(SPEED);

    // The outbox (the raw partition's 40 KB ring) fills after about 120 readings; then the next one is refused.
    const text = () => output.join('');
    await until(
      () => /not stored: outbox full/.test(text()),
      () => `the outbox to fill; the meter printed ${text().slice(-600)}`,
    );
    const refusedSeq = Number(text().match(/reading (\d+) \(interval \d+\) not stored: outbox full/)![1]);
    const commandsWhenFull = seCommands(board);
    const fullAt = clock.now();
    await until(
      () => clock.now() >= fullAt + 5 * INTERVAL,
      () => 'five more intervals',
    );
    assert.is(seCommands(board), commandsWhenFull, 'no SE command while the outbox stays full (about 60 retries)');
    assert.is(text().match(/not stored: outbox full/g)!.length, 1, 'the refusal is logged once, not at every retry');

    // The broker comes back: every reading so far arrives, verified, with no sequence number lost.
    broker = await startEmbeddedBroker({ port, auth: credentials });
    const verifier = new ReadingVerifier({ registry, dsoPrivateKey: dsoKey.privateKey!, log: () => {} });
    collector = await startCollector({
      brokerUrl: broker.url,
      db: store,
      verifier,
      username: DSO_USERNAME,
      password: dsoPassword,
      log: () => {},
    });
    const closedIntervals = () => Math.floor(clock.now() / INTERVAL) - Math.floor(fullAt / INTERVAL) + refusedSeq - 1;
    const seqs = () =>
      store.db.prepare('SELECT COUNT(*) AS n, MIN(seq) AS first, MAX(seq) AS last FROM readings').get() as {
        n: number;
        first: number;
        last: number;
      };
    await until(
      () => seqs().n >= closedIntervals(),
      () => `the backlog to arrive: have ${JSON.stringify(seqs())}, want about ${closedIntervals()}`,
    );
    const { n, first, last } = seqs();
    assert.is(first, 1);
    assert.is(n, last, `seq 1..${last}, none missing`);
    assert.is(collector.stats.rejected, 0);
    assert.ok(/stored after all/.test(text()), 'the meter says when the refused reading got in');
  } finally {
    source.stop();
    await collector?.close();
    board.close();
    clock.close();
    await broker?.close();
    store.close();
    registry.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
