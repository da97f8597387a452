// DSO asset issuance through the issuer itself (host-tools/dso/asset-issuance.ts) on the in-process EVM: for N
// meters on one feeder, each with an attested, sealed request (half asks, half bids with money, amounts rounded
// to grant sizes as the DSO rounds them), how fast requests are checked and stored (envelope ECDH, attestation
// verify, SQLite), the gas of each issue() transaction and of the whole interval, and the wall time from the
// issuance time to every grant on chain (300 meters: the largest batch the issuer sends).
// Usage: node --import tsx bench/asset-issuance.ts [--sizes 10,100,300,1000] [--max-grants 300]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { TRANSACTION_GAS_CAP } from '../host-tools/ledger/ledger-client.ts';
import { DELIVERY, issuanceFixture } from '../test/dso/asset-fixtures.ts';
import { attestedRequest } from '../test/dso/asset-fixtures.ts';
import { seal } from '../test/unit/verifier-fixtures.ts';

const { values } = parseArgs({
  options: { sizes: { type: 'string', default: '10,100,300,1000' }, 'max-grants': { type: 'string', default: '300' } },
});
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function measure(n: number, maxGrants: number) {
  const f = await issuanceFixture({
    maxGrantsPerTransaction: maxGrants,
    defaultFeederLimit: { productionWh: 10 ** 9, consumptionWh: 10 ** 9 },
  });
  try {
    const meters = Array.from({ length: n }, (_, i) => f.meter(`bench-${i}`));
    // what the meters send, made before the clock starts (the meters' work, not the DSO's)
    const envelopes = meters.map((m, i) =>
      seal(
        f.dsoKey.publicKey,
        attestedRequest(m, {
          interval: DELIVERY,
          productionWh: i % 2 ? 0 : 50 + ((i * 37) % 1700),
          consumptionWh: i % 2 ? 50 + ((i * 53) % 2700) : 0,
        }).signed,
      ),
    );
    await f.issuer.syncChain();
    const t0 = performance.now();
    for (const [i, envelope] of envelopes.entries()) {
      const outcome = f.issuer.handleRequest(meters[i].meterId, envelope);
      if (outcome.outcome !== 'accepted') throw new Error(`request ${i}: ${JSON.stringify(outcome)}`);
    }
    const checkMs = performance.now() - t0;
    f.toIssueTime(DELIVERY);
    const t1 = performance.now();
    await f.issuer.tick();
    const issueMs = performance.now() - t1;
    const gas = f.issuer.sent.map((s) => s.gasUsed ?? 0);
    const total = gas.reduce((a, b) => a + b, 0);
    return {
      meters: n,
      'requests checked /s': fmt((n / checkMs) * 1000),
      transactions: gas.length,
      'gas per transaction (max)': fmt(Math.max(...gas)),
      'gas per grant': fmt(total / n),
      'gas, interval': fmt(total),
      'issuance to replies (ms)': fmt(issueMs),
    };
  } finally {
    await f.close();
  }
}

const rows = [];
for (const n of values.sizes.split(',').map(Number)) rows.push(await measure(n, Number(values['max-grants'])));
console.table(rows);

console.log(`per-transaction cap ${fmt(Number(TRANSACTION_GAS_CAP))} gas (EIP-7825)`);
