// An independent reference for the market's clearing rule (docs/clearing.md), written from the rule and not
// from the contract: the volume is found as the largest quantity any single price can carry,
// max over p of min(supply at p, demand at p), and then handed out to each side in priority order.
export interface BookOffer {
  index: number;
  side: 'ask' | 'bid';
  wh: number;
  limitPrice: number;
}

export interface ReferenceResult {
  price: number;
  volumeWh: number;
  ask: { index: number; limitPrice: number; fillWh: number };
  bid: { index: number; limitPrice: number; fillWh: number };
  fills: Map<number, number>;
}

const NO_CUT = { index: 0, limitPrice: 0, fillWh: 0 };

export function referenceClearing(
  book: BookOffer[],
  consumptionPrice: number,
  productionPrice: number,
): ReferenceResult {
  // The DSO is every buyer's and seller's outside option: no ask above its selling price can find a buyer,
  // no bid below its buying price a seller.
  const asks = book.filter((o) => o.side === 'ask' && o.limitPrice <= consumptionPrice);
  const bids = book.filter((o) => o.side === 'bid' && o.limitPrice >= productionPrice);
  const supplyAt = (p: number) => asks.filter((o) => o.limitPrice <= p).reduce((s, o) => s + o.wh, 0);
  const demandAt = (p: number) => bids.filter((o) => o.limitPrice >= p).reduce((s, o) => s + o.wh, 0);
  let volume = 0;
  for (const p of [...asks, ...bids].map((o) => o.limitPrice))
    volume = Math.max(volume, Math.min(supplyAt(p), demandAt(p)));

  const fills = new Map<number, number>();
  const handOut = (priority: BookOffer[]) => {
    let left = volume;
    let cut = NO_CUT;
    for (const o of priority) {
      const fill = Math.min(o.wh, left);
      if (fill === 0) break;
      fills.set(o.index, fill);
      left -= fill;
      cut = { index: o.index, limitPrice: o.limitPrice, fillWh: fill };
    }
    return cut;
  };
  const ask = handOut([...asks].sort((a, b) => a.limitPrice - b.limitPrice || a.index - b.index));
  const bid = handOut([...bids].sort((a, b) => b.limitPrice - a.limitPrice || a.index - b.index));
  if (volume === 0) return { price: 0, volumeWh: 0, ask: NO_CUT, bid: NO_CUT, fills };
  const mid = Math.floor((ask.limitPrice + bid.limitPrice) / 2);
  return { price: Math.min(consumptionPrice, Math.max(productionPrice, mid)), volumeWh: volume, ask, bid, fills };
}
