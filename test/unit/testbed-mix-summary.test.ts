// The testbed's `mix` figures: the meters' console lines counted by their documented prefixes (docs/mixnet.md),
// offers sent straight to the bridge counted once per meter and interval, the wait in relays read from the
// broker's trace, and the JSON object assembled from them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  directOffersSent,
  emptyMixCounts,
  hopLatencyMs,
  mixLineCounter,
  mixRoundOf,
  mixSummary,
} from '../../host-tools/testbed/mix-summary.ts';
import { roundStartMs } from '../../firmware/src/protocol/mix-schedule.ts';
import { MIX_EXIT_TOPIC, offerTopic, relayInboxTopic } from '../../firmware/src/protocol/topics.ts';
import type { BrokerTrace } from '../../host-tools/observer/broker-observer.ts';

const clock = { genesisTime: 0, intervalSeconds: 10 };

test("meters' console lines are counted by their prefixes, whole lines only, however the output is cut", () => {
  const counts = emptyMixCounts();
  const feed = mixLineCounter(counts);
  const text = [
    'mix: sent offer for interval 7 round 0',
    'mix: sent dummy for interval 7 round 0',
    'mix: sent resend for interval 7 round 1',
    'mix: sent dummy for interval 8 round 0',
    'mix: forwarded 3 in 7.0.1',
    'mix: forwarded 1 in 7.0.2',
    'mix: dropped 2 (bad-mac=1, replayed=1)',
    'mix: not connected: no dummy sent for interval 8 round 1',
    'market: interval 7: no receipt yet',
    'mix: sent offer for interval 9 round 0', // no newline yet: not counted until the line ends
  ].join('\r\n');
  for (let i = 0; i < text.length; i += 7) feed(text.slice(i, i + 7));
  assert.equal(counts, { offers: 1, resends: 1, dummies: 2, forwarded: 4, largestBatch: 3, dropped: 2 });
  feed('\r\n');
  assert.is(counts.offers, 2);
});

test('the mix object: packets of every kind, lost offers never below zero, chance 1/N', () => {
  const counts = { offers: 10, resends: 2, dummies: 38, forwarded: 96, largestBatch: 4, dropped: 1 };
  const summary = mixSummary({
    enabled: true,
    meters: 12,
    counts,
    delivered: 9,
    offersSent: 10,
    observerLinkRate: 0.08333333,
    hopLatencyMs: 420,
    exit: { offer: 11, dummy: 37 },
  });
  assert.equal(JSON.parse(JSON.stringify(summary)), {
    enabled: true,
    packets: 50,
    dummies: 38,
    delivered: 9,
    lost: 1,
    resent: 2,
    observerLinkRate: 0.083,
    chance: 0.083,
    relays: { forwarded: 96, dropped: 1, largestBatch: 4, hopLatencyMs: 420 },
    exit: { offer: 11, dummy: 37 },
  });
  const off = mixSummary({
    enabled: false,
    meters: 4,
    counts: emptyMixCounts(),
    delivered: 8,
    offersSent: 7,
    observerLinkRate: null,
    hopLatencyMs: 0,
    exit: {},
  });
  assert.equal([off.packets, off.lost, off.observerLinkRate, off.chance], [0, 0, null, 0.25]);
});

test('offers straight to the bridge count once per meter and interval, resends included', () => {
  const at = (s: number) => s * 1000;
  const trace: BrokerTrace = {
    subscriptions: [],
    publishes: [
      { timeMs: 1, simMs: at(65), clientId: 'a', topic: offerTopic('a'), bytes: 177, payloadHash: 'p1' },
      { timeMs: 2, simMs: at(68), clientId: 'a', topic: offerTopic('a'), bytes: 177, payloadHash: 'p2' }, // sent again, same window
      { timeMs: 3, simMs: at(66), clientId: 'b', topic: offerTopic('b'), bytes: 177, payloadHash: 'p3' },
      { timeMs: 4, simMs: at(75), clientId: 'a', topic: offerTopic('a'), bytes: 177, payloadHash: 'p4' }, // the next window
      { timeMs: 5, simMs: at(75), clientId: 'a', topic: 'veilgrid/meters/a/readings', bytes: 177, payloadHash: 'p5' },
    ],
  };
  assert.is(directOffersSent(trace, clock), 3);
});

test("a packet's wait in a relay: from its arrival in the relay's inbox to the relay's next forward", () => {
  const start = roundStartMs(clock, 7, 0); // slot 0 of round 0; slots of 500 ms
  const inbox = relayInboxTopic('00000000000000aa');
  const trace: BrokerTrace = {
    subscriptions: [{ timeMs: 0, clientId: 'relay', topic: inbox }],
    publishes: [
      { timeMs: 0, simMs: start + 100, clientId: 's1', topic: inbox, bytes: 1024, payloadHash: 'p6' },
      { timeMs: 0, simMs: start + 200, clientId: 's2', topic: inbox, bytes: 1024, payloadHash: 'p7' },
      // the relay's own packet, in the same slot: not a forward of what it holds
      {
        timeMs: 0,
        simMs: start + 240,
        clientId: 'relay',
        topic: relayInboxTopic('bb'),
        bytes: 1024,
        payloadHash: 'p8',
      },
      { timeMs: 0, simMs: start + 500, clientId: 'relay', topic: MIX_EXIT_TOPIC, bytes: 1024, payloadHash: 'p9' },
      { timeMs: 0, simMs: start + 501, clientId: 'relay', topic: MIX_EXIT_TOPIC, bytes: 1024, payloadHash: 'p10' },
    ],
  };
  assert.is(hopLatencyMs(trace, clock), 350);
  const round = mixRoundOf(clock);
  assert.is(round(trace.publishes[0]), '7.0');
  // A slot early still counts as the round (the broker's view of the meters' clock lags), more does not.
  assert.is(round({ ...trace.publishes[0], simMs: start - 400 }), '7.0');
  assert.is(round({ ...trace.publishes[0], simMs: start - 501 }), undefined);
});

test.run();
