// What a meter needs to know about the market to trade: which deployment to sign offers for, its clock, and
// the DSO's prices (the outside option every offer is measured against). The bridge publishes it retained on
// MARKET_INFO_TOPIC (protocol/topics.ts), so a meter has it as soon as it subscribes.
//
// Deterministic CBOR map:
//   1 chainId uint | 2 market bstr 20 (the contract's address) | 3 intervalSeconds uint (≥ 1)
//   4 genesisTime uint (Unix seconds; interval d starts at genesisTime + d · intervalSeconds, its gate closure)
//   5 fromInterval uint | 6 consumptionPrice uint | 7 productionPrice uint
// Prices are money units per Wh, in force from fromInterval on: the DSO sells at consumptionPrice and buys at
// productionPrice, so a bid above the one or an ask below the other makes no sense.
import { CborError, CborMap, decode, encode, type CborValue } from './cbor.ts';
import { describeValue, uintProblem } from './field-problems.ts';
import { bytesToHex, hexToBytes } from './hex.ts';
import type { MarketDomain } from './offer.ts';
import { VeilgridError } from './veilgrid-error.ts';

export interface MarketInfo {
  domain: MarketDomain;
  intervalSeconds: number;
  genesisTime: number;
  fromInterval: number;
  consumptionPrice: number;
  productionPrice: number;
}

export class MarketInfoError extends VeilgridError {
  constructor(message: string) {
    super('MarketInfoError', 'market-info', message);
  }
}

function checked(info: MarketInfo): MarketInfo {
  const names = ['chainId', 'intervalSeconds', 'genesisTime', 'fromInterval', 'consumptionPrice', 'productionPrice'];
  const values = [
    info.domain.chainId,
    info.intervalSeconds,
    info.genesisTime,
    info.fromInterval,
    info.consumptionPrice,
    info.productionPrice,
  ];
  for (let i = 0; i < values.length; i++) {
    const problem = uintProblem(names[i], values[i]);
    if (problem) throw new MarketInfoError(problem);
  }
  if (info.intervalSeconds < 1) throw new MarketInfoError('intervalSeconds must be at least 1');
  return info;
}

export function encodeMarketInfo(info: MarketInfo): Uint8Array {
  checked(info);
  const market = info.domain.market.length === 42 ? hexToBytes(info.domain.market.substring(2)) : undefined;
  if (!market) throw new MarketInfoError('market must be a 20-byte hex address, got ' + info.domain.market);
  return encode(
    new CborMap([
      [1, info.domain.chainId],
      [2, market],
      [3, info.intervalSeconds],
      [4, info.genesisTime],
      [5, info.fromInterval],
      [6, info.consumptionPrice],
      [7, info.productionPrice],
    ]),
  );
}

export function decodeMarketInfo(bytes: Uint8Array): MarketInfo {
  let item: CborValue;
  try {
    item = decode(bytes);
  } catch (err) {
    if (err instanceof CborError) throw new MarketInfoError('market info is deterministic CBOR: ' + err.message);
    throw err;
  }
  if (!(item instanceof CborMap) || item.entries.length !== 7)
    throw new MarketInfoError('market info is a CBOR map with keys 1..7 (got ' + describeValue(item) + ')');
  const market = item.get(2);
  if (!(market instanceof Uint8Array) || market.length !== 20)
    throw new MarketInfoError('market must be a 20-byte string (got ' + describeValue(market) + ')');
  return checked({
    domain: { chainId: item.get(1) as number, market: '0x' + bytesToHex(market) },
    intervalSeconds: item.get(3) as number,
    genesisTime: item.get(4) as number,
    fromInterval: item.get(5) as number,
    consumptionPrice: item.get(6) as number,
    productionPrice: item.get(7) as number,
  });
}

/** The market interval running at Unix time `seconds` (its gate closed at its start). */
export function marketIntervalAt(info: MarketInfo, seconds: number): number {
  return Math.floor((seconds - info.genesisTime) / info.intervalSeconds);
}
