// The observer's linker on synthetic broker traces with known senders (host-tools/observer/synthetic-mix.ts):
// it names nearly every sender without a mixnet, does no better than chance through an ideal mix, and traces
// many offers through relays that forward at once, so a low rate through the real mixnet means something.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { linkOffers, linkRate, type ChainOffer } from '../../host-tools/observer/offer-linker.ts';
import { syntheticRun, type SyntheticOptions } from '../../host-tools/observer/synthetic-mix.ts';
import type { BrokerTrace } from '../../host-tools/observer/broker-observer.ts';
import { MIX_EXIT_TOPIC, offerTopic, relayInboxTopic } from '../../firmware/src/protocol/topics.ts';

function rateOf(options: SyntheticOptions, how: { orderedBatches?: boolean; timingOnly?: boolean } = {}): number {
  const run = syntheticRun(options);
  const offers = how.timingOnly ? run.offers.map(({ messageHash, ...offer }) => offer) : run.offers;
  const links = linkOffers(run.trace, offers, { seed: 1, roundOf: run.roundOf, orderedBatches: how.orderedBatches });
  assert.is(links.length, run.offers.length, 'one link per offer on chain');
  return linkRate(links, run.truth);
}

test('without a mixnet the linker names the sender of every offer: the broker carried the bytes on chain', () => {
  assert.is(rateOf({ mix: 'direct', meters: 30, rounds: 4, seed: 3 }, { orderedBatches: false }), 1);
});

test('without a mixnet, by timing alone, it names nearly every sender when the bridge keeps arrival order', () => {
  assert.ok(rateOf({ mix: 'direct', meters: 30, rounds: 4, seed: 3 }, { timingOnly: true }) >= 0.95);
  assert.ok(rateOf({ mix: 'direct', meters: 100, rounds: 2, seed: 4, offerShare: 0.5 }, { timingOnly: true }) >= 0.95);
});

test('through an ideal mix node the linker does about as well as a guess (1/N)', () => {
  const n = 50;
  // 200 offers: about 4 right by chance; well under 3/N allows for the draw, well above it would be a leak.
  const rate = rateOf({ mix: 'perfect', meters: n, rounds: 4, seed: 5 });
  assert.ok(rate < 3 / n, `rate ${rate} against chance ${1 / n}`);
});

test('through relays that forward each packet at once the linker still links many offers', () => {
  const n = 30;
  const rate = rateOf({ mix: 'naive', meters: n, rounds: 4, seed: 6 });
  assert.ok(rate > 5 / n, `rate ${rate} against chance ${1 / n}`);
});

test('relays that batch per slot still leak through the order offers reach the chain; an exit holding each round in its batch order does not', () => {
  // The design's relays hold one or two packets a slot on average, and the chain's order of offers follows the
  // exit's order of arrival: the linker traces many offers, whether the exit holds a round or not. Sent per round
  // in the bridge's batch order (random but for each key's own offers), they are a set.
  const n = 100;
  const options: SyntheticOptions = { mix: 'batched', meters: n, rounds: 4, seed: 8 };
  const arrival = rateOf(options);
  const heldInArrival = rateOf({ ...options, exitHoldsRound: true, heldInArrivalOrder: true });
  const held = rateOf({ ...options, exitHoldsRound: true }, { orderedBatches: false });
  assert.ok(arrival > 5 / n, `in arrival order: rate ${arrival} against chance ${1 / n}`);
  assert.ok(heldInArrival > 5 / n, `held per round, in arrival order: rate ${heldInArrival} against chance ${1 / n}`);
  assert.ok(held < 2 / n, `held per round, batch order: rate ${held} against chance ${1 / n}`);
});

test('the same trace and seed give the same links', () => {
  const run = syntheticRun({ mix: 'batched', meters: 20, rounds: 2, seed: 9, offerShare: 0.5 });
  const once = linkOffers(run.trace, run.offers, { seed: 2, roundOf: run.roundOf });
  const again = linkOffers(run.trace, run.offers, { seed: 2, roundOf: run.roundOf });
  assert.equal(once, again);
});

test('a packet is traced through a relay that held only it, and a shuffled pair of packets is a coin toss', () => {
  const inbox = (id: string) => relayInboxTopic(id.padStart(16, '0'));
  const trace: BrokerTrace = {
    subscriptions: ['a', 'b', 'c', 'r'].map((id) => ({ timeMs: 0, clientId: id, topic: inbox(id) })),
    publishes: [
      // a's packet goes through r alone; then b's and c's are held by r together and leave in one burst.
      { timeMs: 10, clientId: 'a', topic: inbox('r'), bytes: 1024, payloadHash: 'p1' },
      { timeMs: 100, clientId: 'r', topic: MIX_EXIT_TOPIC, bytes: 1024, payloadHash: 'p2' },
      { timeMs: 200, clientId: 'b', topic: inbox('r'), bytes: 1024, payloadHash: 'p3' },
      { timeMs: 210, clientId: 'c', topic: inbox('r'), bytes: 1024, payloadHash: 'p4' },
      { timeMs: 300, clientId: 'r', topic: MIX_EXIT_TOPIC, bytes: 1024, payloadHash: 'p5' },
      { timeMs: 301, clientId: 'r', topic: MIX_EXIT_TOPIC, bytes: 1024, payloadHash: 'p6' },
      // Not a mix packet (wrong size): ignored.
      { timeMs: 302, clientId: 'r', topic: MIX_EXIT_TOPIC, bytes: 100, payloadHash: 'p7' },
    ],
  };
  const offers: ChainOffer[] = [
    { id: 'first', batch: 0, position: 0, submittedMs: 150 },
    { id: 'second', batch: 1, position: 0, submittedMs: 400 },
    { id: 'third', batch: 1, position: 1, submittedMs: 400 },
  ];
  // Whether the bridge keeps arrival order in a transaction or not.
  for (const orderedBatches of [true, false]) {
    const [first, second, third] = linkOffers(trace, offers, { seed: 1, orderedBatches });
    assert.equal(first, { offerId: 'first', meter: 'a', probability: 1 });
    for (const link of [second, third]) {
      assert.ok(['b', 'c'].includes(link.meter));
      assert.ok(Math.abs(link.probability - 0.5) < 1e-9);
    }
  }
});

test('offers follow their inputs in order: a duplicate in between shifts no link', () => {
  const trace: BrokerTrace = {
    subscriptions: [],
    publishes: ['a', 'b', 'a', 'c'].map((id, i) => ({
      timeMs: 10 + i,
      clientId: id,
      topic: offerTopic(id),
      bytes: 177,
      payloadHash: `p${i}`,
    })),
  };
  // The third publish is a's offer sent again: the bridge took it as a duplicate, the chain has three offers.
  const offers: ChainOffer[] = ['x', 'y', 'z'].map((id, position) => ({ id, batch: 0, position, submittedMs: 50 }));
  const links = linkOffers(trace, offers, { seed: 1 });
  const truth = new Map([
    ['x', 'a'],
    ['y', 'b'],
    ['z', 'c'],
  ]);
  assert.is(links[0].meter, 'a');
  assert.is(links[2].meter, 'c');
  assert.ok(linkRate(links, truth) >= 2 / 3);
});

test.run();
