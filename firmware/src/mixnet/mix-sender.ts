// A meter as a mixnet sender (docs/mixnet.md): in slot 0 of every round exactly one packet, the offer the
// trader handed over (until a receipt settles it: sent again each round, decision 4) or else a dummy, so the
// broker cannot tell who trades. The packet is built shortly before the round (mix-node.ts: two relays drawn
// from the directory, never this meter, then the exit; 6 SE commands: onion-sender.ts) and published at a
// random moment in the first half of slot 0. With no usable directory nothing is sent (and an offer never goes the
// direct way instead).
import { PAYLOAD_DUMMY, PAYLOAD_OFFER, type OnionPrimitives } from '../protocol/onion-packet.ts';
import { bytesToHex } from '../protocol/hex.ts';
import { ROUNDS_PER_WINDOW } from '../protocol/mix-schedule.ts';
import { relayInboxTopic } from '../protocol/topics.ts';
import type { Clock } from '../platform/clock.ts';
import { choosePath, sealOnion, type OnionSecureElement } from './onion-sender.ts';
import type { MixMqtt } from './mix-relay.ts';
import type { RandomStream } from './random-stream.ts';
import type { RelayDirectoryView } from './relay-directory-view.ts';

export interface MixSenderOptions {
  se: OnionSecureElement;
  primitives: OnionPrimitives;
  directory: RelayDirectoryView;
  /** This meter's relay id: a path never goes through it. */
  relayId: Uint8Array;
  random: RandomStream;
  mqtt: MixMqtt;
  clock: Clock;
  log(message: string): void;
}

/** What the sender does per round, counted since boot. */
export interface MixSenderStats {
  offers: number;
  resends: number;
  dummies: number;
  /** Rounds with no packet: no usable directory, the SE failed, too late, or not connected. */
  missed: number;
}

interface Pending {
  interval: number;
  /** The 177-byte offer message (protocol/offer.ts). */
  message: Uint8Array;
  sends: number;
}

export class MixSender {
  declare readonly stats: MixSenderStats;
  /** Wall ms the last packet took to build (SE commands and layers), 0 before the first: mix-node.ts times builds by it. */
  declare buildMs: number;
  private declare readonly o: MixSenderOptions;
  private declare pending: Pending | null;
  private declare timer: number | null;
  /** The round last built for (interval · ROUNDS_PER_WINDOW + round), -1 before the first. */
  private declare builtRound: number;

  constructor(options: MixSenderOptions) {
    this.o = options;
    this.stats = { offers: 0, resends: 0, dummies: 0, missed: 0 };
    this.pending = null;
    this.timer = null;
    this.buildMs = 0;
    this.builtRound = -1;
  }

  /** The offer for `interval` goes in each of its window's rounds from the next one on, until settled. */
  carry(interval: number, message: Uint8Array): void {
    this.pending = { interval: interval, message: message, sends: 0 };
  }

  /** A receipt came for the offer of `interval`: it is not sent again. */
  settle(interval: number): void {
    if (this.pending && this.pending.interval === interval) this.pending = null;
  }

  /**
   * Builds this round's packet now (before the round) and publishes it at a random moment in the first half
   * of slot 0, which starts at `startMs` and lasts `slotMs`. Never throws.
   */
  prepare(interval: number, round: number, startMs: number, slotMs: number): void {
    // One packet per round, however often its build comes due: the node's schedule times a build by the last
    // build's duration, so the moment can move after the build ran (a second packet would tell the broker who
    // sent twice; a second build spends 6 SE commands).
    const roundId = interval * ROUNDS_PER_WINDOW + round;
    if (roundId === this.builtRound) return;
    this.builtRound = roundId;
    const o = this.o;
    const self = this;
    const what = 'for interval ' + interval + ' round ' + round;
    if (this.timer !== null) o.clock.clearTimeout(this.timer);
    this.timer = null;
    const pending = this.pending && this.pending.interval === interval ? this.pending : null;
    const kind = pending ? (pending.sends > 0 ? 'resend' : 'offer') : 'dummy';
    let packet: Uint8Array;
    let topic: string;
    try {
      const d = o.directory;
      const exit = d.isComplete() ? d.exit() : undefined;
      if (!exit) {
        this.missed('no usable relay directory: no ' + kind + ' sent ' + what);
        return;
      }
      const buildStart = o.clock.now();
      o.random.reseed();
      const path = choosePath(d.relayCount(), d.indexOf(o.relayId), function (n) {
        return o.random.randomBelow(n);
      });
      const relays = [d.relayAt(path[0]), d.relayAt(path[1])];
      packet = pending
        ? sealOnion(o.se, o.primitives, interval, relays, exit, PAYLOAD_OFFER, pending.message)
        : sealOnion(o.se, o.primitives, interval, relays, exit, PAYLOAD_DUMMY, new Uint8Array(0));
      topic = relayInboxTopic(bytesToHex(relays[0].relayId));
      this.buildMs = Math.round((o.clock.now() - buildStart) * 1000);
    } catch (e) {
      this.missed('cannot build the ' + kind + ' ' + what + ': ' + ((e as Error).message || e));
      return;
    }
    const halfSlot = Math.floor(slotMs / 2);
    const sendAt = startMs + o.random.randomBelow(Math.max(1, halfSlot));
    this.timer = o.clock.setTimeout(
      function () {
        self.timer = null;
        // A meter that ran late (a long task, a slow SE) does not send into the relays' next slot.
        if (o.clock.now() * 1000 >= startMs + slotMs) {
          self.missed('built too late: no ' + kind + ' sent ' + what);
          return;
        }
        let sent = false;
        try {
          sent = o.mqtt.publish(topic, packet, 0);
        } catch (e) {
          o.log('mix: cannot publish: ' + ((e as Error).message || e));
        }
        if (!sent) {
          self.missed('not connected: no ' + kind + ' sent ' + what);
          return;
        }
        if (pending) pending.sends++;
        if (kind === 'offer') self.stats.offers++;
        else if (kind === 'resend') self.stats.resends++;
        else self.stats.dummies++;
        o.log('mix: sent ' + kind + ' ' + what);
      },
      Math.max(1, sendAt - o.clock.now() * 1000),
    );
  }

  private missed(why: string): void {
    this.stats.missed++;
    this.o.log('mix: ' + why);
  }
}
