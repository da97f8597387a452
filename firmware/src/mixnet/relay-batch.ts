// A meter's work as a mixnet relay within one round (docs/mixnet.md): take in onion packets, peel each with
// the mix key (ECDH in the secure element), drop what is malformed, tampered, meant for another relay or
// replayed, hold the rest, and hand them all out shuffled at the slot boundary. Pure logic: the ECDH, the
// randomness and the sending are the caller's, so the same code runs on the meter and in tests.
//
// Bounded: at most `capacity` packets are held, and at most 2 · capacity replay tags are kept for the
// round (a tag is kept for each packet that verified, held or not); a packet beyond either is dropped as
// 'batch-full' before any work on it, costing its sender a resend, never the relay its memory. Anyone can
// build packets to a relay's public mix key, so both bounds matter. A relay that goes offline loses only
// the packets it held.
import type { OnionPrimitives } from '../protocol/onion-packet.ts';
import { OnionPacketError, onionEphemeralKey, peelOnionPacket } from '../protocol/onion-packet.ts';
import { bytesToHex } from '../protocol/hex.ts';

/** Why a packet was dropped. */
export type RelayDrop =
  | 'bad-length'
  | 'bad-version'
  | 'bad-key'
  | 'bad-mac'
  | 'bad-payload'
  | 'replayed'
  | 'not-for-a-relay'
  | 'batch-full';

export const RELAY_DROPS: RelayDrop[] = [
  'bad-length',
  'bad-version',
  'bad-key',
  'bad-mac',
  'bad-payload',
  'replayed',
  'not-for-a-relay',
  'batch-full',
];

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
}

export class RelayBatch {
  private readonly o: RelayBatchOptions;
  private held: ForwardedPacket[] = [];
  private tags: { [hex: string]: boolean } = {};
  private tagCount = 0;
  /** Packets dropped per reason since the relay started. */
  readonly dropped: { [reason: string]: number } = {};
  forwarded = 0;

  constructor(options: RelayBatchOptions) {
    this.o = options;
    for (let i = 0; i < RELAY_DROPS.length; i++) this.dropped[RELAY_DROPS[i]] = 0;
  }

  /** Packets held for the next boundary. */
  get size(): number {
    return this.held.length;
  }

  /** Takes in one packet: undefined when held for forwarding, else why it was dropped. Never throws. */
  accept(packet: Uint8Array): RelayDrop | undefined {
    const reason = this.take(packet);
    if (reason) this.dropped[reason]++;
    return reason;
  }

  private take(packet: Uint8Array): RelayDrop | undefined {
    if (this.held.length >= this.o.capacity || this.tagCount >= 2 * this.o.capacity) return 'batch-full';
    let shared: Uint8Array;
    try {
      shared = this.o.ecdh(onionEphemeralKey(packet));
    } catch (err) {
      return err instanceof OnionPacketError ? err.reason : 'bad-key';
    }
    let peeled;
    try {
      peeled = peelOnionPacket(this.o.primitives, shared, packet);
    } catch (err) {
      if (err instanceof OnionPacketError) return err.reason;
      throw err;
    }
    const tag = bytesToHex(peeled.replayTag);
    if (this.tags[tag]) return 'replayed';
    this.tags[tag] = true;
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

  /** A new round: its replay tags start empty (a packet replayed into a later round fails at the bridge, which keeps offers' digests). */
  newRound(): void {
    this.tags = {};
    this.tagCount = 0;
  }

  /** Replay tags remembered this round. */
  get rememberedTags(): number {
    return this.tagCount;
  }
}
