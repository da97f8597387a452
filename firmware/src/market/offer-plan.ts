// What the meter asks the DSO for and offers in one interval, from its forecast and the DSO's prices. Pure.
//
// A surplus is sold (an ask, backed by a production asset of that many Wh), a deficit bought (a bid, backed
// by a consumption asset). The limit price lies between the DSO's prices, which are everyone's outside
// option (docs/clearing.md): the DSO buys at productionPrice and sells at consumptionPrice. marginPercent is
// the share of that spread the meter insists on gaining over the DSO's price:
//   ask limit = productionPrice + floor(spread * marginPercent / 100)
//   bid limit = consumptionPrice - floor(spread * marginPercent / 100)
// 0 trades whenever anything better than the DSO's price is offered; 50 asks and bids at the middle.

import { SIDE_ASK, SIDE_BID } from '../protocol/offer.ts';

/** No offer this interval; otherwise a plan's side is protocol/offer.ts SIDE_ASK or SIDE_BID. */
export const SIDE_NONE = 0;

/** Wh in one offer: a uint32 in the signed bytes (docs/ledger.md). */
const MAX_OFFER_WH = 0xffffffff;

export interface OfferPlan {
  /** SIDE_NONE (nothing to trade), SIDE_ASK or SIDE_BID. */
  side: number;
  /** Energy offered (ask) or wanted (bid); 0 with SIDE_NONE. */
  wh: number;
  limitPrice: number;
}

export interface DsoPrices {
  consumptionPrice: number;
  productionPrice: number;
}

/** The plan for a forecast surplus (positive Wh) or deficit (negative Wh). */
export function planOffer(surplusWh: number, prices: DsoPrices, marginPercent: number): OfferPlan {
  const spread = prices.consumptionPrice - prices.productionPrice;
  const wh = Math.min(Math.abs(surplusWh), MAX_OFFER_WH);
  if (!(wh >= 1) || spread < 0) return { side: SIDE_NONE, wh: 0, limitPrice: 0 };
  const margin = Math.floor((spread * marginPercent) / 100);
  return surplusWh > 0
    ? { side: SIDE_ASK, wh: wh, limitPrice: prices.productionPrice + margin }
    : { side: SIDE_BID, wh: wh, limitPrice: prices.consumptionPrice - margin };
}
