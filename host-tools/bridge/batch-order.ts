// The order queued offers go on chain in (docs/bridge.md, "Order on chain"): a uniformly random interleaving
// that keeps each trading key's offers in the order they came. Arrival order at the exit points back along the
// mixnet's paths, so it must not show on chain; but the contract tries a batch's offers in order, and of one key's
// offers it cannot all pay for, the one its meter sent first must be the one tried first.
import { decodeOffer, OFFER_LENGTH } from '../../firmware/src/protocol/offer.ts';
import { cryptoShuffle, type RandomBelow } from '../crypto/shuffle.ts';
import type { QueuedOffer } from './bridge-store.ts';

/**
 * `items` (in arrival order) interleaved at random, each key's items keeping their order: every such interleaving
 * is equally likely. The keys' places are a shuffle of one key label per item (each distinct sequence of labels is
 * reached by the same number of permutations), then each key's items fill its places in their own order.
 */
export function interleaveKeepingKeyOrder<T>(
  items: readonly T[],
  keyOf: (item: T) => string,
  randomBelow?: RandomBelow,
): T[] {
  const labels = items.map(keyOf);
  const byKey = new Map<string, T[]>();
  labels.forEach((key, i) => {
    const own = byKey.get(key);
    if (own) own.push(items[i]);
    else byKey.set(key, [items[i]]);
  });
  const next = new Map<string, number>();
  return cryptoShuffle(labels, randomBelow).map((key) => {
    const n = next.get(key) ?? 0;
    next.set(key, n + 1);
    return byKey.get(key)![n];
  });
}

/** The trading key that signed a queued offer (x ‖ y, hex): whose assets and money the contract charges. */
export function tradingKeyOf(offer: QueuedOffer): string {
  const { key } = decodeOffer(offer.message.subarray(0, OFFER_LENGTH));
  return Buffer.concat([key.x, key.y]).toString('hex');
}

/**
 * The queued offers (arrival order, store.queued) in the order they go on chain. A batch is the first
 * `--batch-size` of them, so which offers wait for a later batch says nothing of arrival either, and a key's later
 * offer never goes in an earlier batch than its earlier one.
 */
export function chainOrder(queued: readonly QueuedOffer[], randomBelow?: RandomBelow): QueuedOffer[] {
  return interleaveKeepingKeyOrder(queued, tradingKeyOf, randomBelow);
}
