// The whole market across separate processes on real sockets, each started as an operator would: the
// ledger node (`veilgrid ledger serve`, anvil), the broker (a mosquitto process and `veilgrid broker
// logins`), the DSO service (`veilgrid dso serve --deployment`), the bridge (`veilgrid bridge`) and three
// emulated meters (`veilgrid emulate`, provisioned with `veilgrid provision` over their TCP consoles), one
// exporting 1 kW and two importing 1 kW, in real time with 10-second intervals. The meters' readings must
// verify, their offers reach the chain, and an interval clear with energy traded, as the chain's own
// events say.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPublicClient, http, parseAbiItem } from 'viem';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import {
  findMosquitto,
  freePort,
  MOSQUITTO_MISSING,
  startMosquitto,
  type MosquittoBroker,
} from '../../host-tools/broker/mosquitto.ts';
import { loginPluginUnavailable } from '../../host-tools/broker/mosquitto-plugin.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { readDeployment } from '../../host-tools/ledger/market.ts';

const CLI = path.resolve('bin/veilgrid.js');
const INTERVAL = 10;
const PASSPHRASE = 'market processes passphrase';

interface Proc {
  child: ChildProcess;
  output(): string;
}

const running: Proc[] = [];

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VEILGRID_OPERATOR_PASSPHRASE: PASSPHRASE },
  });
  let output = '';
  child.stdout!.setEncoding('latin1').on('data', (c: string) => (output += c));
  child.stderr!.setEncoding('latin1').on('data', (c: string) => (output += c));
  const proc = { child, output: () => output };
  running.push(proc);
  return proc;
}

/** Runs a command to its end; rejects with its output unless it exits 0. */
async function runToEnd(args: string[]): Promise<string> {
  const proc = start(args);
  const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
  if (code !== 0) throw new Error(`veilgrid ${args.join(' ')} exited ${code}:\n${proc.output()}`);
  return proc.output();
}

async function until(condition: () => boolean, what: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stopAll(): Promise<void> {
  for (const proc of running.reverse()) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) continue;
    const exited = new Promise((resolve) => proc.child.once('exit', resolve));
    proc.child.kill('SIGTERM');
    const killer = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  }
  running.length = 0;
}

test('ledger node, broker, DSO, bridge and meters as separate processes: readings verify, offers reach the chain, an interval clears with energy traded', async () => {
  const missing = findMosquitto() ? loginPluginUnavailable() : MOSQUITTO_MISSING;
  if (missing) {
    console.log(`  SKIPPED: ${missing}`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-market-processes-'));
  let mosquitto: MosquittoBroker | undefined;
  const file = (name: string) => path.join(dir, name);
  try {
    const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: file('firmware.js') });
    await runToEnd(['operator', 'init', '--dir', file('operator'), '--operator-id', 'grid-operator']);
    await runToEnd(['dso', 'key-init', '--file', file('dso-key.json')]);
    const ledger = start([
      'ledger',
      'serve',
      '--port',
      '0',
      '--deployment',
      file('deployment.json'),
      '--interval-seconds',
      String(INTERVAL),
      '--genesis-time',
      '0',
    ]);
    await until(
      () => fs.existsSync(file('deployment.json')),
      () => `ledger serve: ${ledger.output()}`,
      60_000,
    );
    const deployment = readDeployment(file('deployment.json'));

    // Meters: one exporting 1 kW (a PV roof at noon, whatever the hour the test runs), two importing 1 kW.
    const brokerPort = await freePort();
    const profiles = [
      ['--profile', 'none', '--export-profile', 'constant-1kw'],
      ['--profile', 'constant-1kw'],
      ['--profile', 'constant-1kw'],
    ];
    const meters = profiles.map((profile, i) =>
      start([
        'emulate',
        '--console',
        '0',
        '--flash',
        file(`meter-${i}.flash`),
        '--firmware',
        outFile,
        ...profile,
        '--seed',
        String(i + 1),
      ]),
    );
    for (let i = 0; i < meters.length; i++) {
      await until(
        () => /127\.0\.0\.1:(\d+)/.test(meters[i].output()),
        () => `emulate ${i}: ${meters[i].output()}`,
        30_000,
      );
      const consolePort = /127\.0\.0\.1:(\d+)/.exec(meters[i].output())![1];
      await runToEnd([
        'provision',
        '--port',
        `tcp://127.0.0.1:${consolePort}`,
        '--meter-id',
        `meter-${i}`,
        '--feeder',
        'F1',
        '--operator-dir',
        file('operator'),
        '--dso-db',
        file('registry.db'),
        '--broker-dir',
        file('broker'),
        '--broker',
        `127.0.0.1:${brokerPort}`,
        '--dso-key',
        file('dso-key.json'),
        '--interval-seconds',
        String(INTERVAL),
      ]);
    }

    // The broker: its login service, then mosquitto with the lines the service prints, the services'
    // users (the DSO's made by provisioning, the bridge's made here as its operator would) in its files.
    new BrokerCredentials(file('broker')).ensureBridgeUser();
    const logins = start(['broker', 'logins', '--broker-dir', file('broker'), '--port', '0']);
    await until(
      () => /^plugin_opt_login_port \d+$/m.test(logins.output()),
      () => `broker logins: ${logins.output()}`,
      60_000,
    );
    const configLines = logins
      .output()
      .split('\n')
      .filter((line) => /^(password_file|acl_file|use_username_as_clientid|plugin|plugin_opt_login_port) /.test(line));
    mosquitto = await startMosquitto({ dir, port: brokerPort, configLines });

    const brokerUrl = `mqtt://127.0.0.1:${brokerPort}`;
    // The DSO's prices: without them the chain has no outside option and nobody can trade.
    fs.writeFileSync(file('issuance.json'), JSON.stringify({ prices: { consumption: 300, production: 80 } }));
    // The bridge is the mixnet's exit: the DSO's relay directory names its key, as its operators would set it up.
    const exitKey = /^[0-9a-f]{128}$/m.exec(await runToEnd(['bridge', 'exit-key', '--dir', dir]))![0];
    const dso = start([
      'dso',
      'serve',
      '--exit-key',
      exitKey,
      '--file',
      file('dso-key.json'),
      '--dso-db',
      file('registry.db'),
      '--readings',
      file('readings.db'),
      '--broker',
      brokerUrl,
      '--broker-dir',
      file('broker'),
      '--http',
      '127.0.0.1:0',
      '--interval-seconds',
      String(INTERVAL),
      '--deployment',
      file('deployment.json'),
      '--assets',
      file('assets.db'),
      '--issuance',
      file('issuance.json'),
    ]);
    const bridge = start([
      'bridge',
      '--broker',
      brokerUrl,
      '--broker-dir',
      file('broker'),
      '--deployment',
      file('deployment.json'),
      '--db',
      file('bridge.db'),
      '--dir',
      dir,
      '--http',
      '127.0.0.1:0',
    ]);

    // The chain's own record: an interval cleared with volume, and offers accepted.
    const chain = createPublicClient({ transport: http(deployment.rpcUrl!) });
    const clearedEvent = parseAbiItem(
      'event Cleared(uint32 indexed interval, uint32 price, uint64 volumeWh, uint32 offers)',
    );
    const acceptedEvent = parseAbiItem(
      'event OfferAccepted(uint32 indexed interval, uint32 index, bytes32 indexed digest, bytes32 indexed keyId, uint8 side, uint32 wh, uint32 limitPrice)',
    );
    let traded: bigint[] = [];
    let counts = { n: 0, meters: 0 };
    const readingCounts = () => {
      if (!fs.existsSync(file('readings.db'))) return { n: 0, meters: 0 }; // the DSO service is still starting
      const db = new Database(file('readings.db'), { readonly: true });
      try {
        return db.prepare('SELECT COUNT(*) AS n, COUNT(DISTINCT meter_id) AS meters FROM readings').get() as {
          n: number;
          meters: number;
        };
      } finally {
        db.close();
      }
    };
    const deadline = Date.now() + 12 * INTERVAL * 1000;
    while (Date.now() < deadline) {
      const cleared = await chain.getLogs({ address: deployment.market, event: clearedEvent, fromBlock: 0n });
      traded = cleared.map((log) => log.args.volumeWh!).filter((v) => v > 0n);
      counts = readingCounts();
      if (traded.length >= 1 && counts.n >= 9) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const why = () =>
      `\nreadings ${JSON.stringify(counts)}\nDSO:\n${dso.output().slice(-3000)}\nbridge:\n${bridge.output().slice(-3000)}\nmeter 0:\n${meters[0].output().slice(-1500)}\nmeter 1:\n${meters[1].output().slice(-1500)}`;
    assert.ok(counts.meters === 3 && counts.n >= 9, `verified readings of every meter${why()}`);
    assert.ok(traded.length >= 1, `an interval cleared with energy traded on chain${why()}`);
    const accepted = await chain.getLogs({ address: deployment.market, event: acceptedEvent, fromBlock: 0n });
    assert.ok(
      accepted.some((log) => log.args.side === 1) && accepted.some((log) => log.args.side === 2),
      `asks and bids on chain: ${accepted.length} offers${why()}`,
    );
    assert.not.match(dso.output(), /"event":"reading_rejected"/, `no reading rejected${why()}`);
  } finally {
    await stopAll();
    await mosquitto?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
