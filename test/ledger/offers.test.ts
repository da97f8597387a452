// The market's offer path on the in-process EVM (Osaka): every signature is checked on chain by P256VERIFY,
// and each refusal of issue 10 is its own case — forged or mutated signatures, an offer above the asset, a
// double spend, a banned meter's key, an offer after gate closure, a replay, malformed bytes — plus rescinding.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { keccak256, stringToBytes, toHex } from 'viem';
import { p256 } from '@noble/curves/nist.js';
import { grantFor, REFUSALS } from '../../host-tools/ledger/market.ts';
import { encodeRescission, OFFER_LENGTH } from '../../firmware/src/protocol/offer.ts';
import { offerDigest } from '../../host-tools/ledger/offer-digest.ts';
import { generateKeyPairSync } from 'node:crypto';
import { generateTradingKey, keyIdOf, tradingKeyFrom } from '../../host-tools/ledger/trading-key.ts';
import { DELIVERY, eventsOf, FEEDER, marketFixture, revertOf, type MarketFixture } from './market-fixture.ts';

const test = suite('ledger offers');

async function refusal(call: Promise<unknown>): Promise<string> {
  const { name, args } = await revertOf(call);
  assert.is(name, 'OfferRefused');
  return REFUSALS[Number(args[0])];
}

async function seller(f: MarketFixture, production = 1000) {
  const key = generateTradingKey();
  await f.market.issue(f.dso, FEEDER, [grantFor(key.publicKey, DELIVERY, { production })]);
  return key;
}

test('an offer signed by node:crypto verifies on chain through P256VERIFY and locks the asset', async () => {
  const f = await marketFixture();
  const key = await seller(f);
  const o = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 600, limitPrice: 150 });
  const receipt = await f.market.submitOffer(f.relayer, o.signedBytes, o.signature);
  const [accepted] = eventsOf(receipt);
  assert.is(accepted.eventName, 'OfferAccepted');
  assert.is(accepted.args.digest, o.digest);
  assert.is(accepted.args.keyId, key.keyId);
  assert.equal(await f.market.holding(key.keyId, DELIVERY), {
    production: 1000n,
    consumption: 0n,
    productionLocked: 600n,
    consumptionLocked: 0n,
  });
});

test('an offer signed by @noble/curves verifies on chain too (prehashed SHA-256, r || s)', async () => {
  const f = await marketFixture();
  const secret = p256.utils.randomSecretKey();
  const point = p256.getPublicKey(secret, false);
  const publicKey = { x: point.slice(1, 33), y: point.slice(33) };
  const key = { publicKey, keyId: keyIdOf(publicKey), sign: (m: Uint8Array) => p256.sign(m, secret, { lowS: false }) };
  await f.market.issue(f.dso, FEEDER, [grantFor(publicKey, DELIVERY, { production: 10 })]);
  const o = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 10, limitPrice: 1 });
  await f.market.submitOffer(f.relayer, o.signedBytes, o.signature);
  assert.is(await f.market.offerCount(DELIVERY), 1);
});

test('forged and mutated signatures are refused, and so are bytes changed after signing', async () => {
  const f = await marketFixture();
  const key = await seller(f);
  const o = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 100, limitPrice: 150 });
  const other = generateTradingKey();
  assert.is(await refusal(f.market.submitOffer(f.relayer, o.signedBytes, other.sign(o.signedBytes))), 'BadSignature');
  const mutated = o.signature.slice();
  mutated[40] ^= 0x01;
  assert.is(await refusal(f.market.submitOffer(f.relayer, o.signedBytes, mutated)), 'BadSignature');
  const changed = o.signedBytes.slice();
  changed[40] ^= 0x01; // wh 100 → 101, the signature still over 100
  assert.is(await refusal(f.market.submitOffer(f.relayer, changed, o.signature)), 'BadSignature');
  assert.is(await refusal(f.market.submitOffer(f.relayer, o.signedBytes, o.signature.slice(0, 63))), 'BadSignature');
  assert.is(await f.market.offerCount(DELIVERY), 0);
});

test('an offer above the asset and a bid above the money are refused', async () => {
  const f = await marketFixture();
  const key = await seller(f, 500);
  const ask = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 501, limitPrice: 150 });
  assert.is(await refusal(f.market.submitOffer(f.relayer, ask.signedBytes, ask.signature)), 'InsufficientAsset');
  const elsewhere = f.offer(key, { side: 'ask', interval: DELIVERY + 1, wh: 1, limitPrice: 150 });
  assert.is(
    await refusal(f.market.submitOffer(f.relayer, elsewhere.signedBytes, elsewhere.signature)),
    'InsufficientAsset',
  );
  const buyer = generateTradingKey();
  await f.market.issue(f.dso, FEEDER, [
    grantFor(buyer.publicKey, DELIVERY, { consumption: 100, money: 100n * 200n - 1n }),
  ]);
  const bid = f.offer(buyer, { side: 'bid', interval: DELIVERY, wh: 100, limitPrice: 200 });
  assert.is(await refusal(f.market.submitOffer(f.relayer, bid.signedBytes, bid.signature)), 'InsufficientMoney');
  const noAsset = f.offer(key, { side: 'bid', interval: DELIVERY, wh: 1, limitPrice: 1 });
  assert.is(
    await refusal(f.market.submitOffer(f.relayer, noAsset.signedBytes, noAsset.signature)),
    'InsufficientAsset',
  );
});

test('a double spend of one asset is refused: the second offer finds it locked', async () => {
  const f = await marketFixture();
  const key = await seller(f, 800);
  const first = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 500, limitPrice: 150, seq: 1 });
  const second = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 500, limitPrice: 120, seq: 2 });
  await f.market.submitOffer(f.relayer, first.signedBytes, first.signature);
  assert.is(await refusal(f.market.submitOffer(f.relayer, second.signedBytes, second.signature)), 'InsufficientAsset');
  const rest = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 300, limitPrice: 120, seq: 3 });
  await f.market.submitOffer(f.relayer, rest.signedBytes, rest.signature);
  assert.equal((await f.market.holding(key.keyId, DELIVERY)).productionLocked, 800n);
});

test('a replayed offer is refused, with its own or another valid signature (r, n − s)', async () => {
  const f = await marketFixture();
  const key = await seller(f);
  const o = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 100, limitPrice: 150 });
  await f.market.submitOffer(f.relayer, o.signedBytes, o.signature);
  assert.is(await refusal(f.market.submitOffer(f.relayer, o.signedBytes, o.signature)), 'Replayed');
  const s = BigInt(toHex(o.signature.slice(32)));
  const flipped = new Uint8Array([
    ...o.signature.slice(0, 32),
    ...Buffer.from((p256.Point.CURVE().n - s).toString(16).padStart(64, '0'), 'hex'),
  ]);
  assert.is(await refusal(f.market.submitOffer(f.relayer, o.signedBytes, flipped)), 'Replayed');
});

test("a banned meter's trading keys cannot offer, and its open offers are withdrawn with their assets returned", async () => {
  const f = await marketFixture();
  const meter = keccak256(stringToBytes('meter-0042 identity key'));
  await f.market.authorize(f.dso, [meter]);
  const key = await seller(f);
  const open = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 400, limitPrice: 150, seq: 1 });
  await f.market.submitOffer(f.relayer, open.signedBytes, open.signature);
  const receipt = await f.market.ban(f.dso, meter, [key.keyId], [open.digest]);
  assert.equal(
    eventsOf(receipt).map((e) => e.eventName),
    ['MeterBanned', 'KeyRevoked', 'OfferWithdrawn'],
  );
  assert.equal((await f.market.holding(key.keyId, DELIVERY)).productionLocked, 0n);
  const later = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 100, limitPrice: 150, seq: 2 });
  assert.is(await refusal(f.market.submitOffer(f.relayer, later.signedBytes, later.signature)), 'KeyRevoked');
  const { name } = await revertOf(
    f.market.issue(f.dso, FEEDER, [grantFor(key.publicKey, DELIVERY, { production: 1 })]),
  );
  assert.is(name, 'GrantToRevokedKey');
});

test('an offer after gate closure is refused', async () => {
  const f = await marketFixture();
  const key = await seller(f);
  await f.passGateClosure(DELIVERY);
  const o = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 100, limitPrice: 150 });
  assert.is(await refusal(f.market.submitOffer(f.relayer, o.signedBytes, o.signature)), 'GateClosed');
});

test('malformed offers are refused: length, tag, side, zero energy, another chain or market', async () => {
  const f = await marketFixture();
  const key = await seller(f);
  const o = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 100, limitPrice: 150 });
  const variants: [string, (b: Uint8Array) => Uint8Array][] = [
    ['one byte short', (b) => b.slice(0, OFFER_LENGTH - 1)],
    ['one byte more', (b) => new Uint8Array([...b, 0])],
    [
      'tag',
      (b) => {
        b[3] = 0x32;
        return b;
      },
    ],
    [
      'chain id',
      (b) => {
        b[11] ^= 1;
        return b;
      },
    ],
    [
      'market address',
      (b) => {
        b[31] ^= 1;
        return b;
      },
    ],
    [
      'side 3',
      (b) => {
        b[32] = 3;
        return b;
      },
    ],
    [
      'zero energy',
      (b) => {
        b.fill(0, 37, 41);
        return b;
      },
    ],
  ];
  for (const [what, mutate] of variants) {
    const bytes = mutate(o.signedBytes.slice());
    assert.is(await refusal(f.market.submitOffer(f.relayer, bytes, key.sign(bytes))), 'Malformed', what);
  }
  assert.is(await refusal(f.market.submitOffer(f.relayer, new Uint8Array(), new Uint8Array())), 'Malformed');
});

test('a batch reports each refused offer by event and accepts the rest', async () => {
  const f = await marketFixture();
  const key = await seller(f, 300);
  const good = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 200, limitPrice: 150, seq: 1 });
  const tooMuch = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 200, limitPrice: 150, seq: 2 });
  const forged = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 50, limitPrice: 150, seq: 3 });
  forged.signature[5] ^= 0x80;
  const receipt = await f.market.submitOffers(f.relayer, [good, tooMuch, forged, good]);
  const outcome = eventsOf(receipt).map((e) =>
    e.eventName === 'OfferRejected' ? REFUSALS[Number(e.args.reason)] : e.eventName,
  );
  assert.equal(outcome, ['OfferAccepted', 'InsufficientAsset', 'BadSignature', 'Replayed']);
  assert.equal(eventsOf(receipt)[1].args.digest, tooMuch.digest);
});

test('rescinding: only the offer’s key, only before gate closure; the asset is free again', async () => {
  const f = await marketFixture();
  const key = await seller(f);
  const o = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 700, limitPrice: 150 });
  await f.market.submitOffer(f.relayer, o.signedBytes, o.signature);
  const rescission = encodeRescission(f.market.domain, offerDigest(o.signedBytes), key.publicKey);
  const stranger = generateTradingKey();
  assert.is(await refusal(f.market.rescind(f.relayer, rescission, stranger.sign(rescission))), 'BadSignature');
  const claimed = encodeRescission(f.market.domain, offerDigest(o.signedBytes), stranger.publicKey);
  assert.is(await refusal(f.market.rescind(f.relayer, claimed, stranger.sign(claimed))), 'BadSignature');
  const receipt = await f.market.rescind(f.relayer, rescission, key.sign(rescission));
  assert.is(eventsOf(receipt)[0].eventName, 'OfferWithdrawn');
  assert.equal((await f.market.holding(key.keyId, DELIVERY)).productionLocked, 0n);
  assert.is(await refusal(f.market.rescind(f.relayer, rescission, key.sign(rescission))), 'NotOpen');
  assert.is(await refusal(f.market.submitOffer(f.relayer, o.signedBytes, o.signature)), 'Replayed');

  const next = f.offer(key, { side: 'ask', interval: DELIVERY, wh: 100, limitPrice: 150, seq: 1 });
  await f.market.submitOffer(f.relayer, next.signedBytes, next.signature);
  await f.passGateClosure(DELIVERY);
  const late = encodeRescission(f.market.domain, offerDigest(next.signedBytes), key.publicKey);
  assert.is(await refusal(f.market.rescind(f.relayer, late, key.sign(late))), 'GateClosed');
});

test('regulatory transactions: only the DSO; prices not in the past; issuance bounded by the feeder limit', async () => {
  const f = await marketFixture();
  assert.is((await revertOf(f.market.authorize(f.anyone, []))).name, 'NotDso');
  assert.is((await revertOf(f.market.issue(f.relayer, FEEDER, []))).name, 'NotDso');
  assert.is((await revertOf(f.market.setPrices(f.dso, DELIVERY - 1, 300, 100))).name, 'PricesInPast');
  assert.is((await revertOf(f.market.setPrices(f.dso, DELIVERY + 5, 100, 300))).name, 'PricesInverted');
  await f.market.setFeederLimit(f.dso, 9, 1000n, 500n);
  const a = generateTradingKey();
  const b = generateTradingKey();
  await f.market.issue(f.dso, 9, [grantFor(a.publicKey, DELIVERY, { production: 600, consumption: 500 })]);
  assert.equal(
    (await revertOf(f.market.issue(f.dso, 9, [grantFor(b.publicKey, DELIVERY, { production: 401 })]))).name,
    'FeederLimitExceeded',
  );
  await f.market.issue(f.dso, 9, [grantFor(b.publicKey, DELIVERY, { production: 400 })]);
  assert.is(
    (await revertOf(f.market.issue(f.dso, 8, [grantFor(b.publicKey, DELIVERY, { production: 1 })]))).name,
    'UnknownFeeder',
  );
  assert.is(
    (await revertOf(f.market.issue(f.dso, 9, [grantFor(b.publicKey, DELIVERY - 1, { production: 1 })]))).name,
    'IssuedTooLate',
  );
});

test('a key made by node:crypto from a JWK behaves like a generated one', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const key = tradingKeyFrom(privateKey, publicKey);
  assert.is(key.keyId, keyIdOf(key.publicKey));
  assert.is(key.sign(new Uint8Array([1])).length, 64);
});

test.run();
