// The retained market info a meter trades by: round trip, an independent decoder's view, refusals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Decoder } from 'cbor-x';
import { CborMap, encode } from '../../firmware/src/protocol/cbor.ts';
import {
  decodeMarketInfo,
  encodeMarketInfo,
  MarketInfoError,
  marketIntervalAt,
  type MarketInfo,
} from '../../firmware/src/protocol/market-info.ts';

const info: MarketInfo = {
  domain: { chainId: 31337, market: '0x5fbdb2315678afecb367f032d93f642f64180aa3' },
  intervalSeconds: 900,
  genesisTime: 1_796_601_600,
  fromInterval: 12,
  consumptionPrice: 300,
  productionPrice: 80,
};

test('round trip, and an independent decoder reads keys 1..7', () => {
  const bytes = encodeMarketInfo(info);
  assert.equal(decodeMarketInfo(bytes), info);
  const map = new Decoder({ mapsAsObjects: false }).decode(Buffer.from(bytes)) as Map<number, unknown>;
  assert.equal([...map.keys()], [1, 2, 3, 4, 5, 6, 7]);
  assert.is(Buffer.from(map.get(2) as Uint8Array).toString('hex'), info.domain.market.slice(2));
  assert.is(marketIntervalAt(info, info.genesisTime + 900 * 5 + 899), 5);
});

test('refuses a wrong shape, a short address and a zero interval length', () => {
  const bad = [encode(new CborMap([[1, 1]])), encode([1]), encodeMarketInfo(info).subarray(0, 10)];
  for (const bytes of bad)
    assert.throws(
      () => decodeMarketInfo(bytes),
      (err: Error) => err instanceof MarketInfoError,
    );
  assert.throws(
    () => encodeMarketInfo({ ...info, domain: { ...info.domain, market: '0x12' } }),
    (err: Error) => err instanceof MarketInfoError,
  );
  assert.throws(
    () => encodeMarketInfo({ ...info, intervalSeconds: 0 }),
    (err: Error) => err instanceof MarketInfoError,
  );
});

test.run();
