// Asset issuance across separate processes on real sockets: `veilgrid ledger serve` (anvil), `veilgrid dso serve
// --deployment` (killed with SIGKILL between request and issuance, then started again), a broker, and meters'
// requests over MQTT; then `veilgrid dso bill --json` and `--check` against anvil's JSON-RPC.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPublicClient, http, type Hex } from 'viem';
import { decodeAssetReply, type AssetReply } from '../../firmware/src/protocol/asset-reply.ts';
import { assetReplyTopic, assetRequestTopic } from '../../firmware/src/protocol/topics.ts';
import { BrokerCredentials } from '../../host-tools/broker/credentials.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { keyIdOfPoint } from '../../host-tools/dso/asset-issuance.ts';
import { createDsoKey } from '../../host-tools/dso/dso-key.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { compileContracts } from '../../host-tools/ledger/compile.ts';
import { readDeployment } from '../../host-tools/ledger/market.ts';
import { makeMeter, makeOperator, seal } from '../unit/verifier-fixtures.ts';
import { attestedRequest, until, LIMITS } from './asset-fixtures.ts';

const CLI = path.resolve('bin/veilgrid.js');
const INTERVAL = 20;

function run(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  return { child, output: () => output, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

test('separate processes: requests stored, the DSO killed and started again before issuance, each grant on chain once; bill --check agrees with anvil', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-asset-processes-'));
  const deploymentFile = path.join(dir, 'deployment.json');
  const assetsDb = path.join(dir, 'assets.db');
  const children: ChildProcess[] = [];
  const broker = await startEmbeddedBroker({ log: () => {} });
  const meterClient = mqtt.connect(broker.url, { clientId: 'meters', protocolVersion: 4 });
  try {
    const ledger = run([
      'ledger',
      'serve',
      '--port',
      '0',
      '--deployment',
      deploymentFile,
      '--interval-seconds',
      String(INTERVAL),
    ]);
    children.push(ledger.child);
    await until(
      () => ledger.output().includes('anvil (pid'),
      () => `ledger serve: ${ledger.output()}`,
      60_000,
    );
    const deployment = readDeployment(deploymentFile);

    const dsoKey = createDsoKey(path.join(dir, 'dso-key.json'));
    const credentials = new BrokerCredentials(path.join(dir, 'broker'));
    credentials.ensureDsoUser();
    const operator = makeOperator();
    const registry = new MeterRegistry(path.join(dir, 'dso.db'));
    registry.trustOperator(operator.certificate);
    const meters = Array.from({ length: 4 }, (_, i) => makeMeter(operator, `proc-${i}`, { limits: LIMITS }));
    for (const m of meters) registry.registerMeter(m.deviceCertificate);
    registry.close();
    fs.writeFileSync(
      path.join(dir, 'issuance.json'),
      JSON.stringify({
        prices: { consumption: 300, production: 100 },
        feederLimits: { 'feeder-1': { productionWh: 100_000, consumptionWh: 100_000 } },
      }),
    );
    const dsoArgs = [
      'dso',
      'serve',
      '--file',
      path.join(dir, 'dso-key.json'),
      '--dso-db',
      path.join(dir, 'dso.db'),
      '--readings',
      path.join(dir, 'readings.db'),
      '--broker',
      broker.url,
      '--broker-dir',
      credentials.dir,
      '--http',
      '127.0.0.1:0',
      '--deployment',
      deploymentFile,
      '--assets',
      assetsDb,
      '--issuance',
      path.join(dir, 'issuance.json'),
    ];
    let dso = run(dsoArgs);
    children.push(dso.child);
    await until(
      () => dso.output().includes('verifying readings'),
      () => `dso serve: ${dso.output()}`,
      60_000,
    );

    const replies: Array<{ meterId: string; reply: AssetReply }> = [];
    await new Promise((resolve) => (meterClient.connected ? resolve(undefined) : meterClient.once('connect', resolve)));
    meterClient.on('message', (topic, payload) =>
      replies.push({ meterId: topic.split('/')[2], reply: decodeAssetReply(new Uint8Array(payload)) }),
    );
    await meterClient.subscribeAsync(
      meters.map((m) => assetReplyTopic(m.meterId)),
      { qos: 1 },
    );
    // the interval after next: at least half an interval before its issuance time, whatever the clock
    const current = Math.floor((Date.now() / 1000 - deployment.genesisTime) / INTERVAL);
    const delivery = current + 2;
    // 20 s intervals: 7 kW export and 11 kW import allow 38 and 61 Wh
    const keys: Hex[] = [];
    for (const [i, m] of meters.entries()) {
      const { signed, tradingKey } = attestedRequest(m, {
        interval: delivery,
        productionWh: i % 2 ? 30 : 0,
        consumptionWh: i % 2 ? 0 : 20 * (i + 1),
      });
      keys.push(keyIdOfPoint(tradingKey.publicKey));
      await meterClient.publishAsync(assetRequestTopic(m.meterId), Buffer.from(seal(dsoKey.publicKey, signed)), {
        qos: 1,
      });
    }
    const stored = () => {
      if (!fs.existsSync(assetsDb)) return 0;
      const db = new Database(assetsDb, { readonly: true, fileMustExist: true });
      try {
        return (db.prepare('SELECT COUNT(*) AS n FROM assets_requests').get() as { n: number }).n;
      } catch {
        return 0;
      } finally {
        db.close();
      }
    };
    await until(
      () => stored() === 4,
      () => `four requests stored; dso: ${dso.output()}`,
      60_000,
    );
    assert.is(replies.length, 0, 'nothing answered before issuance');
    const issueAt = (deployment.genesisTime + delivery * INTERVAL - INTERVAL / 2) * 1000;
    assert.ok(Date.now() < issueAt, 'the kill comes before the issuance time');
    dso.child.kill('SIGKILL');
    await dso.exited;
    dso = run(dsoArgs);
    children.push(dso.child);
    await until(
      () => replies.length === 4,
      () => `four replies (${replies.length}); dso: ${dso.output()}`,
      (INTERVAL * 2 + 30) * 1000,
    );
    assert.ok(
      replies.every((r) => r.reply.issued && r.reply.interval === delivery),
      JSON.stringify(replies),
    );
    assert.ok(Date.now() >= issueAt - 1000, 'issued at its time, not before');

    const client = createPublicClient({ transport: http(deployment.rpcUrl!) });
    const logs = await client.getContractEvents({
      address: deployment.market,
      abi: compileContracts().Market.abi,
      eventName: 'AssetIssued',
      fromBlock: 0n,
    });
    const issued = (logs as unknown as Array<{ args: { keyId: Hex } }>).map((l) => l.args.keyId.toLowerCase());
    for (const key of keys)
      assert.is(issued.filter((k) => k === key.toLowerCase()).length, 1, `one AssetIssued for ${key}`);
    assert.is(issued.length, 4);

    // the statement of one meter, and its check against anvil
    assert.match(dso.output(), 'issuing assets on the market');
    dso.child.kill('SIGTERM');
    await dso.exited;
    assert.match(dso.output(), /asset requests 4 accepted \(4 issued, 0 pending\)/);
    const bill = run([
      'dso',
      'bill',
      '--meter',
      'proc-1',
      '--from',
      String(delivery - 1),
      '--to',
      String(delivery),
      '--readings',
      path.join(dir, 'readings.db'),
      '--assets',
      assetsDb,
      '--deployment',
      deploymentFile,
      '--json',
    ]);
    assert.is(await bill.exited, 0, bill.output());
    const statementFile = path.join(dir, 'statement.json');
    fs.writeFileSync(statementFile, bill.output());
    const statement = JSON.parse(bill.output());
    assert.equal(
      [statement.lines[1].grantedProductionWh, statement.lines[1].consumptionPrice, statement.lines[1].keyId],
      [32, 300, keys[1].toLowerCase()],
    );
    const check = run(['dso', 'bill', '--check', '--statement', statementFile, '--rpc', deployment.rpcUrl!]);
    assert.is(await check.exited, 0, check.output());
    assert.match(check.output(), 'all 2 lines agree');
    const recomputed = run([
      'dso',
      'bill',
      '--check',
      '--meter',
      'proc-2',
      '--from',
      String(delivery),
      '--to',
      String(delivery),
      '--readings',
      path.join(dir, 'readings.db'),
      '--assets',
      assetsDb,
      '--deployment',
      deploymentFile,
      '--rpc',
      deployment.rpcUrl!,
    ]);
    assert.is(await recomputed.exited, 0, recomputed.output());
    assert.match(recomputed.output(), 'all 1 lines agree');
    fs.writeFileSync(statementFile, bill.output().replace('"grantedProductionWh": 32', '"grantedProductionWh": 64'));
    const tampered = run(['dso', 'bill', '--check', '--statement', statementFile, '--rpc', deployment.rpcUrl!]);
    assert.is(await tampered.exited, 1, tampered.output());
    assert.match(tampered.output(), 'granted production Wh: the statement says 64, the chain 32');
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await meterClient.endAsync();
    await broker.close();
  }
});

test.run();
