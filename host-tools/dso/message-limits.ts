// What one meter may make the DSO do: how large one message may be, and how many refused messages it
// may send before the DSO drops its messages unread.
// Checked before any decoding, so an oversized or flooding meter costs the DSO a length comparison and
// a counter per message, never a parse or an ECDH.
//
// Sizes: a sealed reading is about 270 bytes and a key certificate about 220 (bench/RESULTS.md); the
// cap leaves room for a larger reading format without letting a message grow past a kilobyte.

/** The largest reading envelope or key certificate the DSO reads (payload bytes). */
export const MAX_MESSAGE_PAYLOAD_BYTES = 1024;

/**
 * Each meter's budget of refused messages at the DSO, a token bucket: `burst` at once, refilled at
 * `perSecond`. Only refused messages are charged (not a reading, not a valid key certificate): an
 * honest meter's messages never spend it, however fast it sends — draining its outbox after an outage,
 * or republishing its key certificate at each of many reboots — so it is never limited.
 */
export const METER_MESSAGE_BUDGET = { burst: 1_500, perSecond: 0.5 } as const;

export interface MessageBudget {
  burst: number;
  perSecond: number;
}

/** Per-key token buckets (key: meter id; the broker's ACL lets a meter publish under its own id only). O(1) each. */
export class MessageBudgets {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(private readonly budget: MessageBudget = METER_MESSAGE_BUDGET) {}

  /** Has key spent its whole budget (its messages are to be dropped unread)? */
  exhausted(key: string, nowMs = Date.now()): boolean {
    return this.refilled(key, nowMs).tokens < 1;
  }

  /** Charges key one refused message. */
  charge(key: string, nowMs = Date.now()): void {
    const bucket = this.refilled(key, nowMs);
    bucket.tokens = Math.max(0, bucket.tokens - 1);
  }

  private refilled(key: string, nowMs: number): { tokens: number; atMs: number } {
    let bucket = this.buckets.get(key);
    if (!bucket) this.buckets.set(key, (bucket = { tokens: this.budget.burst, atMs: nowMs }));
    bucket.tokens = Math.min(this.budget.burst, bucket.tokens + ((nowMs - bucket.atMs) / 1000) * this.budget.perSecond);
    bucket.atMs = nowMs;
    return bucket;
  }
}
