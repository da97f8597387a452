// The mix node's randomness: which relays a path takes, when in slot 0 the packet leaves, the order a relay
// forwards in. The broker sees all three, so none may come from Math.random (Espruino's rand(), seeded with
// 32 bits: platform/system.ts). A seed of 32 bytes from the secure element's Random (one SE command, taken
// again every round) is stretched with the native SHA-256 in counter mode: block i = SHA-256(seed || i).
import type { Sha256 } from '../protocol/crypto/sha256.ts';

const SEED_BYTES = 32;
/** 2^32: draws are 32-bit numbers. */
const RANGE = 4294967296;

export class RandomStream {
  private declare readonly sha256: Sha256;
  private declare readonly seedSource: () => Uint8Array;
  /** seed || block counter (4 bytes, big-endian). */
  private declare input: Uint8Array | null;
  private declare block: Uint8Array;
  private declare used: number;

  /** seedSource: 32 random bytes (the secure element's Random); called now and at every reseed. */
  constructor(sha256: Sha256, seedSource: () => Uint8Array) {
    this.sha256 = sha256;
    this.seedSource = seedSource;
    this.input = null;
    this.block = new Uint8Array(0);
    this.used = 0;
  }

  /** A new seed from the secure element; throws what it throws (the old stream goes on if there was one). */
  reseed(): void {
    const seed = this.seedSource();
    if (!seed || seed.length < SEED_BYTES) throw new Error('the random seed must be ' + SEED_BYTES + ' bytes');
    const input = new Uint8Array(SEED_BYTES + 4);
    input.set(seed.subarray(0, SEED_BYTES), 0);
    this.input = input;
    this.block = new Uint8Array(0);
    this.used = 0;
  }

  /** A uniform 32-bit number. */
  private next32(): number {
    if (!this.input) this.reseed();
    if (this.used + 4 > this.block.length) {
      const input = this.input as Uint8Array;
      this.block = this.sha256(input);
      this.used = 0;
      // The counter, big-endian in the last 4 bytes.
      for (let i = input.length - 1; i >= SEED_BYTES; i--) {
        input[i] = (input[i] + 1) & 0xff;
        if (input[i] !== 0) break;
      }
    }
    const b = this.block;
    const u = this.used;
    this.used += 4;
    return b[u] * 16777216 + ((b[u + 1] << 16) | (b[u + 2] << 8) | b[u + 3]);
  }

  /** A whole number in [0, n), uniform (draws beyond the last whole multiple of n are drawn again). */
  randomBelow(n: number): number {
    if (!(n >= 1 && n <= RANGE && Math.floor(n) === n)) throw new Error('randomBelow needs 1 <= n <= 2^32, got ' + n);
    const limit = RANGE - (RANGE % n);
    for (;;) {
      const v = this.next32();
      if (v < limit) return v % n;
    }
  }
}
