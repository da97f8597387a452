// A meter's mixnet node (docs/mixnet.md): its relay (mix-relay.ts) and its sender (mix-sender.ts) on the
// rounds of protocol/mix-schedule.ts, timed by the meter's clock (SNTP on a board). Per offer window:
//
//   BUILD_LEAD_MS before each round  the sender builds the round's packet (offer, resend or dummy);
//   the start of every slot          the relay forwards what it holds (and slot 0: the sender publishes at a
//                                    random moment in its first half);
//   the end of the window's last slot  the relay forwards what came late; from then until the next window's
//                                    rounds it takes no packets in ('out-of-round').
//
// The replay tags are forgotten at the end of each window, not each round: a packet of round 0 replayed
// into round 1 would come out of the relay as the same bytes again and tell the broker which output was its.
// The market's clock (genesis, interval length) comes from the market info (setMarketClock).
import type { Clock } from '../platform/clock.ts';
import type { Sha256 } from '../protocol/crypto/sha256.ts';
import {
  mixSlotAt,
  ROUNDS_PER_WINDOW,
  roundStartMs,
  SLOTS_PER_ROUND,
  slotMs,
  type MarketClock,
} from '../protocol/mix-schedule.ts';
import type { OnionPrimitives } from '../protocol/onion-packet.ts';
import { MixRelay, type MixMqtt } from './mix-relay.ts';
import { MixSender } from './mix-sender.ts';
import type { OnionSecureElement } from './onion-sender.ts';
import { RandomStream } from './random-stream.ts';
import { RelayBatch } from './relay-batch.ts';
import type { RelayDirectoryView } from './relay-directory-view.ts';

/**
 * Packets a relay holds at most (one slot's arrivals). About 90 JsVars each: 6 hold about 540 of the 16,383.
 * Arrivals per relay per slot are about Poisson(1) whatever the number of meters (each packet visits two of
 * the N relays, one per slot), so 7 or more in one slot (0.008 %) happen under a flood, not in normal rounds.
 */
export const RELAY_CAPACITY = 6;
/** Replay tags kept per window: about 4 verified packets per relay per window; 8 bytes each. */
export const RELAY_MAX_TAGS = 32;

export interface MixNodeOptions {
  /** The secure element: GenKey/ECDH of TempKey to send, ECDH in MIX_SLOT to relay, Random for the seed. */
  se: OnionSecureElement & {
    random(): Uint8Array;
    ecdh(source: number | 'tempkey', peerPublicKey: Uint8Array): Uint8Array;
  };
  /** The slot of this meter's mix key (protocol/slot-map.ts MIX_SLOT). */
  mixSlot: number;
  /** kidOf this meter's mix key. */
  relayId: Uint8Array;
  primitives: OnionPrimitives & { sha256: Sha256 };
  directory: RelayDirectoryView;
  mqtt: MixMqtt;
  clock: Clock;
  /** True while the meter should relay nothing (main.ts: while the outbox sends a backlog). */
  busy(): boolean;
  log(message: string): void;
  /** Defaults RELAY_CAPACITY, RELAY_MAX_TAGS (tests use smaller ones). */
  capacity?: number;
  maxTags?: number;
}

/**
 * How long before its round a packet is built: half a slot, at most 5 s. Building takes 6 SE commands and the
 * layers in JavaScript, about a second on a meter; the later it is built, the more of slot 3's receipts it
 * sees (an offer settled after the build goes once more: a copy the bridge drops). At 15-minute intervals
 * slot 3 leaves 40 s for the receipts; at the testbed's 10 s, 250 ms.
 */
const BUILD_LEAD_MAX_MS = 5000;
/**
 * Round 1's packet is built earlier when the last build took longer than half a slot: 1.5 times that build,
 * at most 3 slots (round 0's packet must be out first) and BUILD_LEAD_MAX_MS. At 30-second intervals a slot
 * is 1.5 s, less than a build on a loaded meter (Espruino's interpreter: about 0.8 s idle, 2.6 s with three
 * meters on two cores). Round 0's stays at half a slot: its slot before is when the DSO issues the assets,
 * and the offer must be signed before its packet is built.
 */
const BUILD_TIME_MARGIN = 1.5;
const BUILD_LEAD_MAX_SLOTS = 3;

const BUILD = 0;
const SLOT = 1;
const CLOSE = 2;

interface MixEvent {
  at: number;
  kind: number;
  interval: number;
  round: number;
  slot: number;
}

export class MixNode {
  declare readonly relay: MixRelay;
  declare readonly sender: MixSender;
  declare readonly batch: RelayBatch;
  private declare readonly o: MixNodeOptions;
  private declare market: MarketClock | null;
  private declare timer: number | null;

  constructor(options: MixNodeOptions) {
    const self = this;
    const o = options;
    this.o = o;
    this.market = null;
    this.timer = null;
    const random = new RandomStream(o.primitives.sha256, function () {
      return o.se.random();
    });
    this.batch = new RelayBatch({
      primitives: o.primitives,
      ecdh: function (ephemeralKey) {
        return o.se.ecdh(o.mixSlot, ephemeralKey);
      },
      randomBelow: function (n) {
        return random.randomBelow(n);
      },
      capacity: o.capacity || RELAY_CAPACITY,
      maxTags: o.maxTags || RELAY_MAX_TAGS,
    });
    this.relay = new MixRelay({
      relayId: o.relayId,
      batch: this.batch,
      mqtt: o.mqtt,
      windowNow: function () {
        return self.windowNow();
      },
      busy: o.busy,
      maxPerSlot: 2 * (o.capacity || RELAY_CAPACITY),
      exit: function () {
        return o.directory.isComplete() ? o.directory.exit() : undefined;
      },
      log: o.log,
    });
    this.sender = new MixSender({
      se: o.se,
      primitives: o.primitives,
      directory: o.directory,
      relayId: o.relayId,
      random: random,
      mqtt: o.mqtt,
      clock: o.clock,
      log: o.log,
    });
  }

  /** Subscribes to the inbox (before or after the client connects). Rounds run once the market clock is known. */
  start(): void {
    this.relay.start();
  }

  /** The market's clock (from the market info): the rounds follow it from now on. */
  setMarketClock(clock: MarketClock): void {
    const old = this.market;
    this.market = { genesisTime: clock.genesisTime, intervalSeconds: clock.intervalSeconds };
    if (old && old.genesisTime === clock.genesisTime && old.intervalSeconds === clock.intervalSeconds) return;
    this.scheduleAfter(this.o.clock.now() * 1000);
  }

  /** The trader's signed offer for `interval`: sent through the mixnet from the next round on. */
  carry(interval: number, message: Uint8Array): void {
    this.sender.carry(interval, message);
  }

  /** A receipt for the offer of `interval` came: no more resends. */
  settle(interval: number): void {
    this.sender.settle(interval);
  }

  /**
   * The window whose rounds take packets in now: in a round's slots, or up to half a slot before round 0 (clock
   * skew); -1 otherwise.
   */
  private windowNow(): number {
    const m = this.market;
    if (!m) return -1;
    const ms = this.o.clock.now() * 1000;
    const slot = mixSlotAt(m, ms) || mixSlotAt(m, ms + slotMs(m) / 2);
    return slot ? slot.interval : -1;
  }

  /** The first event of the windows' schedule after Unix ms `after`. */
  private nextEvent(after: number): MixEvent {
    const m = this.market as MarketClock;
    const length = slotMs(m);
    const current = Math.floor((after / 1000 - m.genesisTime) / m.intervalSeconds) + 1;
    let best: MixEvent | null = null;
    // The current window's events, or else the next window's (after its last slot ended).
    for (let d = current; ; d++) {
      for (let r = 0; r < ROUNDS_PER_WINDOW; r++) {
        const start = roundStartMs(m, d, r);
        const candidates: MixEvent[] = [
          {
            at: start - this.buildLeadMs(r, length),
            kind: BUILD,
            interval: d,
            round: r,
            slot: 0,
          },
        ];
        for (let s = 0; s < SLOTS_PER_ROUND; s++)
          candidates.push({ at: start + s * length, kind: SLOT, interval: d, round: r, slot: s });
        if (r === ROUNDS_PER_WINDOW - 1)
          candidates.push({
            at: start + SLOTS_PER_ROUND * length,
            kind: CLOSE,
            interval: d,
            round: r,
            slot: SLOTS_PER_ROUND,
          });
        for (let i = 0; i < candidates.length; i++) {
          const c = candidates[i];
          if (c.at > after && (!best || c.at < best.at)) best = c;
        }
      }
      if (best) return best;
    }
  }

  private buildLeadMs(round: number, slotLength: number): number {
    const half = Math.min(Math.floor(slotLength / 2), BUILD_LEAD_MAX_MS);
    if (round === 0) return half;
    const lead = Math.max(
      half,
      Math.min(
        Math.ceil(BUILD_TIME_MARGIN * this.sender.buildMs),
        BUILD_LEAD_MAX_SLOTS * slotLength,
        BUILD_LEAD_MAX_MS,
      ),
    );
    // Never on a slot's start: the schedule takes the next event strictly after the last, and a tie would skip it.
    return lead % slotLength === 0 ? lead + 1 : lead;
  }

  private scheduleAfter(after: number): void {
    const self = this;
    const o = this.o;
    if (this.timer !== null) o.clock.clearTimeout(this.timer);
    const event = this.nextEvent(after);
    this.timer = o.clock.setTimeout(
      function () {
        self.timer = null;
        self.run(event);
        self.scheduleAfter(event.at);
      },
      Math.max(1, event.at - o.clock.now() * 1000),
    );
  }

  private run(event: MixEvent): void {
    const m = this.market as MarketClock;
    try {
      if (event.kind === BUILD) {
        this.sender.prepare(event.interval, event.round, roundStartMs(m, event.interval, event.round), slotMs(m));
        return;
      }
      this.relay.flush(event.interval, event.round, event.slot);
      if (event.kind === CLOSE) this.batch.forgetTags();
    } catch (e) {
      this.o.log('mix: ' + ((e as Error).message || e));
    }
  }
}
