// The linker (issue 11 item 6): a passive attacker at the broker who tries to name the meter behind each offer
// on the chain from what the broker sees (broker-observer.ts: publisher, topic, size, time) and what the chain
// shows (which submitOffers transaction carried the offer, its place in it, when the bridge sent it). It knows
// the protocol, which is public: the topics, the packet sizes, one packet of its own per meter per round.
//
// Step 1, where each packet the bridge reads could have come from. A meter's offer sent straight to the bridge
// (offerTopic, 177 bytes) names its publisher. A mix packet (1,024 bytes) published by meter M is one of the
// packets M holds: those that arrived in M's inbox (whose topic M subscribed to) and have not left yet, plus,
// for a packet into an inbox, M's own packet of the round. The attacker does not know which: each held packet
// carries a weight and a distribution over senders; an output takes the weighted mixture, and every weight then
// shrinks by one output's worth ("pool mix" tracking). A relay forwarding each packet as it comes is traced
// exactly; a relay that collects a round's packets and forwards them shuffled leaves a mixture.
//
// Step 2, which packet the bridge read became which offer on chain. Bytes the broker carried that are on chain
// as they are (an offer sent straight to the bridge: the chain's calldata holds the same message) name the
// input outright. Otherwise timing: an offer arrived before its transaction was sent, and (unless the
// transaction before was full) after that one was sent. When the bridge sends offers in arrival order
// (`orderedBatches`), the chain's offers are its inputs in that order, less the dummies, duplicates and
// refusals the attacker cannot tell apart: the linker weighs every order-keeping assignment of offers to
// inputs (forward-backward over offers and inputs). When the bridge orders a transaction otherwise (as it does:
// at random but for each trading key's own offers, host-tools/bridge/batch-order.ts; a key's offers name one
// sender anyway), each offer is any of the inputs between the two transactions.
// Each offer gets the mixture of its inputs' distributions.
//
// Step 3: the most likely sender, ties broken by a seeded random draw; an offer it cannot place at all is
// guessed uniformly among the meters seen, which is chance.
import { MAX_BATCH } from '../bridge/bridge.ts';
import { OFFER_MESSAGE_LENGTH } from '../../firmware/src/protocol/offer.ts';
import { ONION_PACKET_BYTES } from '../../firmware/src/protocol/onion-packet.ts';
import { MIX_EXIT_TOPIC, meterIdFromOfferTopic, relayInboxTopic } from '../../firmware/src/protocol/topics.ts';
import type { BrokerTrace, PublishRecord } from './broker-observer.ts';
import { seededRandom } from './seeded-random.ts';

/** One offer on the chain, as anyone reading the chain and its mempool sees it. */
export interface ChainOffer {
  /** Its name (the digest, hex). */
  id: string;
  /** The submitOffers transaction that carried it, numbered in the order the bridge sent them. */
  batch: number;
  /** Its place in that transaction's list of offers. */
  position: number;
  /** Wall-clock ms when the bridge sent that transaction. */
  submittedMs: number;
  /** payloadHash (broker-observer.ts) of the message as the transaction carries it (signed bytes and signature). */
  messageHash?: string;
}

export interface LinkerOptions {
  /** Seeds the tie-break between equally likely senders. */
  seed: number;
  /** The mix round a publish falls in (the schedule is public); absent: one round, one own packet per meter. */
  roundOf?: (p: PublishRecord) => number | string | undefined;
  /** Offers per full transaction: after a full one, the next may hold offers that arrived earlier. */
  fullBatch?: number;
  /** Weight of an assignment to an input that arrived before the previous transaction (a late delivery). */
  lateWeight?: number;
  /** The bridge puts a transaction's offers in the order they arrived (default true). */
  orderedBatches?: boolean;
}

export interface OfferLink {
  offerId: string;
  /** The meter the linker names. */
  meter: string;
  /** The weight it gives that meter, 0..1. */
  probability: number;
}

type Distribution = Map<string, number>;
interface Held {
  dist: Distribution;
  weight: number;
  own: boolean;
}
interface BridgeInput {
  timeMs: number;
  dist: Distribution;
  payloadHash: string;
}

const INBOX_PREFIX = relayInboxTopic('');
/** Weights below this are forgotten: a packet whose weight has shrunk this far has left. */
const NEGLIGIBLE = 1e-9;

export function linkOffers(trace: BrokerTrace, offers: ChainOffer[], options: LinkerOptions): OfferLink[] {
  const { inputs, meters } = bridgeInputs(trace, options.roundOf);
  const ordered = [...offers].sort((a, b) => a.batch - b.batch || a.position - b.position);
  const posterior = placeOffers(ordered, inputs, options);
  const random = seededRandom(options.seed);
  const everyone = [...meters].sort();
  return ordered.map((offer, i) => {
    const dist: Distribution = new Map();
    for (const [j, p] of posterior[i]) addInto(dist, inputs[j].dist, p);
    return { offerId: offer.id, ...mostLikely(dist, everyone, random) };
  });
}

/** The share of offers whose named meter is the true sender (truth: offer id → meter); 0 for none. */
export function linkRate(links: OfferLink[], truth: Map<string, string>): number {
  const judged = links.filter((l) => truth.has(l.offerId));
  if (judged.length === 0) return 0;
  return judged.filter((l) => truth.get(l.offerId) === l.meter).length / judged.length;
}

/** Step 1: the packets the bridge read, in the order the broker took them, each with where it could come from. */
function bridgeInputs(
  trace: BrokerTrace,
  roundOf: LinkerOptions['roundOf'],
): { inputs: BridgeInput[]; meters: Set<string> } {
  const inboxOwner = new Map<string, string>();
  for (const s of trace.subscriptions)
    if (s.topic.startsWith(INBOX_PREFIX) && s.topic !== MIX_EXIT_TOPIC) inboxOwner.set(s.topic, s.clientId);
  const held = new Map<string, Held[]>();
  const ownRound = new Map<string, number | string | undefined>();
  const inputs: BridgeInput[] = [];
  const meters = new Set<string>();
  const publishes = [...trace.publishes].sort((a, b) => a.timeMs - b.timeMs);
  for (const p of publishes) {
    if (p.bytes === OFFER_MESSAGE_LENGTH && meterIdFromOfferTopic(p.topic) !== undefined) {
      meters.add(p.clientId);
      inputs.push({ timeMs: p.timeMs, dist: new Map([[p.clientId, 1]]), payloadHash: p.payloadHash });
      continue;
    }
    if (p.bytes !== ONION_PACKET_BYTES || !p.topic.startsWith(INBOX_PREFIX)) continue;
    const pool = held.get(p.clientId) ?? [];
    held.set(p.clientId, pool);
    if (p.topic === MIX_EXIT_TOPIC) {
      inputs.push({ timeMs: p.timeMs, dist: takeFrom(pool, false), payloadHash: p.payloadHash });
      continue;
    }
    meters.add(p.clientId);
    // Every meter sends one packet of its own per round: it is among what the meter may be publishing now.
    const round = roundOf?.(p);
    if (!ownRound.has(p.clientId) || ownRound.get(p.clientId) !== round) {
      ownRound.set(p.clientId, round);
      const at = pool.findIndex((h) => h.own);
      if (at >= 0) pool.splice(at, 1);
      pool.push({ dist: new Map([[p.clientId, 1]]), weight: 1, own: true });
    }
    let dist = takeFrom(pool, true);
    // More packets than it held: the attacker's best guess is the meter's own.
    if (dist.size === 0) dist = new Map([[p.clientId, 1]]);
    const owner = inboxOwner.get(p.topic);
    if (owner !== undefined) {
      const ownerPool = held.get(owner) ?? [];
      held.set(owner, ownerPool);
      ownerPool.push({ dist, weight: 1, own: false });
    }
  }
  return { inputs, meters };
}

/** One packet leaves `pool`: the weighted mixture of what it holds (its own packet only when `withOwn`). */
function takeFrom(pool: Held[], withOwn: boolean): Distribution {
  const eligible = pool.filter((h) => withOwn || !h.own);
  const total = eligible.reduce((n, h) => n + h.weight, 0);
  const out: Distribution = new Map();
  if (total <= NEGLIGIBLE) return out;
  for (const h of eligible) addInto(out, h.dist, h.weight / total);
  const keep = Math.max(0, (total - 1) / total);
  for (const h of eligible) h.weight *= keep;
  for (let i = pool.length - 1; i >= 0; i--) if (pool[i].weight < NEGLIGIBLE) pool.splice(i, 1);
  return out;
}

function addInto(into: Distribution, dist: Distribution, scale: number): void {
  if (scale <= 0) return;
  for (const [meter, p] of dist) into.set(meter, (into.get(meter) ?? 0) + p * scale);
}

/**
 * Step 2: for each offer (chain order), the inputs that may have carried it, with their probabilities. Bytes seen
 * at the broker and on chain name their input, which then carried no other offer; the rest go by timing.
 */
function placeOffers(
  offers: ChainOffer[],
  inputs: BridgeInput[],
  options: LinkerOptions,
): Array<Array<[number, number]>> {
  const carried = new Map(inputs.map((input, j) => [input.payloadHash, j]));
  const recognised = offers.map((o) => (o.messageHash === undefined ? undefined : carried.get(o.messageHash)));
  const taken = new Set(recognised.filter((j) => j !== undefined));
  const rest = offers.filter((_, i) => recognised[i] === undefined);
  const left = inputs.map((_, j) => j).filter((j) => !taken.has(j));
  const leftInputs = left.map((j) => inputs[j]);
  const timed =
    (options.orderedBatches ?? true)
      ? alignOffers(rest, leftInputs, {
          fullBatch: options.fullBatch ?? MAX_BATCH,
          lateWeight: options.lateWeight ?? 0.01,
        })
      : windowOffers(rest, leftInputs);
  let next = 0;
  return offers.map((_, i) => {
    const j = recognised[i];
    if (j !== undefined) return [[j, 1]];
    return timed[next++].map(([k, p]) => [left[k], p] as [number, number]);
  });
}

/**
 * Step 2 by timing, for a bridge that keeps arrival order: for each offer (chain order), the probability of each
 * input (arrival order) having carried it, over all order-keeping assignments, each weighted by the product of
 * its pairs' weights: 0 for an input that came after the offer's transaction was sent, `lateWeight` for one that
 * came before the previous transaction (when that one was not full), 1 otherwise. Rows are rescaled as they go
 * (only each row's shape matters); an offer no assignment fits restarts the chain of constraints there.
 */
function alignOffers(
  offers: ChainOffer[],
  inputs: BridgeInput[],
  { fullBatch, lateWeight }: { fullBatch: number; lateWeight: number },
): Array<Array<[number, number]>> {
  const k = offers.length;
  const m = inputs.length;
  if (k === 0) return [];
  const notBefore = earliestArrivals(offers, fullBatch);
  const weight = (i: number, j: number): number => {
    const t = inputs[j].timeMs;
    const o = offers[i];
    if (t >= o.submittedMs) return 0;
    return t < notBefore.get(o.batch)! ? lateWeight : 1;
  };
  const forward: Float64Array[] = [];
  for (let i = 0; i < k; i++) {
    const row = new Float64Array(m);
    let before = 0; // sum of the previous row over inputs before j
    let sum = 0;
    for (let j = 0; j < m; j++) {
      const reach = i === 0 ? 1 : before;
      row[j] = weight(i, j) * reach;
      sum += row[j];
      if (i > 0) before += forward[i - 1][j];
    }
    if (sum === 0) for (let j = 0; j < m; j++) sum += row[j] = weight(i, j);
    if (sum > 0) for (let j = 0; j < m; j++) row[j] /= sum;
    forward.push(row);
  }
  const backward: Float64Array[] = new Array(k);
  backward[k - 1] = new Float64Array(m).fill(1);
  for (let i = k - 2; i >= 0; i--) {
    const row = new Float64Array(m);
    let after = 0; // sum over inputs after j of the next offer's weight times its backward value
    let sum = 0;
    for (let j = m - 1; j >= 0; j--) {
      row[j] = after;
      sum += after;
      after += weight(i + 1, j) * backward[i + 1][j];
    }
    if (sum === 0) row.fill(1);
    else for (let j = 0; j < m; j++) row[j] /= sum;
    backward[i] = row;
  }
  return forward.map((row, i) => {
    let sum = 0;
    for (let j = 0; j < m; j++) sum += row[j] * backward[i][j];
    const cells: Array<[number, number]> = [];
    if (sum === 0) return cells;
    for (let j = 0; j < m; j++) {
      const p = (row[j] * backward[i][j]) / sum;
      if (p > NEGLIGIBLE) cells.push([j, p]);
    }
    return cells;
  });
}

/**
 * The earliest an offer of each transaction can have arrived, unless late: when the last transaction before it
 * that was not full was sent (the bridge sends everything it holds, up to `fullBatch` offers).
 */
function earliestArrivals(offers: ChainOffer[], fullBatch: number): Map<number, number> {
  const sizes = new Map<number, number>();
  const sentAt = new Map<number, number>();
  for (const o of offers) {
    sizes.set(o.batch, (sizes.get(o.batch) ?? 0) + 1);
    sentAt.set(o.batch, o.submittedMs);
  }
  const notBefore = new Map<number, number>();
  let bound = Number.NEGATIVE_INFINITY;
  for (const b of [...sentAt.keys()].sort((x, y) => x - y)) {
    notBefore.set(b, bound);
    if ((sizes.get(b) ?? 0) < fullBatch) bound = sentAt.get(b)!;
  }
  return notBefore;
}

/**
 * Step 2 by timing, when a transaction's order says nothing: each offer is equally any input that arrived between the
 * transaction before (not full) and its own; with none there, any input before its own.
 */
function windowOffers(offers: ChainOffer[], inputs: BridgeInput[]): Array<Array<[number, number]>> {
  const notBefore = earliestArrivals(offers, Number.POSITIVE_INFINITY);
  return offers.map((o) => {
    const before = inputs.map((input, j) => [input, j] as const).filter(([input]) => input.timeMs < o.submittedMs);
    const inWindow = before.filter(([input]) => input.timeMs >= notBefore.get(o.batch)!);
    const chosen = inWindow.length > 0 ? inWindow : before;
    return chosen.map(([, j]) => [j, 1 / chosen.length] as [number, number]);
  });
}

/** Step 3: the heaviest meter, a seeded draw among equals; a uniform guess among `everyone` with nothing to go on. */
function mostLikely(
  dist: Distribution,
  everyone: string[],
  random: () => number,
): { meter: string; probability: number } {
  const total = [...dist.values()].reduce((n, p) => n + p, 0);
  if (total <= NEGLIGIBLE)
    return { meter: everyone[Math.floor(random() * everyone.length)] ?? '', probability: 1 / everyone.length };
  let best = 0;
  for (const p of dist.values()) best = Math.max(best, p);
  const tied = [...dist].filter(([, p]) => p >= best * (1 - 1e-9)).map(([meter]) => meter);
  tied.sort();
  return { meter: tied[Math.floor(random() * tied.length)], probability: best / total };
}
