// The order a batch's offers go on chain in (host-tools/bridge/batch-order.ts): every interleaving that keeps each
// trading key's offers in arrival order, and only those, equally likely. Shown exactly, not by sampling: fed every
// sequence of draws a shuffle of n items can make (n! of them), the order reaches each interleaving equally often.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chainOrder, interleaveKeepingKeyOrder } from '../../host-tools/bridge/batch-order.ts';
import type { QueuedOffer } from '../../host-tools/bridge/bridge-store.ts';
import type { RandomBelow } from '../../host-tools/crypto/shuffle.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import { signedOffer } from './bridge-fixture.ts';

/** Every sequence of draws a Fisher–Yates shuffle of n items makes (i+1 choices at step i, i = n-1..1). */
function everyDrawSequence(n: number): number[][] {
  let sequences: number[][] = [[]];
  for (let i = n - 1; i > 0; i--)
    sequences = sequences.flatMap((s) => Array.from({ length: i + 1 }, (_, j) => [...s, j]));
  return sequences;
}

/** A random source that answers with these draws, checking each is asked for the range it was made for. */
function scripted(draws: number[]): RandomBelow {
  let next = 0;
  return (n) => {
    const j = draws[next++];
    if (j === undefined || j >= n) throw new Error(`draw ${next - 1}: ${j} is not below ${n}`);
    return j;
  };
}

const keyOf = (item: string) => item[0];
/** Asserts that each key's items appear in `order` as they do in `arrival`. */
function assertKeepsKeyOrder(order: string[], arrival: string[]): void {
  for (const key of new Set(arrival.map(keyOf)))
    assert.equal(
      order.filter((x) => keyOf(x) === key),
      arrival.filter((x) => keyOf(x) === key),
      `key ${key} in ${order.join(' ')}`,
    );
}

test('every interleaving that keeps each key in order is reached equally often, and no other order', () => {
  // Key a sent three offers, b two, c one: 6! / (3! 2! 1!) = 60 interleavings; 720 draw sequences, 12 each.
  const arrival = ['a1', 'b1', 'a2', 'c1', 'b2', 'a3'];
  const reached = new Map<string, number>();
  for (const draws of everyDrawSequence(arrival.length)) {
    const order = interleaveKeepingKeyOrder(arrival, keyOf, scripted(draws));
    assert.equal([...order].sort(), [...arrival].sort(), 'the same offers');
    assertKeepsKeyOrder(order, arrival);
    reached.set(order.join(' '), (reached.get(order.join(' ')) ?? 0) + 1);
  }
  assert.is(reached.size, 60, 'all 60 interleavings');
  assert.equal(new Set(reached.values()), new Set([12]), 'each by 12 of the 720 draw sequences');
  assert.is(reached.get(arrival.join(' ')), 12, 'arrival order is one of them, no likelier than any other');
});

test('offers of distinct keys: each order equally likely; one key: always its arrival order', () => {
  const distinct = ['a', 'b', 'c', 'd'];
  const orders = everyDrawSequence(4).map((draws) => interleaveKeepingKeyOrder(distinct, (x) => x, scripted(draws)));
  assert.is(new Set(orders.map((o) => o.join(''))).size, 24, '4! orders from 4! draw sequences');
  const oneKey = ['k1', 'k2', 'k3', 'k4'];
  for (const draws of everyDrawSequence(4))
    assert.equal(interleaveKeepingKeyOrder(oneKey, keyOf, scripted(draws)), oneKey);
});

test('chainOrder groups offers by the trading key that signed them', () => {
  const domain = { chainId: 31337, market: '0x5fbdb2315678afecb367f032d93f642f64180aa3' };
  const [buyer, seller] = [generateTradingKey(), generateTradingKey()];
  const queued = (
    [
      [buyer, 0],
      [seller, 0],
      [buyer, 1],
      [seller, 1],
    ] as const
  ).map(([key, seq], i): QueuedOffer => {
    const { message } = signedOffer(domain, key, { side: 'bid', interval: 5, wh: 10, limitPrice: 100 + i, seq });
    return { digest: new Uint8Array(32).fill(i), message, interval: 5 };
  });
  const seen = new Set<string>();
  for (const draws of everyDrawSequence(4)) {
    const order = chainOrder(queued, scripted(draws)).map((o) => o.digest[0]);
    assert.ok(order.indexOf(0) < order.indexOf(2), "the buyer's first offer before its second");
    assert.ok(order.indexOf(1) < order.indexOf(3), "the seller's first offer before its second");
    seen.add(order.join(''));
  }
  assert.is(seen.size, 6, '4! / (2! 2!) interleavings');
});

test('with no random source given, node:crypto draws: still a permutation that keeps each key in order', () => {
  const arrival = ['a1', 'b1', 'a2', 'c1', 'b2', 'a3'];
  const order = interleaveKeepingKeyOrder(arrival, keyOf);
  assert.equal([...order].sort(), [...arrival].sort());
  assertKeepsKeyOrder(order, arrival);
});

test.run();
