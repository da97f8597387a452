// The signed bytes of docs/ledger.md, built here field by field from the documented table (not by
// the codec): the shared codec (firmware/src/protocol/offer.ts) must produce and parse exactly them, and the
// contract must accept them.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { toHex } from 'viem';
import { grantFor } from '../../host-tools/ledger/market.ts';
import {
  decodeOffer,
  encodeOffer,
  encodeOfferMessage,
  encodeRescission,
  OfferBytesError,
  splitOfferMessage,
} from '../../firmware/src/protocol/offer.ts';
import { offerDigest } from '../../host-tools/ledger/offer-digest.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import { DELIVERY, FEEDER, marketFixture } from './market-fixture.ts';

const test = suite('ledger offer bytes');

const be = (value: number | bigint, bytes: number) =>
  Buffer.from(
    BigInt(value)
      .toString(16)
      .padStart(bytes * 2, '0'),
    'hex',
  );

test('an offer and its rescission as the table in docs/ledger.md lays them out', async () => {
  const f = await marketFixture();
  const key = generateTradingKey();
  const market = Buffer.from(f.market.deployment.market.slice(2), 'hex');
  const documented = new Uint8Array(
    Buffer.concat([
      Buffer.from('VGO1'),
      be(31337, 8),
      market,
      be(1, 1),
      be(DELIVERY, 4),
      be(600, 4),
      be(150, 4),
      be(7, 4),
      key.publicKey.x,
      key.publicKey.y,
    ]),
  );
  assert.is(documented.length, 113);
  const built = encodeOffer(f.market.domain, {
    side: 'ask',
    interval: DELIVERY,
    wh: 600,
    limitPrice: 150,
    seq: 7,
    key: key.publicKey,
  });
  assert.is(toHex(built), toHex(documented));
  await f.market.issue(f.dso, FEEDER, [grantFor(key.publicKey, DELIVERY, { production: 600 })]);
  await f.market.submitOffer(f.relayer, documented, key.sign(documented));

  const rescission = new Uint8Array(
    Buffer.concat([
      Buffer.from('VGR1'),
      be(31337, 8),
      market,
      offerDigest(documented),
      key.publicKey.x,
      key.publicKey.y,
    ]),
  );
  assert.is(toHex(encodeRescission(f.market.domain, offerDigest(documented), key.publicKey)), toHex(rescission));
  await f.market.rescind(f.relayer, rescission, key.sign(rescission));
  assert.equal((await f.market.holding(key.keyId, DELIVERY)).productionLocked, 0n);
});

test('the builder refuses fields the layout cannot carry', () => {
  const key = generateTradingKey().publicKey;
  const domain = { chainId: 1, market: `0x${'11'.repeat(20)}` };
  const base = { side: 'bid' as const, interval: 1, wh: 1, limitPrice: 1, seq: 0, key };
  for (const bad of [
    { wh: -1 },
    { interval: 2 ** 32 },
    { limitPrice: 1.5 },
    { key: { x: key.x.slice(1), y: key.y } },
  ]) {
    assert.throws(
      () => encodeOffer(domain, { ...base, ...bad }),
      (err: Error) => err instanceof OfferBytesError,
    );
  }
  assert.throws(
    () => encodeOffer({ chainId: 1, market: '0x1234' }, base),
    (err: Error) => err instanceof OfferBytesError,
  );
  assert.throws(
    () => encodeOffer(domain, { ...base, wh: 0 }),
    (err: Error) => err instanceof OfferBytesError,
    'zero Wh is Malformed on chain',
  );
});

test('decoding gives back every field, and refuses what the contract refuses as Malformed', () => {
  const key = generateTradingKey().publicKey;
  const domain = { chainId: 2 ** 40 + 5, market: `0x${'ab'.repeat(19)}cd` };
  const fields = { side: 'bid' as const, interval: 0xfffffffe, wh: 123_456, limitPrice: 2 ** 31 + 1, seq: 9, key };
  const bytes = encodeOffer(domain, fields);
  const decoded = decodeOffer(bytes);
  assert.equal(
    { ...decoded, key: { x: toHex(decoded.key.x), y: toHex(decoded.key.y) } },
    { ...fields, domain, key: { x: toHex(key.x), y: toHex(key.y) } },
  );
  const signature = new Uint8Array(64).fill(7);
  const message = encodeOfferMessage(bytes, signature);
  assert.is(message.length, 177);
  const split = splitOfferMessage(message);
  assert.is(toHex(split.signedBytes), toHex(bytes));
  assert.is(toHex(split.signature), toHex(signature));
  const malformed: [string, Uint8Array][] = [
    ['short', bytes.subarray(0, 112)],
    ['tag', Object.assign(new Uint8Array(bytes), { 3: 0x32 })],
    ['side', Object.assign(new Uint8Array(bytes), { 32: 3 })],
    ['zero Wh', Object.assign(new Uint8Array(bytes), { 37: 0, 38: 0, 39: 0, 40: 0 })],
  ];
  for (const [name, bad] of malformed)
    assert.throws(
      () => decodeOffer(bad),
      (err: Error) => err instanceof OfferBytesError && (err as OfferBytesError).code === 'offer-bytes',
      name,
    );
  assert.throws(
    () => splitOfferMessage(message.subarray(1)),
    (err: Error) => err instanceof OfferBytesError,
  );
});

test.run();
