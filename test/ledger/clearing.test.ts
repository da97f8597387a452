// Clearing and settlement on the in-process EVM: a fast-check property holds the contract's computed result,
// and the result its verifier accepts, to an independent TypeScript reference on random order books (ties and
// empty sides included); settlement pays and swaps assets per offer and conserves each asset type per interval.
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { grantFor, type ClearingResult } from '../../host-tools/ledger/market.ts';
import { generateTradingKey, type TradingKey } from '../../host-tools/ledger/trading-key.ts';
import {
  CONSUMPTION_PRICE,
  DELIVERY,
  eventsOf,
  FEEDER,
  marketFixture,
  PRODUCTION_PRICE,
  revertOf,
  type MarketFixture,
} from './market-fixture.ts';
import { referenceClearing, type BookOffer } from './reference-clearing.ts';

const test = suite('ledger clearing');

interface PlacedOffer extends BookOffer {
  key: TradingKey;
}

/** Grants each offer's key exactly what its offer needs, submits the offers in one batch, closes the gate. */
async function placeBook(f: MarketFixture, interval: number, book: Omit<BookOffer, 'index'>[]): Promise<PlacedOffer[]> {
  const placed = book.map((o, index) => ({ ...o, index, key: generateTradingKey() }));
  if (placed.length > 0) {
    await f.market.issue(
      f.dso,
      FEEDER,
      placed.map((o) =>
        grantFor(
          o.key.publicKey,
          interval,
          o.side === 'ask' ? { production: o.wh } : { consumption: o.wh, money: BigInt(o.wh * o.limitPrice) },
        ),
      ),
    );
    const receipt = await f.market.submitOffers(
      f.relayer,
      placed.map((o) => f.offer(o.key, { side: o.side, interval, wh: o.wh, limitPrice: o.limitPrice })),
    );
    assert.ok(eventsOf(receipt).every((e) => e.eventName === 'OfferAccepted'));
  }
  await f.passGateClosure(interval);
  return placed;
}

function onChainShape(r: ReturnType<typeof referenceClearing>): ClearingResult {
  return { price: r.price, volumeWh: BigInt(r.volumeWh), ask: r.ask, bid: r.bid };
}

/** Each key's holding and money after settlement, as the reference's fills say they must be. */
async function assertSettled(
  f: MarketFixture,
  interval: number,
  placed: PlacedOffer[],
  fills: Map<number, number>,
  price: number,
) {
  for (const o of placed) {
    const fill = BigInt(fills.get(o.index) ?? 0);
    const holding = await f.market.holding(o.key.keyId, interval);
    const money = await f.market.money(o.key.keyId);
    const wh = BigInt(o.wh);
    if (o.side === 'ask') {
      assert.equal(
        [holding.production, holding.consumption, money.free],
        [wh - fill, fill, fill * BigInt(price)],
        `ask ${o.index}`,
      );
    } else {
      assert.equal(
        [holding.consumption, holding.production, money.free],
        [wh - fill, fill, wh * BigInt(o.limitPrice) - fill * BigInt(price)],
        `bid ${o.index}`,
      );
    }
    assert.equal([holding.productionLocked, holding.consumptionLocked, money.locked], [0n, 0n, 0n]);
  }
}

const LIMITS = [60, 100, 150, 150, 200, 250, 300, 340]; // few values, so ties are common; some beyond the DSO's prices
const offerArb = fc.record({
  side: fc.constantFrom<'ask' | 'bid'>('ask', 'bid'),
  wh: fc.integer({ min: 1, max: 40 }),
  limitPrice: fc.constantFrom(...LIMITS),
});
const bookArb = fc.oneof(
  fc.array(offerArb, { maxLength: 14 }),
  fc.array(
    offerArb.map((o) => ({ ...o, side: 'ask' as const })),
    { maxLength: 5 },
  ),
  fc.array(
    offerArb.map((o) => ({ ...o, side: 'bid' as const })),
    { maxLength: 5 },
  ),
);

test('property: on-chain clearing equals the reference; the verifier accepts exactly it; settlement pays as it says', async () => {
  const f = await marketFixture();
  let interval = DELIVERY;
  await fc.assert(
    fc.asyncProperty(bookArb, async (book) => {
      const placed = await placeBook(f, interval, book);
      const expected = referenceClearing(placed, CONSUMPTION_PRICE, PRODUCTION_PRICE);
      const computed = await f.market.computeClearing(interval);
      assert.equal(computed, onChainShape(expected));
      if (expected.volumeWh > 0) {
        const wrongPrice = { ...computed, price: computed.price + 1 };
        assert.is((await revertOf(f.market.clear(f.anyone, interval, wrongPrice))).name, 'WrongClearing');
        const less = {
          ...computed,
          volumeWh: computed.volumeWh - 1n,
          ask: { ...computed.ask, fillWh: computed.ask.fillWh - 1 },
          bid: { ...computed.bid, fillWh: computed.bid.fillWh - 1 },
        };
        assert.is((await revertOf(f.market.clear(f.anyone, interval, less))).name, 'WrongClearing');
      } else if (placed.length > 0) {
        const invented = {
          ...computed,
          volumeWh: 1n,
          price: PRODUCTION_PRICE,
          ask: { index: 0, limitPrice: placed[0].limitPrice, fillWh: 1 },
        };
        assert.is((await revertOf(f.market.clear(f.anyone, interval, invented))).name, 'WrongClearing');
      }
      await f.market.clear(f.anyone, interval, computed);
      await f.market.settle(f.anyone, interval, 1000);
      await assertSettled(f, interval, placed, expected.fills, expected.price);
      interval += 1;
    }),
    { numRuns: 100 },
  );
});

test('clearing waits for gate closure, refuses wrong results with the reason, happens once; computing on chain gives the verified result', async () => {
  const f = await marketFixture();
  const placed = await placeBook(f, DELIVERY + 1, []);
  assert.is(placed.length, 0);
  const book: Omit<BookOffer, 'index'>[] = [
    { side: 'ask', wh: 30, limitPrice: 120 },
    { side: 'ask', wh: 20, limitPrice: 150 },
    { side: 'bid', wh: 25, limitPrice: 200 },
    { side: 'bid', wh: 40, limitPrice: 140 },
  ];
  const key = generateTradingKey();
  await f.market.issue(f.dso, FEEDER, [grantFor(key.publicKey, DELIVERY + 2, { production: 1 })]);
  assert.is((await revertOf(f.market.clear(f.anyone, DELIVERY + 2))).name, 'GateOpen');
  const interval = DELIVERY + 2;
  const onBook = await placeBook(f, interval, book);
  const viaVerify = await f.market.computeClearing(interval);
  // ask 120 fills 30 (25 to the 200 bid, 5 to the 140 bid); the 150 ask is above the 140 bid: volume 30, price (120 + 140) / 2.
  assert.equal(viaVerify, {
    price: 130,
    volumeWh: 30n,
    ask: { index: 0, limitPrice: 120, fillWh: 30 },
    bid: { index: 3, limitPrice: 140, fillWh: 5 },
  });
  const zero = { index: 0, limitPrice: 0, fillWh: 0 };
  const wrong: [string, ClearingResult][] = [
    [
      'a cut is not an open offer on its side',
      {
        price: 160,
        volumeWh: 25n,
        ask: { index: 0, limitPrice: 120, fillWh: 25 },
        bid: { index: 99, limitPrice: 200, fillWh: 5 },
      },
    ],
    [
      'the cuts do not cross',
      {
        price: 145,
        volumeWh: 35n,
        ask: { index: 1, limitPrice: 150, fillWh: 5 },
        bid: { index: 3, limitPrice: 140, fillWh: 10 },
      },
    ],
    ['remaining offers still cross', { price: 0, volumeWh: 0n, ask: zero, bid: zero }],
    ['cut does not match its offer', { ...viaVerify, ask: { index: 0, limitPrice: 110, fillWh: 30 } }],
    [
      'cut does not match its offer',
      {
        ...viaVerify,
        volumeWh: 31n,
        ask: { index: 0, limitPrice: 120, fillWh: 31 },
        bid: { index: 3, limitPrice: 140, fillWh: 6 },
      },
    ],
    ['a result without volume must be all zero', { ...viaVerify, volumeWh: 0n }],
  ];
  for (const [why, result] of wrong) {
    const { name, args } = await revertOf(f.market.clear(f.anyone, interval, result));
    assert.equal([name, args[0]], ['WrongClearing', why]);
  }
  const receipt = await f.market.clearByComputing(f.anyone, interval);
  assert.equal(eventsOf(receipt)[0].args, { interval, price: 130, volumeWh: 30n, offers: 4 });
  assert.is((await revertOf(f.market.clear(f.anyone, interval, viaVerify))).name, 'AlreadyCleared');
  await f.market.settle(f.anyone, interval, 2);
  await f.market.settle(f.anyone, interval, 2);
  const expected = referenceClearing(onBook, CONSUMPTION_PRICE, PRODUCTION_PRICE);
  await assertSettled(f, interval, onBook, expected.fills, 130);
  assert.is((await revertOf(f.market.settle(f.anyone, interval + 1, 10))).name, 'NotCleared');
});

test('settlement conserves each asset type in the interval and the money overall; rescinded offers stay out', async () => {
  const f = await marketFixture();
  const book: Omit<BookOffer, 'index'>[] = [
    { side: 'ask', wh: 10, limitPrice: 100 },
    { side: 'ask', wh: 10, limitPrice: 100 },
    { side: 'bid', wh: 15, limitPrice: 300 },
    { side: 'bid', wh: 15, limitPrice: 300 },
  ];
  const placed = await placeBook(f, DELIVERY, book);
  const totals = async () => {
    let production = 0n,
      consumption = 0n,
      money = 0n;
    for (const o of placed) {
      const h = await f.market.holding(o.key.keyId, DELIVERY);
      const m = await f.market.money(o.key.keyId);
      production += h.production;
      consumption += h.consumption;
      money += m.free + m.locked;
    }
    return { production, consumption, money };
  };
  const before = await totals();
  await f.market.clear(f.anyone, DELIVERY);
  const receipt = await f.market.settle(f.anyone, DELIVERY, 100);
  const settled = eventsOf(receipt)
    .filter((e) => e.eventName === 'Settled')
    .map((e) => [e.args.index, e.args.fillWh]);
  // Ties keep book order: the first bid at 300 takes 15, the second the remaining 5; price (100 + 300) / 2 = 200.
  assert.equal(settled, [
    [0, 10],
    [1, 10],
    [2, 15],
    [3, 5],
  ]);
  assert.equal(await totals(), before);
  assert.is(eventsOf(receipt).at(-1)?.eventName, 'IntervalSettled');
});

test.run();
