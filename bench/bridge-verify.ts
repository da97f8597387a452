// Offers verified per second by the ledger bridge (issue 10, "Benchmarks"): the bridge's path for one offer
// message (host-tools/bridge/offer-check.ts: length, SHA-256 digest, codec, chain and market, gate, revoked
// keys, the public key imported from the offer's x and y, ES256 verify with node:crypto) against node:crypto's
// raw ES256 verify (crypto.verify with a key object made beforehand, the same messages and signatures) in the
// same process, alternating rounds so drift of the machine hits both alike. The ratio is the bridge's overhead;
// the aim is within 2x. Since every offer comes with its own key, a line for raw verify with the key imported
// per offer (as the bridge must) splits the overhead into that import and the rest. A last figure adds what the bridge does next with a valid offer: the duplicate check
// and the insert into its SQLite queue (synchronous FULL, as the bridge runs it), one transaction per offer.
// Every offer is signed by its own key, as trading keys are fresh per interval (no key cache can help).
// Usage: node --import tsx bench/bridge-verify.ts [--offers 2000] [--rounds 5]
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { encodeOffer, encodeOfferMessage, OFFER_LENGTH } from '../firmware/src/protocol/offer.ts';
import { BridgeStore } from '../host-tools/bridge/bridge-store.ts';
import { checkOfferMessage, sha256 } from '../host-tools/bridge/offer-check.ts';
import { generateTradingKey } from '../host-tools/ledger/trading-key.ts';

const { values } = parseArgs({
  options: { offers: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '5' } },
});
const count = Number(values.offers);
const rounds = Number(values.rounds);

const domain = { chainId: 31337, market: '0x5fbdb2315678afecb367f032d93f642f64180aa3' };
const context = { domain, gateClosure: () => Number.MAX_SAFE_INTEGER, now: () => 0, revokedKeys: new Set<string>() };
const SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

const offers = Array.from({ length: count }, (_, i) => {
  const key = generateTradingKey();
  const signedBytes = encodeOffer(domain, {
    side: i % 2 ? 'ask' : 'bid',
    interval: 11,
    wh: 100 + i,
    limitPrice: 150,
    seq: i,
    key: key.publicKey,
  });
  const signature = key.sign(signedBytes);
  const keyObject: KeyObject = createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, Buffer.from([4]), key.publicKey.x, key.publicKey.y]),
    format: 'der',
    type: 'spki',
  });
  return { message: encodeOfferMessage(signedBytes, signature), signedBytes, signature, keyObject };
});

function timed(run: () => number): { perSecond: number; ok: number } {
  const started = process.hrtime.bigint();
  const ok = run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { perSecond: count / seconds, ok };
}

const raw = () =>
  timed(() =>
    offers.reduce(
      (n, o) =>
        n + (verify('sha256', o.signedBytes, { key: o.keyObject, dsaEncoding: 'ieee-p1363' }, o.signature) ? 1 : 0),
      0,
    ),
  );
const rawWithImport = () =>
  timed(() =>
    offers.reduce((n, o) => {
      const key = createPublicKey({
        key: {
          kty: 'EC',
          crv: 'P-256',
          x: Buffer.from(o.signedBytes.subarray(49, 81)).toString('base64url'),
          y: Buffer.from(o.signedBytes.subarray(81, 113)).toString('base64url'),
        },
        format: 'jwk',
      });
      return n + (verify('sha256', o.signedBytes, { key, dsaEncoding: 'ieee-p1363' }, o.signature) ? 1 : 0);
    }, 0),
  );
const bridgePath = () =>
  timed(() => offers.reduce((n, o) => n + (checkOfferMessage(o.message, context).ok ? 1 : 0), 0));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-bench-bridge-'));
let storeRound = 0;
const intake = () => {
  const store = new BridgeStore(path.join(dir, `queue-${storeRound++}.db`), domain);
  try {
    return timed(() => {
      let n = 0;
      for (const o of offers) {
        if (store.has(sha256(o.message.subarray(0, OFFER_LENGTH)))) continue;
        const check = checkOfferMessage(o.message, context);
        if (check.ok && store.queue({ digest: check.digest, message: o.message, interval: check.offer.interval })) n++;
      }
      return n;
    });
  } finally {
    store.close();
  }
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = {
  raw: [] as number[],
  imported: [] as number[],
  bridge: [] as number[],
  intake: [] as number[],
  ratio: [] as number[],
};
try {
  raw();
  bridgePath(); // warm-up: JIT and OpenSSL's tables
  for (let r = 0; r < rounds; r++) {
    const a = raw();
    const b = bridgePath();
    const c = intake();
    const d = rawWithImport();
    for (const [what, x] of [
      ['raw', a],
      ['bridge', b],
      ['intake', c],
      ['import', d],
    ] as const)
      if (x.ok !== count) throw new Error(`${what}: only ${x.ok} of ${count} offers verified`);
    results.raw.push(a.perSecond);
    results.imported.push(d.perSecond);
    results.bridge.push(b.perSecond);
    results.intake.push(c.perSecond);
    results.ratio.push(a.perSecond / b.perSecond);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `bridge verification: ${count} offers (177-byte messages, one key each), ${rounds} rounds, median of rounds; Node ${process.version}, ${cpu}, ${os.cpus().length} cores`,
);
const line = (label: string, xs: number[]) =>
  console.log(
    `${label.padEnd(44)} ${Math.round(median(xs)).toString().padStart(7)} offers/s  (${Math.round(Math.min(...xs))}-${Math.round(Math.max(...xs))}; ${(1e6 / median(xs)).toFixed(1)} µs each)`,
  );
line('node:crypto raw ES256 verify (key object ready)', results.raw);
line('node:crypto, key imported per offer (JWK)', results.imported);
line('bridge check (offer-check.ts)', results.bridge);
line('bridge intake (check + SQLite queue, FULL)', results.intake);
console.log(`bridge overhead: raw / bridge = ${median(results.ratio).toFixed(2)}x (pairwise median; aim: within 2x)`);
