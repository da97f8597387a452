// Gas of the market contract on the in-process EVM (Osaka) for order books of 10, 100, 1,000 and 2,000 offers: per
// offer (single and in relayer batches), per issuance batch, and per clearing both ways — verifying a proposed
// result (`clear`) and computing it on chain (`clearByComputing`) — plus settlement. Each size runs on a fresh
// chain; both clearings start from the same snapshot. Books are random but seeded: half asks, half bids, one
// fresh trading key per offer, limits around the DSO's prices. docs/clearing.md discusses the figures.
// Usage: node --import tsx bench/ledger-gas.ts [--sizes 10,100,1000,2000] [--batch 100] [--seed 1]
import { parseArgs } from 'node:util';
import { BaseError } from 'viem';
import { openDevelopmentMarket } from '../host-tools/ledger/development-market.ts';
import { TRANSACTION_GAS_CAP } from '../host-tools/ledger/ledger-client.ts';
import { grantFor } from '../host-tools/ledger/market.ts';
import type { Side } from '../firmware/src/protocol/offer.ts';
import { generateTradingKey } from '../host-tools/ledger/trading-key.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,100,1000,2000' },
    batch: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
  },
});
const sizes = values.sizes.split(',').map(Number);
const batch = Number(values.batch);
const FEEDER = 1;
const START = 5;
const DELIVERY = START + 1;
const PRICES = { consumption: 300, production: 100 };
const SETTLE_CHUNK = 200;

/** mulberry32: a small seeded generator, so every run prices the same books. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const chunks = <T>(items: T[], size: number) =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
const fmt = (n: bigint | number) => Number(n).toLocaleString('en-US');

async function gasOrRefusal(run: () => Promise<{ gasUsed: bigint }>): Promise<string> {
  try {
    return fmt((await run()).gasUsed);
  } catch (err) {
    const text = err instanceof BaseError ? err.shortMessage + ' ' + (err.details ?? '') : String(err);
    return /gas cap|exceeds|gas limit|out of gas/i.test(text)
      ? `over the ${fmt(TRANSACTION_GAS_CAP)} cap`
      : `failed: ${text.slice(0, 120)}`;
  }
}

async function measure(n: number) {
  const rand = random(Number(values.seed) * 7919 + n);
  const dev = await openDevelopmentMarket({
    intervalSeconds: 900,
    startInterval: START,
    prices: PRICES,
    feeder: { id: FEEDER, production: 10n ** 15n, consumption: 10n ** 15n },
  });
  const { market, dso, relayer, anyone, ledger } = dev;
  const book = Array.from({ length: n }, (_, i) => {
    const side: Side = i % 2 === 0 ? 'ask' : 'bid';
    return {
      side,
      wh: 1 + Math.floor(rand() * 2000),
      limitPrice: 60 + Math.floor(rand() * 280),
      key: generateTradingKey(),
    };
  });

  // Issuance: batches as large as fit under the cap (200 grants), each grant one interval of energy, bids' money.
  const grants = book.map((o) =>
    grantFor(
      o.key.publicKey,
      DELIVERY,
      o.side === 'ask' ? { production: o.wh } : { consumption: o.wh, money: BigInt(o.wh * o.limitPrice) },
    ),
  );
  let issueGas = 0n;
  const issueBatches = chunks(grants, 200);
  for (const part of issueBatches) issueGas += (await market.issue(dso, FEEDER, part)).gasUsed;

  // Offers: the first one alone (submitOffer), the rest in relayer batches (submitOffers).
  const signed = book.map((o) =>
    dev.offer(o.key, { side: o.side, interval: DELIVERY, wh: o.wh, limitPrice: o.limitPrice }),
  );
  const single = (await market.submitOffer(relayer, signed[0].signedBytes, signed[0].signature)).gasUsed;
  let batchGas = 0n;
  const offerBatches = chunks(signed.slice(1), batch);
  for (const part of offerBatches) batchGas += (await market.submitOffers(relayer, part)).gasUsed;

  await dev.passGateClosure(DELIVERY);
  const result = await market.computeClearing(DELIVERY);
  const snapshot = await ledger.request('evm_snapshot');
  const computed = await gasOrRefusal(() => market.clearByComputing(anyone, DELIVERY));
  await ledger.request('evm_revert', [snapshot]);
  const verified = await gasOrRefusal(() => market.clear(anyone, DELIVERY, result));
  let settleGas = 0n;
  const settleCalls = Math.ceil(n / SETTLE_CHUNK);
  for (let i = 0; i < settleCalls; i++) settleGas += (await market.settle(anyone, DELIVERY, SETTLE_CHUNK)).gasUsed;
  return {
    offers: n,
    'issue (gas, batches)': `${fmt(issueGas)} in ${issueBatches.length}`,
    'per grant': fmt(issueGas / BigInt(n)),
    'offer alone': fmt(single),
    [`per offer in batches of ${batch}`]: offerBatches.length ? fmt(batchGas / BigInt(n - 1)) : '—',
    'clear (verify)': verified,
    clearByComputing: computed,
    'settle (gas, calls)': `${fmt(settleGas)} in ${settleCalls}`,
    'settle per offer': fmt(settleGas / BigInt(n)),
    'traded Wh @ price': `${result.volumeWh} @ ${result.price}`,
  };
}

const rows = [];
for (const n of sizes) rows.push(await measure(n));
console.log(
  `market gas, Osaka rules (EDR in process), transaction cap ${fmt(TRANSACTION_GAS_CAP)}; ${new Date().toISOString()}`,
);
console.table(rows);
