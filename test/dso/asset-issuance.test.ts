// DSO asset issuance (issue 10 item 3): requests checked and refused with each reason, approved ones issued in
// one shuffled batch per feeder on the in-process market, the grants on chain equal to the records, replies
// after issuance, a restarted DSO issuing exactly once, and a request attested by the emulated ATECC608.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Hex } from 'viem';
import { IDENTITY_SLOT, READING_KEY_SLOTS, TRADING_RING } from '../../firmware/src/protocol/slot-map.ts';
import { attestedCertificate, encodeAssetRequest, signedCertificate } from '../../firmware/src/protocol/certificate.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { sealedAssetRequest } from '../../firmware/src/market/asset-request.ts';
import { cryptoShuffle } from '../../host-tools/crypto/shuffle.ts';
import { feederIdOf, keyIdOfPoint, meterHashOf, roundedGrant } from '../../host-tools/dso/asset-issuance.ts';
import { compileContracts } from '../../host-tools/ledger/compile.ts';
import { issueDeviceCertificate } from '../../host-tools/operator/operator-key.ts';
import { provisionedSecureElement } from '../support/provisioned-se.ts';
import { keyPair } from '../unit/verifier-fixtures.ts';
import {
  asTradingKey,
  attestedRequest,
  CONSUMPTION_PRICE,
  DELIVERY,
  INTERVAL_SECONDS,
  issuanceFixture,
  LIMITS,
  until,
  type IssuanceFixture,
} from './asset-fixtures.ts';

const abi = compileContracts().Market.abi;

async function assetIssued(f: IssuanceFixture): Promise<
  Array<{
    keyId: Hex;
    feeder: number;
    production: number;
    consumption: number;
    first: number;
    money: bigint;
    txHash: Hex;
    logIndex: number;
  }>
> {
  const logs = await f.dev.ledger.publicClient.getContractEvents({
    address: f.dev.market.deployment.market,
    abi,
    eventName: 'AssetIssued',
    fromBlock: 0n,
  });
  return (logs as unknown as Array<{ args: Record<string, unknown>; transactionHash: Hex; logIndex: number }>).map(
    (l) => ({
      keyId: (l.args.keyId as Hex).toLowerCase() as Hex,
      feeder: Number(l.args.feeder),
      production: Number(l.args.production),
      consumption: Number(l.args.consumption),
      first: Number(l.args.first),
      money: l.args.money as bigint,
      txHash: l.transactionHash,
      logIndex: l.logIndex,
    }),
  );
}

function tempDb(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vg-assets-')), 'assets.db');
}

test("grant sizes: powers of two from 16 Wh, or the meter's limit when that is less; never less than asked", () => {
  assert.is(roundedGrant(0, 1000), 0);
  assert.is(roundedGrant(1, 1000), 16);
  assert.is(roundedGrant(16, 1000), 16);
  assert.is(roundedGrant(17, 1000), 32);
  assert.is(roundedGrant(700, 2000), 1024);
  assert.is(roundedGrant(700, 1000), 1000);
  assert.is(roundedGrant(1750, 1750), 1750);
  assert.is(roundedGrant(5, 10), 10);
  assert.is(
    feederIdOf('feeder-1'),
    Buffer.from(nodeSha256(new TextEncoder().encode('feeder-1'))).readUInt32BE(0),
    'the first 4 bytes of SHA-256 of the name',
  );
  assert.is(feederIdOf('feeder-1', { 'feeder-1': 7 }), 7);
});

test('cryptoShuffle is a permutation and moves things (1,000 shuffles of 8: every item reaches every place)', () => {
  const places = Array.from({ length: 8 }, () => new Set<number>());
  for (let i = 0; i < 1000; i++) {
    const out = cryptoShuffle([0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal([...out].sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
    out.forEach((item, place) => places[item].add(place));
  }
  for (const seen of places) assert.is(seen.size, 8);
});

test('approved requests are issued in one batch at the issuance time; the grants on chain are the records; zero requests issue nothing and are answered issued', async () => {
  const lines: string[] = [];
  const f = await issuanceFixture({ log: (line) => lines.push(line) });
  try {
    const [a, b, c] = ['meter-a', 'meter-b', 'meter-c'].map((id) => f.meter(id));
    f.meter('meter-silent');
    const ra = f.request(a, { interval: DELIVERY, productionWh: 600 });
    const rb = f.request(b, { interval: DELIVERY, consumptionWh: 1000, productionWh: 20 });
    const rc = f.request(c, { interval: DELIVERY });
    for (const r of [ra, rb, rc]) assert.is(r.outcome.outcome, 'accepted');
    await f.issuer.tick();
    assert.is(f.issuer.sent.length, 0, 'nothing is issued before the issuance time');
    assert.is(f.replies.length, 0, 'accepted requests are answered after issuance');
    const feederId = feederIdOf('feeder-1');
    assert.is(
      Number(
        (
          (await f.dev.market.ledger.publicClient.readContract({
            address: f.dev.market.deployment.market,
            abi,
            functionName: 'feederLimits',
            args: [feederId],
          })) as unknown[]
        )[0],
      ),
      1_000_000,
      'the feeder limit is set on chain',
    );

    f.toIssueTime(DELIVERY);
    await f.issuer.tick();
    assert.is(f.issuer.sent.length, 1, 'one transaction for the feeder');
    assert.ok(
      lines.some((l) => l.includes('"event":"interval_issued"') && l.includes('"silent":["meter-silent"]')),
      'a meter that did not ask is named',
    );
    const events = await assetIssued(f);
    assert.is(events.length, 2, 'the zero request issues nothing');
    const expected = new Map([
      [keyIdOfPoint(ra.tradingKey.publicKey), { production: 1024, consumption: 0, money: 0n }],
      [
        keyIdOfPoint(rb.tradingKey.publicKey),
        { production: 32, consumption: 1024, money: 1024n * BigInt(CONSUMPTION_PRICE) },
      ],
    ]);
    for (const e of events) {
      const want = expected.get(e.keyId)!;
      assert.ok(want, `an AssetIssued for a key that was requested: ${e.keyId}`);
      assert.equal(
        { production: e.production, consumption: e.consumption, money: e.money, first: e.first, feeder: e.feeder },
        { ...want, first: DELIVERY, feeder: feederId },
      );
      const holding = await f.dev.market.holding(e.keyId, DELIVERY);
      assert.is(holding.production, BigInt(want.production));
      assert.is(holding.consumption, BigInt(want.consumption));
      assert.is((await f.dev.market.money(e.keyId)).free, want.money);
    }
    // the DSO's records say the same
    for (const record of f.store.requestsOf(DELIVERY)) {
      assert.is(record.status, 'issued');
      const want = expected.get(record.keyId);
      if (want) {
        assert.equal(
          { production: record.grantedProductionWh, consumption: record.grantedConsumptionWh, money: record.money },
          want,
        );
        assert.ok(record.batchId !== undefined);
      } else {
        assert.is(record.meterId, 'meter-c');
        assert.is(record.batchId, undefined);
      }
      assert.ok(record.repliedAtMs !== undefined, 'the reply was acknowledged');
    }
    assert.equal(f.replies.map((r) => r.meterId).sort(), ['meter-a', 'meter-b', 'meter-c']);
    assert.ok(f.replies.every((r) => r.reply.issued && r.reply.interval === DELIVERY));
    // a later tick sends nothing again
    await f.issuer.tick();
    assert.is(f.issuer.sent.length, 1);
    assert.is(f.replies.length, 3);
    assert.is((await assetIssued(f)).length, 2);
  } finally {
    await f.close();
  }
});

test('each refusal, with its reason, answered at once', async () => {
  const f = await issuanceFixture({ feederLimits: { 'feeder-small': { productionWh: 1600, consumptionWh: 1600 } } });
  try {
    const ok = f.meter('meter-ok');
    const other = f.meter('meter-other');
    const revoked = f.meter('meter-revoked');
    f.registry.revoke('meter-revoked', 'tampering');
    const smallA = f.meter('small-a', { feeder: 'feeder-small' });
    const smallB = f.meter('small-b', { feeder: 'feeder-small' });
    const stranger = keyPair();
    const reason = (o: ReturnType<IssuanceFixture['send']>) => (o.outcome === 'refused' ? o.reason : o.outcome);

    // not authorized: unregistered, revoked, or naming another meter than its topic
    const unregistered = {
      meterId: 'meter-unknown',
      identity: stranger,
      mix: stranger,
      deviceCertificate: new Uint8Array(),
    };
    assert.is(reason(f.request(unregistered, { interval: DELIVERY }).outcome), 'not-authorized');
    assert.is(reason(f.request(revoked, { interval: DELIVERY }).outcome), 'not-authorized');
    assert.is(reason(f.send('meter-ok', attestedRequest(other, { interval: DELIVERY }).signed)), 'not-authorized');
    // bad attestation: another chip's identity key, another slot than the one attested, signed instead of attested
    assert.is(reason(f.request(ok, { interval: DELIVERY, signer: other.identity }).outcome), 'bad-attestation');
    assert.is(
      reason(f.request(ok, { interval: DELIVERY, slot: TRADING_RING[1], attestedSlot: TRADING_RING[2] }).outcome),
      'bad-attestation',
    );
    assert.is(
      reason(f.request(ok, { interval: DELIVERY, slot: TRADING_RING[0], attestedSlot: READING_KEY_SLOTS[0] }).outcome),
      'bad-attestation',
    );
    const trading = keyPair();
    const payload = encodeAssetRequest({
      meterId: 'meter-ok',
      tradingKey: trading.publicKey,
      slot: TRADING_RING[0],
      interval: DELIVERY,
      productionWh: 0,
      consumptionWh: 0,
    });
    assert.is(
      reason(
        f.send(
          'meter-ok',
          signedCertificate({ sha256: nodeSha256, sign: ok.identity.signDigest }, ok.identity.publicKey, payload),
        ),
      ),
      'bad-attestation',
    );
    // above the meter's limit: 7 kW export over 900 s is 1,750 Wh, 11 kW import 2,750 Wh
    assert.is(reason(f.request(ok, { interval: DELIVERY, productionWh: 1751 }).outcome), 'above-meter-limit');
    assert.is(reason(f.request(ok, { interval: DELIVERY, consumptionWh: 2751 }).outcome), 'above-meter-limit');
    // too early: more than one interval past the next
    assert.is(reason(f.request(ok, { interval: DELIVERY + 2 }).outcome), 'too-early');
    assert.is(reason(f.request(ok, { interval: DELIVERY - 1 }).outcome), 'too-late');
    // the feeder: 1,000 Wh approved (rounded to 1,024), 600 more (rounded 1,024) would pass 1,600; 400 (512) fits
    assert.is(reason(f.request(smallA, { interval: DELIVERY, productionWh: 1000 }).outcome), 'accepted');
    const feederFull = f.request(smallB, { interval: DELIVERY, productionWh: 600 }).outcome;
    assert.is(reason(feederFull), 'above-feeder-limit');
    assert.is(
      feederFull.charge,
      false,
      "the feeder filling up is not the meter's doing: not charged to its message budget",
    );
    assert.is(f.request(smallB, { interval: DELIVERY, productionWh: 5000 }).outcome.charge, true, 'other refusals are');
    assert.is(
      reason(f.request(smallB, { interval: DELIVERY, productionWh: 400, consumptionWh: 900 }).outcome),
      'accepted',
      'a refused meter may ask again within the limit',
    );
    // one request per (meter, interval): the same again is a repeat, another is refused
    const first = f.request(ok, { interval: DELIVERY, consumptionWh: 500 });
    assert.is(first.outcome.outcome, 'accepted');
    const again = attestedRequest(ok, { interval: DELIVERY, consumptionWh: 500, tradingKey: first.tradingKey });
    assert.is(reason(f.send('meter-ok', again.signed)), 'repeat', 'the identical request (attested again) is a repeat');
    assert.is(reason(f.request(ok, { interval: DELIVERY, consumptionWh: 400 }).outcome), 'already-requested');
    // the next interval too (lookahead), then too late once its issuance time has come
    assert.is(reason(f.request(ok, { interval: DELIVERY + 1 }).outcome), 'accepted');
    f.clock.ms = f.issuer.issueAtMs(DELIVERY);
    assert.is(reason(f.request(other, { interval: DELIVERY }).outcome), 'too-late');
    // every refusal was answered on the meter's reply topic, with the interval it named
    const refusals = f.replies.filter((r) => !r.reply.issued);
    assert.equal(
      refusals.map((r) => r.reply.reason),
      [
        'not-authorized',
        'not-authorized',
        'not-authorized',
        'bad-attestation',
        'bad-attestation',
        'bad-attestation',
        'bad-attestation',
        'above-meter-limit',
        'above-meter-limit',
        'too-early',
        'too-late',
        'above-feeder-limit',
        'above-meter-limit',
        'already-requested',
        'too-late',
      ],
    );
    assert.equal(refusals[2].meterId, 'meter-ok', "a request naming another meter is answered on its topic's meter");
    assert.is(f.store.refusals().length, refusals.length, 'each refusal is recorded');
    // the repeat of an accepted request is answered once, when issued
    await f.issuer.tick();
    assert.equal(
      f.replies.filter((r) => r.meterId === 'meter-ok' && r.reply.issued).map((r) => r.reply.interval),
      [DELIVERY],
    );
    assert.is(reason(f.send('meter-ok', again.signed)), 'repeat');
    assert.equal(
      f.replies.at(-1),
      { meterId: 'meter-ok', reply: { interval: DELIVERY, issued: true } },
      'a repeat after issuance gets the same answer',
    );
    assert.is(reason(f.request(ok, { interval: DELIVERY, consumptionWh: 1 }).outcome), 'already-requested');
    // garbage is not answered: nothing in it can be trusted
    assert.is(f.issuer.handleRequest('meter-ok', new Uint8Array([1, 2, 3])).outcome, 'unreadable');
  } finally {
    await f.close();
  }
});

test('many meters: one shuffled batch per feeder, not in arrival order, split only at the per-transaction bound', async () => {
  const f = await issuanceFixture({ maxGrantsPerTransaction: 25, feederIds: { 'feeder-2': 2 } });
  try {
    const meters = Array.from({ length: 60 }, (_, i) =>
      f.meter(`m-${String(i).padStart(3, '0')}`, { feeder: i < 50 ? 'feeder-1' : 'feeder-2' }),
    );
    const arrival: Hex[] = [];
    for (const [i, meter] of meters.entries()) {
      const { outcome, tradingKey } = f.request(meter, {
        interval: DELIVERY,
        productionWh: i % 2 ? 100 + i : 0,
        consumptionWh: i % 2 ? 0 : 50 + i,
      });
      assert.is(outcome.outcome, 'accepted');
      arrival.push(keyIdOfPoint(tradingKey.publicKey));
    }
    f.toIssueTime(DELIVERY);
    await f.issuer.tick();
    const byFeeder = new Map<number, Hex[]>();
    for (const sent of f.issuer.sent)
      byFeeder.set(sent.feederId, [...(byFeeder.get(sent.feederId) ?? []), ...sent.keyIds]);
    assert.equal(
      f.issuer.sent.map((s) => s.keyIds.length).sort(),
      [10, 25, 25],
      '50 grants of feeder-1 in two transactions of 25, 10 of feeder-2 in one',
    );
    const feeder1 = byFeeder.get(feederIdOf('feeder-1'))!;
    assert.equal([...feeder1].sort(), arrival.slice(0, 50).sort(), 'every approved request of the feeder, once');
    assert.not.equal(
      feeder1,
      arrival.slice(0, 50),
      'not in arrival order (a CSPRNG permutation of 50: equal with probability 1/50!)',
    );
    // the chain's order is the batch's order
    const events = await assetIssued(f);
    const chainOrder = events
      .filter((e) => e.feeder === feederIdOf('feeder-1'))
      .sort((x, y) => (x.txHash === y.txHash ? x.logIndex - y.logIndex : 0))
      .map((e) => e.keyId);
    assert.equal(chainOrder, feeder1);
    assert.is(events.length, 60);
  } finally {
    await f.close();
  }
});

test('a DSO restarted between request and issuance issues exactly once, also when it stopped after sending a batch', async () => {
  // three crashes in turn, on one chain: before issuance; after the transaction was mined but before the
  // receipt was recorded; after the transaction was sent but before its hash was recorded
  const db = tempDb();
  const f = await issuanceFixture({ assetsDb: db });
  try {
    const meters = Array.from({ length: 6 }, (_, i) => f.meter(`crash-${i}`));
    const keys: Hex[][] = [];
    for (const [round, interval] of [DELIVERY, DELIVERY + 1, DELIVERY + 2].entries()) {
      if (round > 0) f.clock.ms = f.issuer.issueAtMs(interval - 1) + 1; // requests for `interval` are open now
      keys.push(
        meters.map((m, i) => {
          const { outcome, tradingKey } = f.request(m, { interval, productionWh: 100 * (i + 1) });
          assert.is(outcome.outcome, 'accepted', `round ${round}`);
          return keyIdOfPoint(tradingKey.publicKey);
        }),
      );
    }
    // 1. stopped before issuance: the restarted DSO finds the requests and issues them
    f.restart();
    f.toIssueTime(DELIVERY);
    await f.issuer.tick();
    assert.is(f.issuer.sent.length, 1);
    // 2. stopped after the batch was mined, before it was recorded
    let issuer = f.restart();
    f.toIssueTime(DELIVERY + 1);
    f.store.markBatchIssued = () => {
      throw new Error('killed');
    };
    await issuer.issueInterval(DELIVERY + 1);
    assert.is(issuer.sent.length, 0, 'the batch was mined but not recorded');
    assert.is(f.store.batchesOf(DELIVERY + 1)[0].status, 'sent');
    issuer = f.restart();
    await issuer.tick();
    assert.is(issuer.sent.length, 0, "the restarted DSO found the sent transaction's receipt and sent nothing");
    // 3. stopped after sending, before the hash was recorded: found by the chain's AssetIssued events
    issuer = f.restart();
    f.toIssueTime(DELIVERY + 2);
    f.store.markBatchSent = () => {
      throw new Error('killed');
    };
    await issuer.issueInterval(DELIVERY + 2);
    assert.is(f.store.batchesOf(DELIVERY + 2)[0].status, 'prepared');
    issuer = f.restart();
    await issuer.tick();
    assert.is(issuer.sent.length, 0, 'reconciled with AssetIssued: not sent again');

    const events = await assetIssued(f);
    for (const [round, roundKeys] of keys.entries()) {
      for (const [i, keyId] of roundKeys.entries()) {
        const issued = events.filter((e) => e.keyId === keyId);
        assert.is(issued.length, 1, `round ${round} meter ${i}: exactly one AssetIssued`);
        assert.is(
          (await f.dev.market.holding(keyId, DELIVERY + round)).production,
          BigInt(roundedGrant(100 * (i + 1), 1750)),
        );
      }
      assert.ok(
        f.store.requestsOf(DELIVERY + round).every((r) => r.status === 'issued' && r.repliedAtMs !== undefined),
      );
    }
    assert.is(f.replies.filter((r) => r.reply.issued).length, 18, 'each meter answered once per interval');
    // a request after issuance was sent is too late
    f.clock.ms = f.issuer.issueAtMs(DELIVERY + 2) - 1;
    assert.equal(f.request(f.meter('late'), { interval: DELIVERY + 2 }).outcome.outcome, 'refused');
    assert.equal(f.replies.at(-1)!.reply, { interval: DELIVERY + 2, issued: false, reason: 'too-late' });
  } finally {
    await f.close();
  }
});

test('meters are authorized on chain when registered and banned when revoked, naming their trading keys', async () => {
  const f = await issuanceFixture();
  try {
    const a = f.meter('auth-a');
    const b = f.meter('auth-b');
    const { tradingKey } = f.request(b, { interval: DELIVERY, productionWh: 100 });
    await f.issuer.tick();
    const status = async (identityKey: Uint8Array) =>
      Number(
        await f.dev.ledger.publicClient.readContract({
          address: f.dev.market.deployment.market,
          abi,
          functionName: 'meterStatus',
          args: [meterHashOf(identityKey)],
        }),
      );
    assert.is(await status(a.identity.publicKey), 1, 'authorized');
    assert.is(await status(b.identity.publicKey), 1);
    // b's assets are issued and it offers them; then it is revoked: the ban withdraws the open offer
    f.toIssueTime(DELIVERY);
    await f.issuer.tick();
    const offer = f.dev.offer(asTradingKey(tradingKey), { side: 'ask', interval: DELIVERY, wh: 100, limitPrice: 150 });
    await f.dev.market.submitOffer(f.dev.relayer, offer.signedBytes, offer.signature);
    assert.is((await f.dev.market.holding(keyIdOfPoint(tradingKey.publicKey), DELIVERY)).productionLocked, 100n);
    f.registry.revoke('auth-b', 'stolen');
    await f.issuer.tick();
    assert.is(await status(b.identity.publicKey), 2, 'banned');
    const withdrawn = await f.dev.ledger.publicClient.getContractEvents({
      address: f.dev.market.deployment.market,
      abi,
      eventName: 'OfferWithdrawn',
      fromBlock: 0n,
    });
    assert.equal(
      (withdrawn as unknown as Array<{ args: { digest: Hex; by: number } }>).map((l) => [
        l.args.digest,
        Number(l.args.by),
      ]),
      [[offer.digest, 1]],
      'the open offer withdrawn by the ban',
    );
    assert.is(
      (await f.dev.market.holding(keyIdOfPoint(tradingKey.publicKey), DELIVERY)).productionLocked,
      0n,
      'its asset returned',
    );
    assert.is(await status(a.identity.publicKey), 1);
    const revoked = await f.dev.ledger.publicClient.readContract({
      address: f.dev.market.deployment.market,
      abi,
      functionName: 'revokedKey',
      args: [keyIdOfPoint(tradingKey.publicKey)],
    });
    assert.is(revoked, true, "the banned meter's trading key is revoked");
    assert.is(f.request(b, { interval: DELIVERY + 1 }).outcome.outcome, 'refused');
  } finally {
    await f.close();
  }
});

test('a meter revoked between request and issuance gets nothing and is answered not-authorized; a key revoked on chain leaves its batch', async () => {
  const f = await issuanceFixture();
  try {
    const [a, b, c] = ['rv-a', 'rv-b', 'rv-c'].map((id) => f.meter(id));
    const keys = [a, b, c].map((m) =>
      keyIdOfPoint(f.request(m, { interval: DELIVERY, productionWh: 100 }).tradingKey.publicKey),
    );
    await f.issuer.tick();
    f.registry.revoke('rv-b', 'meter stolen');
    // rv-c's key is revoked on chain behind the DSO's back (its registry entry stays active): the batch reverts
    await f.dev.market.ban(f.dev.dso, meterHashOf(c.identity.publicKey), [keys[2]], []);
    f.toIssueTime(DELIVERY);
    await f.issuer.tick();
    const events = await assetIssued(f);
    assert.equal(
      events.map((e) => e.keyId),
      [keys[0].toLowerCase()],
      'only rv-a is issued',
    );
    assert.equal(f.store.request('rv-b', DELIVERY)!.status, 'expired');
    assert.equal(f.store.request('rv-c', DELIVERY)!.reason, 'not-authorized');
    const byMeter = Object.fromEntries(f.replies.map((r) => [r.meterId, r.reply]));
    assert.equal(byMeter, {
      'rv-a': { interval: DELIVERY, issued: true },
      'rv-b': { interval: DELIVERY, issued: false, reason: 'not-authorized' },
      'rv-c': { interval: DELIVERY, issued: false, reason: 'not-authorized' },
    });
    const banned = await f.dev.ledger.publicClient.readContract({
      address: f.dev.market.deployment.market,
      abi,
      functionName: 'revokedKey',
      args: [keys[1]],
    });
    assert.is(banned, true, 'rv-b was banned with its key');
  } finally {
    await f.close();
  }
});

test('the ledger down at issuance time: issued once it is back before the gate closes; answered too-late when it comes back after', async () => {
  const f = await issuanceFixture();
  try {
    const client = f.dev.ledger.publicClient;
    const getContractEvents = client.getContractEvents;
    const down = () => {
      client.getContractEvents = (() =>
        Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:8545'))) as typeof getContractEvents;
    };
    const up = () => {
      client.getContractEvents = getContractEvents;
    };
    const early = f.meter('down-early');
    const late = f.meter('down-late');
    const zero = f.meter('down-zero');
    f.request(early, { interval: DELIVERY, productionWh: 100 });
    await f.issuer.tick();
    down();
    f.toIssueTime(DELIVERY);
    await f.issuer.tick();
    assert.is(f.issuer.sent.length, 0);
    assert.is(f.store.intervalState(DELIVERY), 'closed', 'issuance begun, not finished');
    assert.is(
      f.request(late, { interval: DELIVERY }).outcome.outcome,
      'refused',
      'no request joins an interval being issued',
    );
    up();
    await f.issuer.tick();
    assert.is(f.issuer.sent.length, 1, 'issued once the ledger is back');
    assert.is(f.store.intervalState(DELIVERY), 'issued');

    // the next interval: the ledger stays down past its gate
    f.request(early, { interval: DELIVERY + 1, productionWh: 100 });
    f.request(zero, { interval: DELIVERY + 1 });
    down();
    f.toIssueTime(DELIVERY + 1);
    await f.issuer.tick();
    f.clock.ms = f.issuer.gateClosureMs(DELIVERY + 1);
    up();
    await f.issuer.tick();
    assert.is(f.issuer.sent.length, 1, 'nothing sent after the gate');
    assert.is(f.store.intervalState(DELIVERY + 1), 'expired');
    const answers = f.replies
      .filter((r) => r.reply.interval === DELIVERY + 1)
      .map((r) => [r.meterId, r.reply.issued, r.reply.reason])
      .sort();
    assert.equal(
      answers,
      [
        ['down-early', false, 'too-late'],
        ['down-zero', false, 'too-late'],
      ],
      "the zero request shares its feeder's outcome",
    );
    assert.equal(f.store.summary(), { requested: 3, issued: 1, expired: 2, pending: 0, refused: 1, batches: 1 });
  } finally {
    await f.close();
  }
});

test('on a DSO clock 200 times faster than real time, the running issuer issues at the issuance time, not a tick late', async () => {
  const f = await issuanceFixture();
  const start = f.clock.ms;
  const t0 = Date.now();
  const fast = await issuanceFixture({ dev: f.dev, now: () => start + (Date.now() - t0) * 200 });
  try {
    const m = fast.meter('fast-meter');
    assert.is(fast.request(m, { interval: DELIVERY, consumptionWh: 100 }).outcome.outcome, 'accepted');
    fast.issuer.start();
    await until(
      () => fast.store.request('fast-meter', DELIVERY)!.status !== 'approved',
      () => 'issuance',
      10_000,
    );
    const record = fast.store.request('fast-meter', DELIVERY)!;
    assert.is(record.status, 'issued');
    // 900 s intervals at 200x are 4.5 s of real time; a default tick (5 s real) would be after the gate
    const lateBy = record.issuedAtMs! - fast.issuer.issueAtMs(DELIVERY);
    assert.ok(lateBy >= 0 && lateBy < 0.1 * INTERVAL_SECONDS * 1000, `issued ${lateBy} ms (DSO clock) after its time`);
  } finally {
    await fast.close();
    await f.close();
  }
});

test("configured prices are set on chain from the next interval, and a bid's money follows them", async () => {
  const f = await issuanceFixture({ prices: { consumption: 320, production: 90 } });
  try {
    const buyer = f.meter('price-buyer');
    const { tradingKey } = f.request(buyer, { interval: DELIVERY, consumptionWh: 100 });
    await f.issuer.tick();
    assert.equal(await f.issuer.pricesAt(DELIVERY), { consumption: 320, production: 90 });
    f.toIssueTime(DELIVERY);
    await f.issuer.tick();
    assert.is((await f.dev.market.money(keyIdOfPoint(tradingKey.publicKey))).free, 128n * 320n);
    assert.is(f.store.request('price-buyer', DELIVERY)!.consumptionPrice, 320);
  } finally {
    await f.close();
  }
});

test("requests made by the emulated ATECC608 (trading key generated and attested in a ring slot, also by the firmware's market/asset-request.ts) are accepted; one attested for a reading slot is not", async () => {
  const f = await issuanceFixture();
  const chip = provisionedSecureElement();
  try {
    const slot = TRADING_RING[3];
    const meterId = 'se-meter';
    const deviceCertificate = issueDeviceCertificate(f.operator.key, {
      meterId,
      feeder: 'feeder-1',
      identityKey: chip.identityKey,
      mixKey: chip.mixKey,
      limits: LIMITS,
      issuedAt: Math.floor(Date.now() / 1000),
    });
    f.registry.registerMeter(deviceCertificate);
    const made = (keySlot: number, claimedSlot: number) => {
      const tradingKey = Uint8Array.of(4, ...chip.se.genKey(keySlot));
      const payload = encodeAssetRequest({
        meterId,
        tradingKey,
        slot: claimedSlot,
        interval: DELIVERY,
        productionWh: 0,
        consumptionWh: 300,
      });
      return attestedCertificate(
        nodeSha256,
        (nonce) => chip.se.attestKey(IDENTITY_SLOT, keySlot, nonce).signature,
        chip.identityKey,
        payload,
      );
    };
    const readingKeyClaimedAsTrading = made(READING_KEY_SLOTS[1], slot);
    const outcome = f.send(meterId, readingKeyClaimedAsTrading);
    assert.is(outcome.outcome === 'refused' && outcome.reason, 'bad-attestation');
    assert.is(f.send(meterId, made(slot, slot)).outcome, 'accepted');
    // the firmware's own request path (market/asset-request.ts: attested, then sealed with the SE's TempKey ECDH)
    const nextSlot = TRADING_RING[4];
    const tradingKey = Uint8Array.of(4, ...chip.se.genKey(nextSlot));
    const envelope = sealedAssetRequest(chip.se, nodeCryptoPrimitives, chip.identityKey, f.dsoKey.publicKey, {
      meterId,
      tradingKey,
      slot: nextSlot,
      interval: DELIVERY + 1,
      productionWh: 100,
      consumptionWh: 0,
    });
    assert.is(f.issuer.handleRequest(meterId, envelope).outcome, 'accepted');
    f.toIssueTime(DELIVERY);
    await f.issuer.tick();
    assert.is((await assetIssued(f)).length, 1);
    f.toIssueTime(DELIVERY + 1);
    await f.issuer.tick();
    assert.is((await assetIssued(f)).filter((e) => e.keyId === keyIdOfPoint(tradingKey)).length, 1);
  } finally {
    chip.close();
    await f.close();
  }
});

test.run();
