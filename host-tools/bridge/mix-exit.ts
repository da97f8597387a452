// The mixnet's exit (issue 11; docs/bridge.md, "The mixnet's exit"): the bridge peels the last layer of each
// onion packet that reaches veilgrid/mix/exit with its exit key (node:crypto ECDH, then protocol/onion-packet.ts)
// and finds an offer message or a dummy. Pure logic over one packet at a time: the offer path, the chain and
// the counters are the bridge's (bridge.ts).
//
// Bounded whatever arrives: at most `windowPackets` packets are peeled per offer window (the ECDH is the cost;
// beyond it a packet is dropped as 'window-full' after a length check), so the replay tags, kept for the current
// and the previous window, number at most 2 · windowPackets; the per-key charges are per window too. A packet's
// keys bind its window (protocol/onion-packet.ts): the exit peels with the window it is in by the bridge's clock
// (the chain's), or else the one before, since that clock can run ahead of the meters' at a window's end, where
// the last round's packets arrive. One replayed two windows later or more fails its MAC.
import { createECDH, type ECDH } from 'node:crypto';
import {
  OnionPacketError,
  onionEphemeralKey,
  PAYLOAD_DUMMY,
  PAYLOAD_OFFER,
  peelOnionPacket,
} from '../../firmware/src/protocol/onion-packet.ts';
import { nodeCryptoPrimitives } from '../crypto/node-primitives.ts';

/** Why the exit dropped a packet (the bridge adds the drops of the offer path: bad-offer, no-asset, rate-limited). */
export type ExitDrop =
  | 'bad-length'
  | 'bad-version'
  | 'window-full'
  | 'bad-key'
  | 'bad-mac'
  | 'bad-payload'
  | 'replayed'
  | 'not-for-the-exit'
  | 'unknown-type';

export type ExitResult =
  | { outcome: 'offer'; message: Uint8Array }
  | { outcome: 'dummy' }
  | { outcome: ExitDrop; detail: string };

/** Packets peeled per offer window by default: two rounds of 65,536 meters' packets. */
export const DEFAULT_WINDOW_PACKETS = 131_072;
/** Refused or duplicate offers one trading key may cause per window by default (an honest meter: one or two resends). */
export const DEFAULT_KEY_BUDGET = 8;

export interface MixExitOptions {
  /** The exit key's private half, 32 bytes. */
  privateKey: Uint8Array;
  windowPackets?: number;
  keyBudget?: number;
}

export class MixExit {
  private readonly ecdh: ECDH;
  private readonly windowPackets: number;
  private readonly keyBudget: number;
  private window = -Infinity;
  /** Packets that cost an ECDH in this window. */
  private worked = 0;
  private tags = new Set<string>();
  private previousTags = new Set<string>();
  private charges = new Map<string, number>();

  constructor(options: MixExitOptions) {
    this.ecdh = createECDH('prime256v1');
    this.ecdh.setPrivateKey(options.privateKey);
    this.windowPackets = Math.max(1, options.windowPackets ?? DEFAULT_WINDOW_PACKETS);
    this.keyBudget = Math.max(1, options.keyBudget ?? DEFAULT_KEY_BUDGET);
  }

  /** Replay tags held (this window's and the previous one's): at most 2 · windowPackets. */
  get replayTags(): number {
    return this.tags.size + this.previousTags.size;
  }

  /** One packet that arrived during offer window `window` (the market interval it is for). Never throws. */
  take(packet: Uint8Array, window: number): ExitResult {
    this.enter(window);
    let ephemeralKey: Uint8Array;
    try {
      ephemeralKey = onionEphemeralKey(packet);
    } catch (err) {
      return drop(err);
    }
    if (this.worked >= this.windowPackets)
      return {
        outcome: 'window-full',
        detail: `${this.windowPackets} packets were peeled in this offer window already: dropped unread`,
      };
    this.worked++;
    let shared: Uint8Array;
    try {
      shared = new Uint8Array(this.ecdh.computeSecret(Buffer.concat([Buffer.from([4]), ephemeralKey])));
    } catch {
      return { outcome: 'bad-key', detail: 'the ephemeral key is not a point on P-256' };
    }
    let peeled;
    let tags = this.tags;
    try {
      peeled = peelOnionPacket(nodeCryptoPrimitives, window, shared, packet);
    } catch (err) {
      if (!(err instanceof OnionPacketError && err.reason === 'bad-mac')) return drop(err);
      try {
        peeled = peelOnionPacket(nodeCryptoPrimitives, window - 1, shared, packet);
        tags = this.previousTags;
      } catch {
        return drop(err);
      }
    }
    const tag = Buffer.from(peeled.replayTag).toString('hex');
    if (tags.has(tag)) return { outcome: 'replayed', detail: 'a packet with this replay tag arrived before' };
    tags.add(tag);
    if (peeled.nextRelayId)
      return {
        outcome: 'not-for-the-exit',
        detail: `the packet names a next relay (${Buffer.from(peeled.nextRelayId).toString('hex')}): the exit forwards nothing`,
      };
    if (peeled.payloadType === PAYLOAD_OFFER) return { outcome: 'offer', message: peeled.payload! };
    if (peeled.payloadType === PAYLOAD_DUMMY) return { outcome: 'dummy' };
    return { outcome: 'unknown-type', detail: `payload type ${peeled.payloadType} (known: 1 offer, 2 dummy)` };
  }

  /** Has trading key `keyId` caused its window's budget of refused or duplicate offers? */
  keyExhausted(keyId: string): boolean {
    return (this.charges.get(keyId) ?? 0) >= this.keyBudget;
  }

  /** Charges keyId one refused or duplicate offer (at most one entry per offer taken: bounded by windowPackets). */
  chargeKey(keyId: string): void {
    this.charges.set(keyId, (this.charges.get(keyId) ?? 0) + 1);
  }

  private enter(window: number): void {
    if (window <= this.window) return; // a clock set back stays in the window it was in
    this.previousTags = window === this.window + 1 ? this.tags : new Set();
    this.tags = new Set();
    this.charges = new Map();
    this.worked = 0;
    this.window = window;
  }
}

function drop(err: unknown): { outcome: ExitDrop; detail: string } {
  if (err instanceof OnionPacketError) return { outcome: err.reason, detail: err.message };
  return { outcome: 'bad-payload', detail: `unexpected: ${(err as Error).message}` };
}
