// The testbed's `mix` figures (issue 11 item 6): what the meters said about the mixnet on their consoles (the
// line prefixes of docs/mixnet.md), what reached the bridge, and how well the broker's observer linked offers
// to meters (host-tools/observer/), against chance.
import { type MarketClock, mixSlotAt, slotMs } from '../../firmware/src/protocol/mix-schedule.ts';
import { MIX_EXIT_TOPIC, meterIdFromOfferTopic, relayInboxTopic } from '../../firmware/src/protocol/topics.ts';
import { ONION_PACKET_BYTES } from '../../firmware/src/protocol/onion-packet.ts';
import type { BrokerTrace, PublishRecord } from '../observer/broker-observer.ts';

/** What the meters' consoles said about the mixnet, summed over meters. */
export interface MixLogCounts {
  /** Packets sent as sender, by kind. */
  offers: number;
  resends: number;
  dummies: number;
  /** Packets forwarded as relay, and the most one relay forwarded at once. */
  forwarded: number;
  largestBatch: number;
  /** Packets relays dropped (bad length, MAC, key, replay, full batch ...). */
  dropped: number;
}

export interface MixSummary {
  /** Whether the meters sent their offers through the mixnet. */
  enabled: boolean;
  /** Packets the meters sent as senders (offers, resends, dummies). */
  packets: number;
  dummies: number;
  /** Offers that reached the bridge (through the exit, or straight without the mixnet). */
  delivered: number;
  /** Offers sent and never delivered, resends counted. */
  lost: number;
  resent: number;
  /** Share of the chain's offers whose sender the broker's observer named correctly; null: no observer (mosquitto). */
  observerLinkRate: number | null;
  /** 1/N: a guess. */
  chance: number;
  relays: {
    forwarded: number;
    dropped: number;
    largestBatch: number;
    /** Mean time a packet waited in a relay, ms of the meters' clock (arrival in its inbox to its next forward). */
    hopLatencyMs: number;
  };
  /** Onion packets at the bridge's exit by outcome (offer, dummy, or why dropped: docs/bridge.md). */
  exit: Record<string, number>;
}

export function emptyMixCounts(): MixLogCounts {
  return { offers: 0, resends: 0, dummies: 0, forwarded: 0, largestBatch: 0, dropped: 0 };
}

const SENT = /mix: sent (offer|resend|dummy) for interval \d+ round \d+/;
const FORWARDED = /mix: forwarded (\d+) in \d+\.\d+\.\d+/;
const DROPPED = /mix: dropped (\d+) \(/;

/** Counts one console line of a meter into `counts`. */
export function countMixLine(counts: MixLogCounts, line: string): void {
  const sent = SENT.exec(line);
  if (sent) {
    if (sent[1] === 'offer') counts.offers++;
    else if (sent[1] === 'resend') counts.resends++;
    else counts.dummies++;
    return;
  }
  const forwarded = FORWARDED.exec(line);
  if (forwarded) {
    const n = Number(forwarded[1]);
    counts.forwarded += n;
    counts.largestBatch = Math.max(counts.largestBatch, n);
    return;
  }
  const dropped = DROPPED.exec(line);
  if (dropped) counts.dropped += Number(dropped[1]);
}

/** A listener for a board's console output that counts whole lines into `counts`. */
export function mixLineCounter(counts: MixLogCounts): (text: string) => void {
  let partial = '';
  return (text) => {
    const lines = (partial + text).split(/\r?\n/);
    partial = lines.pop() ?? '';
    for (const line of lines) countMixLine(counts, line);
  };
}

/**
 * Offers the meters sent straight to the bridge (no mixnet): one per meter per market interval, however often
 * it was published (a resend is the same offer). The interval is the window's the publish fell in.
 */
export function directOffersSent(trace: BrokerTrace, clock: MarketClock): number {
  const offers = new Set<string>();
  for (const p of trace.publishes) {
    const meter = meterIdFromOfferTopic(p.topic);
    if (meter === undefined || p.simMs === undefined) continue;
    const interval = Math.floor((p.simMs / 1000 - clock.genesisTime) / clock.intervalSeconds) + 1;
    offers.add(`${meter} ${interval}`);
  }
  return offers.size;
}

/**
 * The mix round a publish fell in, by the meters' clock ("interval.round"); undefined between rounds. The
 * broker's view of that clock runs up to a slot behind the meters' (the emulated meters' work holds the shared
 * virtual clock back): a round is taken to start a slot early, so a round's sends fall in it.
 */
export function mixRoundOf(clock: MarketClock): (p: PublishRecord) => string | undefined {
  return (p) => {
    if (p.simMs === undefined) return undefined;
    const slot = mixSlotAt(clock, p.simMs + slotMs(clock));
    return slot ? `${slot.interval}.${slot.round}` : undefined;
  };
}

/**
 * The mean wait of a packet in a relay, ms of the meters' clock: from its arrival in the relay's inbox to the
 * relay's next mix packet but its own (its first into an inbox in each round).
 */
export function hopLatencyMs(trace: BrokerTrace, clock: MarketClock): number {
  const owner = new Map<string, string>();
  for (const s of trace.subscriptions) owner.set(s.topic, s.clientId);
  const inbox = relayInboxTopic('');
  const roundOf = mixRoundOf(clock);
  const mix = trace.publishes.filter(
    (p) => p.bytes === ONION_PACKET_BYTES && p.simMs !== undefined && p.topic.startsWith(inbox),
  );
  const forwards = new Map<string, number[]>();
  const ownSent = new Set<string>();
  for (const p of mix) {
    const round = `${p.clientId} ${roundOf(p)}`;
    if (p.topic !== MIX_EXIT_TOPIC && !ownSent.has(round)) {
      ownSent.add(round);
      continue;
    }
    forwards.set(p.clientId, [...(forwards.get(p.clientId) ?? []), p.simMs!]);
  }
  let total = 0;
  let n = 0;
  for (const p of mix) {
    const relay = owner.get(p.topic);
    if (p.topic === MIX_EXIT_TOPIC || relay === undefined) continue;
    const next = (forwards.get(relay) ?? []).find((t) => t > p.simMs!);
    if (next === undefined) continue;
    total += next - p.simMs!;
    n++;
  }
  return n === 0 ? 0 : Math.round(total / n);
}

export interface MixSummaryInput {
  enabled: boolean;
  meters: number;
  counts: MixLogCounts;
  /** Offers that reached the bridge. */
  delivered: number;
  /** Distinct offers the meters sent (first sends; without the mixnet, from the observer's trace). */
  offersSent: number;
  observerLinkRate: number | null;
  hopLatencyMs: number;
  exit: Record<string, number>;
}

export function mixSummary(input: MixSummaryInput): MixSummary {
  const c = input.counts;
  return {
    enabled: input.enabled,
    packets: c.offers + c.resends + c.dummies,
    dummies: c.dummies,
    delivered: input.delivered,
    lost: Math.max(0, input.offersSent - input.delivered),
    resent: c.resends,
    observerLinkRate: input.observerLinkRate === null ? null : Math.round(input.observerLinkRate * 1000) / 1000,
    chance: Math.round((1 / input.meters) * 1000) / 1000,
    relays: {
      forwarded: c.forwarded,
      dropped: c.dropped,
      largestBatch: c.largestBatch,
      hopLatencyMs: input.hopLatencyMs,
    },
    exit: input.exit,
  };
}
