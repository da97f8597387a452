// `veilgrid bridge` as a separate process, killed with SIGKILL at random points while it submits, and started
// again on the same queue: every offer the meters sent ends on chain exactly once (one OfferAccepted per digest,
// no OfferRejected at all, so no Replayed of the bridge's own resubmission either), and every meter gets its
// receipt. The chain is anvil with a block every second (transactions stay pending, so kills land between
// store, send and receipt), the broker an embedded aedes that keeps the bridge's session across its deaths.
// Last, SIGTERM stops the bridge cleanly and nothing is left listening. The seed of the kill times is printed.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeEventLog } from 'viem';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { CRASH_POINTS } from '../../host-tools/bridge/bridge.ts';
import { compileContracts } from '../../host-tools/ledger/compile.ts';
import { grantFor } from '../../host-tools/ledger/market.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import {
  BroadcastListener,
  connect,
  marketOnAnvil,
  publishOffer,
  signedOffer,
  tempDir,
  until,
} from './bridge-fixture.ts';

const test = suite('bridge killed at random points');
const CLI = path.resolve('bin/veilgrid.js');

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  httpUrl: Promise<string>;
}

function startBridgeProcess(args: string[]): Running {
  const child = spawn(process.execPath, [CLI, 'bridge', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let resolveUrl: (url: string) => void;
  const httpUrl = new Promise<string>((resolve) => (resolveUrl = resolve));
  const take = (chunk: Buffer) => {
    output += chunk.toString();
    const match = /"event":"bridge_started".*?"http":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(output);
    if (match) resolveUrl(match[1]);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited, httpUrl };
}

interface Setup {
  tmp: ReturnType<typeof tempDir>;
  chain: Awaited<ReturnType<typeof marketOnAnvil>>;
  broker: Awaited<ReturnType<typeof startEmbeddedBroker>>;
  listener: BroadcastListener;
  meter: Awaited<ReturnType<typeof connect>>;
  args: string[];
}
const ctx = {} as Setup;

test.before(async () => {
  ctx.tmp = tempDir('veilgrid-bridge-crash-');
  ctx.chain = await marketOnAnvil(ctx.tmp.dir, { blockTimeSeconds: 1 });
  ctx.broker = await startEmbeddedBroker({ log: () => {} });
  ctx.listener = await BroadcastListener.start(ctx.broker.url);
  ctx.meter = await connect(ctx.broker.url, { clientId: 'meter-crash' });
  ctx.args = [
    '--broker',
    ctx.broker.url,
    '--deployment',
    ctx.chain.file,
    '--key-file',
    ctx.chain.relayerKeyFile,
    '--db',
    path.join(ctx.tmp.dir, 'queue.db'),
    '--http',
    '127.0.0.1:0',
    '--batch-size',
    '3',
  ];
});

test.after(async () => {
  await ctx.meter?.endAsync();
  await ctx.listener?.close();
  await ctx.broker?.close();
  await ctx.chain?.node.stop();
  ctx.tmp?.remove();
});

async function offersFor(count: number, firstPrice: number) {
  const { chain } = ctx;
  const keys = Array.from({ length: count }, () => generateTradingKey());
  await chain.market.issue(
    chain.dso,
    chain.feeder,
    keys.map((k) => grantFor(k.publicKey, chain.delivery, { production: 10 })),
  );
  return keys.map((k, i) =>
    signedOffer(chain.market.domain, k, { side: 'ask', interval: chain.delivery, wh: 10, limitPrice: firstPrice + i }),
  );
}

/** Every offer on chain exactly once, no refusal at all, every meter told. */
async function assertExactlyOnce(offers: Array<{ digest: string }>) {
  const { chain, listener } = ctx;
  await until(
    () => offers.every((o) => listener.outcomes.get(o.digest)?.some((x) => x.accepted)),
    90_000,
    'a receipt of every offer',
  );
  const abi = compileContracts().Market.abi;
  const logs = await chain.ledger.publicClient.getLogs({ address: chain.deployment.market, fromBlock: 0n });
  const events = logs.map(
    (l) =>
      decodeEventLog({ abi, data: l.data, topics: l.topics }) as unknown as {
        eventName: string;
        args: { digest?: string };
      },
  );
  const accepted = events.filter((e) => e.eventName === 'OfferAccepted').map((e) => e.args.digest!);
  for (const o of offers)
    assert.is(accepted.filter((d) => d === o.digest).length, 1, `${o.digest} on chain exactly once`);
  assert.is(new Set(accepted).size, accepted.length, 'no digest twice');
  assert.is(events.filter((e) => e.eventName === 'OfferRejected').length, 0, 'no offer refused, not even as Replayed');
  for (const o of offers)
    assert.ok(
      listener.outcomes.get(o.digest)!.every((x) => x.accepted),
      `${o.digest}: ${JSON.stringify(listener.outcomes.get(o.digest))}`,
    );
}

test('SIGKILL at random points while submitting: every offer on chain exactly once', async () => {
  const seed = Number(process.env.VEILGRID_BRIDGE_SEED ?? Date.now() % 100_000);
  let state = seed;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  console.log(`  (kill times from seed ${seed}; VEILGRID_BRIDGE_SEED=${seed} repeats them)`);
  const { chain, meter, args } = ctx;
  let running: Running | undefined;
  const everything: string[] = [];
  try {
    const offers = await offersFor(36, 100);

    // Offers arrive in six waves; after each the bridge is killed at a random moment and started again.
    let sent = 0;
    for (let wave = 0; wave < 6; wave++) {
      running = startBridgeProcess(args);
      await running.httpUrl;
      for (const o of offers.slice(sent, sent + 6)) await publishOffer(meter, `meter-${sent++}`, o.message);
      await new Promise((resolve) => setTimeout(resolve, 150 + random() * 2500));
      running.child.kill('SIGKILL');
      await running.exited;
      everything.push(running.output());
    }
    running = startBridgeProcess(args);
    const url = await running.httpUrl;
    await assertExactlyOnce(offers);
    assert.is(await chain.market.offerCount(chain.delivery), offers.length);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /veilgrid_bridge_queue_offers\{state="in-flight"\} 0/);
    assert.match(metrics, /veilgrid_bridge_queue_offers\{state="queued"\} 0/);

    running.child.kill('SIGTERM');
    assert.is(await running.exited, 0, running.output());
    assert.match(running.output(), /"event":"bridge_stopped"/);
    await fetch(`${url}/healthz`).then(
      () => assert.unreachable('the bridge still answers after SIGTERM'),
      () => {},
    );
    const log = everything.join('') + running.output();
    const restartsInFlight = (log.match(/"event":"queue_opened"[^\n]*"pendingBatches":[1-9]/g) ?? []).length;
    console.log(
      `  (${(log.match(/"event":"batch_sent"/g) ?? []).length} batches signed; ${restartsInFlight} of 6 restarts found batches in flight, ${(log.match(/"event":"batch_resent"/g) ?? []).length} sent again)`,
    );
  } catch (err) {
    console.error(everything.join('\n---\n') + (running?.output() ?? ''));
    throw err;
  } finally {
    if (running && running.child.exitCode === null && running.child.signalCode === null) running.child.kill('SIGKILL');
  }
});

test('a kill exactly between each write and the step after it (store, sign, send, receipt, publish) loses nothing', async () => {
  const { meter, args } = ctx;
  let sent = 0;
  const all: Array<{ digest: string }> = [];
  for (const point of CRASH_POINTS) {
    const offers = await offersFor(4, 200 + sent);
    all.push(...offers);
    const dying = spawnWith(args, point);
    await dying.httpUrl;
    for (const o of offers) await publishOffer(meter, `meter-${point}-${sent++}`, o.message);
    const code = await Promise.race([
      dying.exited,
      new Promise<string>((resolve) => setTimeout(() => resolve('alive'), 30_000)),
    ]);
    assert.is(dying.child.signalCode, 'SIGKILL', `the bridge died at ${point} (${code}):\n${dying.output()}`);
    const running = startBridgeProcess(args);
    try {
      await running.httpUrl;
      await assertExactlyOnce(offers);
      if (point === 'batch-recorded')
        assert.match(
          running.output(),
          /"event":"batch_resent"/,
          'the batch signed and stored before the kill is sent as the same bytes',
        );
    } finally {
      running.child.kill('SIGTERM');
      await running.exited;
    }
  }
  await assertExactlyOnce(all);
});

test('after a kill between store and send, a nonce taken by another transaction is reconciled with OfferAccepted events', async () => {
  const { chain, meter, args } = ctx;
  const [first, ...rest] = await offersFor(3, 300);
  const dying = spawnWith(args, 'batch-recorded');
  await dying.httpUrl;
  await publishOffer(meter, 'meter-reconcile', first.message);
  await dying.exited;
  assert.is(dying.child.signalCode, 'SIGKILL', dying.output());
  // Meanwhile: another relayer puts the offer on chain, and the bridge's account spends the nonce of the batch
  // the bridge stored but never sent (a second process on the same account, say).
  const relayer = chain.ledger.accounts[1];
  const anyone = chain.ledger.accounts[2];
  await chain.market.submitOffer(anyone, first.message.subarray(0, 113), first.message.subarray(113));
  const spent = await chain.ledger.wallet(relayer).sendTransaction({ to: relayer.address, value: 0n });
  await chain.ledger.publicClient.waitForTransactionReceipt({ hash: spent });
  for (const o of rest) await publishOffer(meter, 'meter-reconcile', o.message);
  const running = startBridgeProcess(args);
  try {
    await running.httpUrl;
    await assertExactlyOnce([first, ...rest]);
    assert.match(running.output(), /"event":"batch_done"[^\n]*"how":"reconciled with OfferAccepted events/);
  } finally {
    running.child.kill('SIGTERM');
    await running.exited;
  }
});

function spawnWith(args: string[], point: string): Running {
  const before = process.env.VEILGRID_BRIDGE_CRASH_AT;
  process.env.VEILGRID_BRIDGE_CRASH_AT = point;
  try {
    return startBridgeProcess(args);
  } finally {
    if (before === undefined) delete process.env.VEILGRID_BRIDGE_CRASH_AT;
    else process.env.VEILGRID_BRIDGE_CRASH_AT = before;
  }
}

test.run();
