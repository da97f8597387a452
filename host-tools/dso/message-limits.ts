// What one meter may make the DSO do: how large one message may be, and how many a meter may send
// before the DSO drops the rest unread. Checked before any decoding, so an oversized or flooding
// meter costs the DSO a length comparison and a counter per message, never a parse or an ECDH.
//
// Sizes: a sealed reading is about 270 bytes and a key certificate about 220 (bench/RESULTS.md); the
// cap leaves room for a larger reading format without letting a message grow past a kilobyte.

/** The largest reading envelope or key certificate the DSO reads (payload bytes). */
export const MAX_MESSAGE_PAYLOAD_BYTES = 1024;

/**
 * The largest MQTT packet either broker accepts (fixed header, topic and payload; mosquitto's
 * max_packet_size, the embedded broker's packet-size guard). Above MAX_MESSAGE_PAYLOAD_BYTES by the
 * longest topic and header, so the broker never drops what the DSO would read.
 */
export const MAX_MQTT_PACKET_BYTES = 2048;

/**
 * Each meter's message budget at the DSO, a token bucket: `burst` messages at once, refilled at
 * `perSecond`. An honest meter sends one reading a minute and a key certificate per rotation; after an
 * outage it drains its outbox at once, so the burst holds more than a day of one-minute readings.
 */
export const METER_MESSAGE_BUDGET = { burst: 1_500, perSecond: 0.5 } as const;

export interface MessageBudget {
  burst: number;
  perSecond: number;
}

/** Per-key token buckets (key: meter id; the broker's ACL lets a meter publish under its own id only). O(1) per take(). */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(private readonly budget: MessageBudget = METER_MESSAGE_BUDGET) {}

  /** Spends one token of key's bucket: true when it had one (the message may be handled). */
  take(key: string, nowMs = Date.now()): boolean {
    const bucket = this.buckets.get(key) ?? { tokens: this.budget.burst, atMs: nowMs };
    bucket.tokens = Math.min(this.budget.burst, bucket.tokens + ((nowMs - bucket.atMs) / 1000) * this.budget.perSecond);
    bucket.atMs = nowMs;
    this.buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }
}
