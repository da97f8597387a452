// Synthetic broker traces of a trading round, for testing the linker (offer-linker.ts) against known truth and
// for estimating relay batches at sizes the testbed cannot run. Each of N meters sends one packet per round at a
// random moment in the first half of slot 0 (its offer, or a dummy); how packets travel depends on the mix:
//
//   direct   no mixnet: offers go straight to the bridge on the meter's offer topic, dummies are not sent;
//   perfect  one ideal mix node every packet passes through, flushing them all shuffled at the slot's end;
//   naive    two random relays per path (never the sender), each forwarding a packet as soon as it has it;
//   batched two random relays per path, each holding what it got during a slot and forwarding it shuffled at the
//            next slot's start (the design: protocol/mix-schedule.ts).
//
// The bridge takes offers in arrival order and sends what it holds every `tickMs` in one transaction (as the
// bridge did before it held rounds); or, with `exitHoldsRound`, holds each round's offers until the round ends
// and sends them in the bridge's own order (host-tools/bridge/batch-order.ts, with this run's seeded draws).
import { interleaveKeepingKeyOrder } from '../bridge/batch-order.ts';
import { cryptoShuffle } from '../crypto/shuffle.ts';
import { OFFER_MESSAGE_LENGTH } from '../../firmware/src/protocol/offer.ts';
import { ONION_PACKET_BYTES } from '../../firmware/src/protocol/onion-packet.ts';
import { MIX_EXIT_TOPIC, offerTopic, relayInboxTopic } from '../../firmware/src/protocol/topics.ts';
import { payloadHash, type BrokerTrace, type PublishRecord } from './broker-observer.ts';
import type { ChainOffer } from './offer-linker.ts';
import { seededRandom } from './seeded-random.ts';

export type SyntheticMix = 'direct' | 'perfect' | 'naive' | 'batched';

export interface SyntheticOptions {
  mix: SyntheticMix;
  meters: number;
  rounds: number;
  seed: number;
  /** Share of meters with an offer in a round (the others send a dummy). Default 1. */
  offerShare?: number;
  /** Default 500 (a 10-second interval's slot). */
  slotMs?: number;
  /** How often the bridge sends what it queued. Default 60. */
  tickMs?: number;
  /** Offers per transaction at most. Default 100. */
  batchSize?: number;
  /** The bridge sends each round's offers when the round ends, in its batch order, instead of as they come. */
  exitHoldsRound?: boolean;
  /** With exitHoldsRound: a round's offers in arrival order instead (the held round before batch-order.ts). */
  heldInArrivalOrder?: boolean;
}

export interface SyntheticRun {
  trace: BrokerTrace;
  offers: ChainOffer[];
  /** Offer id → the meter that sent it. */
  truth: Map<string, string>;
  /** Round of each publish (the schedule the attacker knows). */
  roundOf: (p: PublishRecord) => number;
  /** The most packets any relay held for one flush. */
  largestBatch: number;
  /** How many packets each flush of a relay carried (batching mixes). */
  flushSizes: number[];
}

const SLOTS_PER_ROUND = 4;
const BRIDGE = 'bridge';
const MIX_NODE = 'mix-node';

interface Packet {
  offerId?: string;
  sender: string;
  /** Hops still to go: inbox owners, then the exit. */
  path: string[];
}

export function syntheticRun(options: SyntheticOptions): SyntheticRun {
  const random = seededRandom(options.seed);
  const slotMs = options.slotMs ?? 500;
  const tickMs = options.tickMs ?? 60;
  const batchSize = options.batchSize ?? 100;
  const offerShare = options.offerShare ?? 1;
  const meters = Array.from({ length: options.meters }, (_, i) => `meter-${String(i + 1).padStart(4, '0')}`);
  const inbox = (meter: string) => relayInboxTopic(meter.replace('meter-', '').padStart(16, '0'));
  const trace: BrokerTrace = { publishes: [], subscriptions: [] };
  for (const m of [...meters, MIX_NODE]) trace.subscriptions.push({ timeMs: 0, clientId: m, topic: inbox(m) });
  trace.subscriptions.push({ timeMs: 0, clientId: BRIDGE, topic: MIX_EXIT_TOPIC });
  const truth = new Map<string, string>();
  const roundMs = SLOTS_PER_ROUND * slotMs;
  const bridgeArrivals: Array<{ timeMs: number; offerId?: string; sender: string }> = [];
  let largestBatch = 0;
  const flushSizes: number[] = [];

  // Events in time order: a packet published by `from` at `timeMs`, arriving where its path says.
  const queue: Array<{ timeMs: number; from: string; packet: Packet }> = [];
  const held = new Map<string, Packet[]>();
  const publish = (timeMs: number, from: string, packet: Packet) => {
    const next = packet.path[0];
    const topic = next === BRIDGE ? MIX_EXIT_TOPIC : inbox(next);
    // Every hop changes every byte of an onion packet.
    const bytes = `${trace.publishes.length}`;
    trace.publishes.push({ timeMs, clientId: from, topic, bytes: ONION_PACKET_BYTES, payloadHash: payloadHash(bytes) });
    queue.push({ timeMs: timeMs + 1, from, packet });
  };
  const below = (n: number) => Math.floor(random() * n);
  const flush = (at: number) => {
    for (const [relay, packets] of held) {
      if (packets.length === 0) continue;
      largestBatch = Math.max(largestBatch, packets.length);
      flushSizes.push(packets.length);
      let t = at + random() * 5;
      for (const packet of cryptoShuffle(packets.splice(0), below)) publish((t += 0.5 + random()), relay, packet);
    }
  };

  for (let r = 0; r < options.rounds; r++) {
    const start = r * roundMs;
    for (const sender of meters) {
      const at = start + (random() * slotMs) / 2;
      const offerId = random() < offerShare ? `offer-${r}-${sender}` : undefined;
      if (offerId) truth.set(offerId, sender);
      if (options.mix === 'direct') {
        if (!offerId) continue;
        trace.publishes.push({
          timeMs: at,
          clientId: sender,
          topic: offerTopic(sender),
          bytes: OFFER_MESSAGE_LENGTH,
          payloadHash: payloadHash(offerId),
        });
        bridgeArrivals.push({ timeMs: at + 1, offerId, sender });
        continue;
      }
      const path = options.mix === 'perfect' ? [MIX_NODE, BRIDGE] : [...twoRelays(meters, sender, random), BRIDGE];
      publish(at, sender, { offerId, sender, path });
    }
    // Deliver in time order; batching relays flush at each slot start.
    const flushes =
      options.mix === 'batched' || options.mix === 'perfect' ? [1, 2, 3].map((s) => start + s * slotMs) : [];
    for (;;) {
      queue.sort((a, b) => a.timeMs - b.timeMs);
      const nextFlush = flushes[0] ?? Number.POSITIVE_INFINITY;
      const event = queue[0];
      if (!event && flushes.length === 0) break;
      if (!event || nextFlush <= event.timeMs) {
        flush(flushes.shift()!);
        continue;
      }
      queue.shift();
      const [here, ...rest] = event.packet.path;
      const packet = { ...event.packet, path: rest };
      if (here === BRIDGE)
        bridgeArrivals.push({ timeMs: event.timeMs, offerId: packet.offerId, sender: packet.sender });
      else if (options.mix === 'naive') publish(event.timeMs + 5 + random() * 25, here, packet);
      else held.set(here, [...(held.get(here) ?? []), packet]);
    }
  }

  // The bridge: every tick, what it queued (offers only, oldest first) goes in one transaction; or every round's
  // end, what came in the round, in the bridge's order (each sender signs with its own trading key).
  const offers: ChainOffer[] = [];
  const pending = bridgeArrivals.filter((a) => a.offerId).sort((a, b) => a.timeMs - b.timeMs);
  let batch = 0;
  if (options.exitHoldsRound) {
    for (let end = roundMs; pending.length > 0; end += roundMs) {
      const arrived = pending.splice(0, pending.filter((a) => a.timeMs < end).length);
      const round = options.heldInArrivalOrder ? arrived : interleaveKeepingKeyOrder(arrived, (a) => a.sender, below);
      for (let i = 0; i < round.length; i += batchSize, batch++)
        round
          .slice(i, i + batchSize)
          .forEach((a, position) => offers.push(chainOffer(a.offerId!, batch, position, end)));
    }
  }
  for (let tick = tickMs; pending.length > 0; tick += tickMs) {
    while (pending.length > 0 && pending[0].timeMs < tick) {
      const taken = pending.splice(0, Math.min(batchSize, pending.filter((a) => a.timeMs < tick).length));
      taken.forEach((a, position) => offers.push(chainOffer(a.offerId!, batch, position, tick)));
      batch++;
    }
  }
  return {
    trace,
    offers,
    truth,
    roundOf: (p) => Math.floor(p.timeMs / roundMs),
    largestBatch,
    flushSizes,
  };
}

/** An offer as the chain shows it: its message's bytes too (those the broker carried, without the mixnet). */
function chainOffer(id: string, batch: number, position: number, submittedMs: number): ChainOffer {
  return { id, batch, position, submittedMs, messageHash: payloadHash(id) };
}

/** Two distinct relays, neither the sender, uniformly (firmware/src/mixnet/onion-sender.ts choosePath). */
function twoRelays(meters: string[], sender: string, random: () => number): [string, string] {
  const others = meters.filter((m) => m !== sender);
  const first = others[Math.floor(random() * others.length)];
  const rest = others.filter((m) => m !== first);
  return [first, rest[Math.floor(random() * rest.length)]];
}
