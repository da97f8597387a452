// A meter's work as a mixnet relay within one round (docs/mixnet.md): take in onion packets, peel each with
// the mix key (ECDH in the secure element), drop what is malformed, tampered, meant for another relay or
// replayed, hold the rest, and hand them all out shuffled at the slot boundary. Pure logic: the ECDH, the
// randomness and the sending are the caller's, so the same code runs on the meter and in tests.
//
// Bounded: at most `capacity` packets are held, and at most `maxTags` replay tags are kept until the caller
// forgets them (a tag is kept for each packet that verified, held or not; the mix node forgets them once per
// offer window: docs/mixnet.md); a packet beyond either is dropped as 'batch-full' before any work on it,
// costing its sender a resend, never the relay its memory. Anyone can build packets to a relay's public mix
// key, so both bounds matter. A relay that goes offline loses only the packets it held.
import type { OnionPrimitives } from '../protocol/onion-packet.ts';
import { OnionPacketError, onionEphemeralKey, peelOnionPacket } from '../protocol/onion-packet.ts';
import { SecureElementError } from '../se/secure-element.ts';

/** Why a packet was dropped. */
export type RelayDrop =
  | 'bad-length'
  | 'bad-version'
  | 'bad-key'
  | 'bad-mac'
  | 'bad-payload'
  | 'replayed'
  | 'not-for-a-relay'
  | 'batch-full'
  | 'out-of-round'
  | 'busy'
  | 'relay-error';

export const RELAY_DROPS: RelayDrop[] = [
  'bad-length',
  'bad-version',
  'bad-key',
  'bad-mac',
  'bad-payload',
  'replayed',
  'not-for-a-relay',
  'batch-full',
  // The mix node's, before any work: a packet outside the window's rounds, or while the meter is busy.
  'out-of-round',
  'busy',
  // Relaying failed for a reason not the packet's (the secure element, memory).
  'relay-error',
];

/** Bytes of each replay tag kept: 64 bits, so tags of one window never collide by chance. */
const TAG_BYTES_KEPT = 8;

export interface ForwardedPacket {
  nextRelayId: Uint8Array;
  packet: Uint8Array;
}

export interface RelayBatchOptions {
  primitives: OnionPrimitives;
  /** ECDH of the mix key with an ephemeral key (x || y): the 32-byte x. Throws for a point off the curve. */
  ecdh(ephemeralKey: Uint8Array): Uint8Array;
  /** A whole number in [0, n): for the shuffle (from the secure element's randomness). */
  randomBelow(n: number): number;
  /** Packets held at most. */
  capacity: number;
  /** Replay tags kept at most until forgetTags (default 2 · capacity). */
  maxTags?: number;
}

export class RelayBatch {
  private readonly o: RelayBatchOptions;
  private held: ForwardedPacket[] = [];
  private readonly maxTags: number;
  /** The first TAG_BYTES_KEPT bytes of each tag kept, one after the other: no object per tag. */
  private tags: Uint8Array;
  private tagCount = 0;
  /** Packets dropped per reason since the relay started. */
  readonly dropped: { [reason: string]: number } = {};
  forwarded = 0;

  constructor(options: RelayBatchOptions) {
    this.o = options;
    this.maxTags = options.maxTags || 2 * options.capacity;
    this.tags = new Uint8Array(this.maxTags * TAG_BYTES_KEPT);
    for (let i = 0; i < RELAY_DROPS.length; i++) this.dropped[RELAY_DROPS[i]] = 0;
  }

  /** Packets held for the next boundary. */
  get size(): number {
    return this.held.length;
  }

  /**
   * Takes in one packet that arrived in offer window `window`: undefined when held for forwarding, else why
   * it was dropped. Throws only when the secure element did not answer (the relay's fault, not the packet's).
   */
  accept(packet: Uint8Array, window: number): RelayDrop | undefined {
    const reason = this.take(packet, window);
    if (reason) this.dropped[reason]++;
    return reason;
  }

  /** Counts a packet the caller dropped before accept (its reason is the caller's: 'out-of-round', 'busy'). */
  drop(reason: RelayDrop): void {
    this.dropped[reason]++;
  }

  private remembers(tag: Uint8Array): boolean {
    const tags = this.tags;
    for (let t = 0; t < this.tagCount; t++) {
      const at = t * TAG_BYTES_KEPT;
      let i = 0;
      while (i < TAG_BYTES_KEPT && tags[at + i] === tag[i]) i++;
      if (i === TAG_BYTES_KEPT) return true;
    }
    return false;
  }

  private take(packet: Uint8Array, window: number): RelayDrop | undefined {
    if (this.held.length >= this.o.capacity || this.tagCount >= this.maxTags) return 'batch-full';
    let shared: Uint8Array;
    try {
      shared = this.o.ecdh(onionEphemeralKey(packet));
    } catch (err) {
      if (err instanceof OnionPacketError) return err.reason;
      // The chip refused the key (a status); no answer at all (status -1: a wake or a time-out) is the relay's.
      if (err instanceof SecureElementError && err.status === -1) throw err;
      return 'bad-key';
    }
    let peeled;
    try {
      peeled = peelOnionPacket(this.o.primitives, window, shared, packet);
    } catch (err) {
      if (err instanceof OnionPacketError) return err.reason;
      throw err;
    }
    if (this.remembers(peeled.replayTag)) return 'replayed';
    this.tags.set(peeled.replayTag.subarray(0, TAG_BYTES_KEPT), this.tagCount * TAG_BYTES_KEPT);
    this.tagCount++;
    // Only the bridge is an exit: a packet whose next hop is the exit is for the bridge, not a meter.
    if (!peeled.packet || !peeled.nextRelayId) return 'not-for-a-relay';
    this.held.push({ nextRelayId: peeled.nextRelayId, packet: peeled.packet });
    return undefined;
  }

  /** The held packets in a uniformly random order (Fisher-Yates), and an empty batch. */
  flush(): ForwardedPacket[] {
    const out = this.held;
    this.held = [];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.o.randomBelow(i + 1);
      const t = out[i];
      out[i] = out[j];
      out[j] = t;
    }
    this.forwarded += out.length;
    return out;
  }

  /**
   * Forgets the replay tags (the mix node: at the start of each offer window). A packet replayed after that
   * is relayed again; the bridge, which keeps offers' digests, drops the copy.
   */
  forgetTags(): void {
    this.tagCount = 0;
  }

  /** Replay tags remembered since forgetTags. */
  get rememberedTags(): number {
    return this.tagCount;
  }
}
