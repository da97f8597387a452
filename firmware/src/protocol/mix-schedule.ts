// When the mixnet's rounds run (docs/mixnet.md), the same for every meter, the bridge and the observer.
//
// Offers for market interval d are made during d's window: from d - 1's start to d's gate closure
// (protocol/market-info.ts). The DSO issues assets half-way through the window (host-tools/dso/
// asset-issuance.ts, leadFraction 0.5), so offers exist from then on. The rounds start at FIRST_ROUND_AT of
// the window, ROUNDS_PER_WINDOW of them, one after the other, each of SLOTS_PER_ROUND slots:
//
//   slot 0  every meter sends exactly one packet (its offer, one still unconfirmed, or a dummy);
//   slot 1  first relays forward, shuffled, what they took in during slot 0;
//   slot 2  second relays forward to the exit (the bridge), which puts offers on chain;
//   slot 3  the bridge's receipts come back: a sender with none sends its offer again in the next round.
//
// A relay forwards what it holds at the start of every slot, so a packet that arrives late goes one slot later.
// A slot is a twentieth of an interval: 45 s at 15-minute intervals, 500 ms at the testbed's 10 s.

/** What the schedule needs of the market's clock (a MarketInfo has both). */
export interface MarketClock {
  genesisTime: number;
  intervalSeconds: number;
}

export const SLOTS_PER_ROUND = 4;
export const ROUNDS_PER_WINDOW = 2;
/** Where in the window (a fraction of it) round 0 starts: after the DSO's issuance at 0.5. */
export const FIRST_ROUND_AT = 0.55;
/** Slots per interval: the slot's length is the interval's divided by this. */
const SLOTS_PER_INTERVAL = 20;

/** One slot's length, ms. */
export function slotMs(clock: MarketClock): number {
  return Math.floor((clock.intervalSeconds * 1000) / SLOTS_PER_INTERVAL);
}

/** When round `round` of the window for market interval `interval` starts (its slot 0), Unix ms. */
export function roundStartMs(clock: MarketClock, interval: number, round: number): number {
  const windowOpenMs = (clock.genesisTime + (interval - 1) * clock.intervalSeconds) * 1000;
  return (
    windowOpenMs + Math.floor(FIRST_ROUND_AT * clock.intervalSeconds * 1000) + round * SLOTS_PER_ROUND * slotMs(clock)
  );
}

export interface MixSlot {
  /** The market interval whose offers the round carries. */
  interval: number;
  round: number;
  slot: number;
  /** When this slot started and when the next starts, Unix ms. */
  startMs: number;
  endMs: number;
}

/** The slot running at Unix time `ms`, or undefined between the windows' rounds. */
export function mixSlotAt(clock: MarketClock, ms: number): MixSlot | undefined {
  // The window running at ms is for the interval whose gate closes next.
  const interval = Math.floor((ms / 1000 - clock.genesisTime) / clock.intervalSeconds) + 1;
  const first = roundStartMs(clock, interval, 0);
  const length = slotMs(clock);
  const index = Math.floor((ms - first) / length);
  if (ms < first || index >= ROUNDS_PER_WINDOW * SLOTS_PER_ROUND) return undefined;
  const startMs = first + index * length;
  return {
    interval: interval,
    round: Math.floor(index / SLOTS_PER_ROUND),
    slot: index % SLOTS_PER_ROUND,
    startMs: startMs,
    endMs: startMs + length,
  };
}

/** The next slot to start after Unix time `ms` (in this window or a later one). */
export function nextMixSlot(clock: MarketClock, ms: number): MixSlot {
  const current = mixSlotAt(clock, ms);
  if (current) {
    const next = mixSlotAt(clock, current.endMs);
    if (next) return next;
  }
  const interval = Math.floor((ms / 1000 - clock.genesisTime) / clock.intervalSeconds) + 1;
  let startMs = roundStartMs(clock, interval, 0);
  if (startMs <= ms) startMs = roundStartMs(clock, interval + 1, 0);
  return mixSlotAt(clock, startMs) as MixSlot;
}
