// Fisher–Yates over node:crypto's CSPRNG: each permutation equally likely, none predictable by whoever the order
// is hidden from. Tests and simulations hand in their own source of draws.
import { randomInt } from 'node:crypto';

/** A uniformly drawn whole number in 0..n-1. */
export type RandomBelow = (n: number) => number;

export const cryptoRandomBelow: RandomBelow = (n) => randomInt(n);

/** A shuffled copy of `items`. */
export function cryptoShuffle<T>(items: readonly T[], randomBelow: RandomBelow = cryptoRandomBelow): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomBelow(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
