// `veilgrid ledger serve` as a separate process: anvil from its npm package on 127.0.0.1 with Osaka's rules, the
// market deployed and its deployment file written; a signed offer goes through JSON-RPC and P256VERIFY on
// anvil; SIGTERM stops the command and anvil with it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { developmentKeys, TRANSACTION_GAS_CAP } from '../../host-tools/ledger/ledger-client.ts';
import { grantFor, openDeployedMarket, readDeployment } from '../../host-tools/ledger/market.ts';
import { encodeOffer } from '../../firmware/src/protocol/offer.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import { FEEDER } from './market-fixture.ts';

const test = suite('ledger node');

const CLI = path.resolve('bin/veilgrid.js');

test('veilgrid ledger serve: anvil on 127.0.0.1, market deployed, offers verified by P256VERIFY, stopped by SIGTERM', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-ledger-'));
  const file = path.join(dir, 'deployment.json');
  const stale = path.join(dir, 'stale.json');
  const child = spawn(
    process.execPath,
    [CLI, 'ledger', 'serve', '--port', '0', '--deployment', file, '--interval-seconds', '600'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no deployment after 60 s:\n${output}`)), 60_000);
      const poll = setInterval(() => {
        if (output.includes('anvil (pid')) {
          clearInterval(poll);
          clearTimeout(timer);
          resolve();
        }
      }, 50);
      void exited.then((code) => {
        clearInterval(poll);
        clearTimeout(timer);
        reject(new Error(`ledger serve exited (${code}):\n${output}`));
      });
    });
    const deployment = readDeployment(file);
    assert.match(deployment.rpcUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    const market = await openDeployedMarket(file, developmentKeys(2));
    const { ledger } = market;
    const [dso, relayer] = ledger.accounts;
    assert.is(deployment.dso, dso.address);
    fs.writeFileSync(stale, JSON.stringify({ ...deployment, market: '0x00000000000000000000000000000000000000aa' }));
    await openDeployedMarket(stale, []).then(
      () => assert.unreachable('a deployment file naming no contract was accepted'),
      (err: Error) => assert.match(err.message, /no contract at 0x0+aa/),
    );
    const delivery = (await market.currentInterval()) + 2;
    await market.setPrices(dso, delivery - 1, 300, 100);
    await market.setFeederLimit(dso, FEEDER, 10n ** 9n, 10n ** 9n);
    const key = generateTradingKey();
    await market.issue(dso, FEEDER, [grantFor(key.publicKey, delivery, { production: 100 })]);
    const offer = encodeOffer(market.domain, {
      side: 'ask',
      interval: delivery,
      wh: 100,
      limitPrice: 120,
      seq: 0,
      key: key.publicKey,
    });
    await market.submitOffer(relayer, offer, key.sign(offer));
    assert.is(await market.offerCount(delivery), 1);
    // EIP-7825 is on, as on any Osaka chain: a transaction may not ask for more than 2^24 gas.
    const tooBig = ledger.wallet(relayer).sendTransaction({ to: relayer.address, gas: TRANSACTION_GAS_CAP + 1n });
    await tooBig.then(
      () => assert.unreachable('a transaction above the gas cap was accepted'),
      () => {},
    );

    child.kill('SIGTERM');
    assert.is(await exited, 0, output);
    await fetch(deployment.rpcUrl!, { method: 'POST' }).then(
      () => assert.unreachable('anvil still answers after the command stopped'),
      () => {},
    );
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
