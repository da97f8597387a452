// The mixnet's cost and anonymity (issue 11's benchmark and item 6): N emulated meters trading in the testbed,
// once with offers through the mixnet and once straight to the bridge (--no-mix; the same meters, plan and
// seed). Prints the testbed's `mix` figures for both, SE commands and bytes per meter per interval as sender and
// as relay, the added latency per hop, the largest batch a relay held, and the broker observer's link rate
// against chance. Then, from synthetic traces of the same design (host-tools/observer/synthetic-mix.ts: every
// meter one packet per round, two relays that forward at slot starts), the largest batch and the linker's rate
// at 100 and 1,000 meters: estimated, not measured (the testbed cannot carry 1,000 meters on one machine).
// Usage: node --import tsx bench/mixnet.ts [--meters 100] [--intervals 4] [--interval-seconds 60] [--speed 4] [--seed 1] [--synthetic-only]
import os from 'node:os';
import { parseArgs } from 'node:util';
import { RELAY_CAPACITY } from '../firmware/src/mixnet/mix-node.ts';
import { ONION_PACKET_BYTES } from '../firmware/src/protocol/onion-packet.ts';
import { linkOffers, linkRate } from '../host-tools/observer/offer-linker.ts';
import { syntheticRun } from '../host-tools/observer/synthetic-mix.ts';
import { runTestbed, type TestbedSummary } from '../host-tools/testbed/testbed.ts';

const { values } = parseArgs({
  options: {
    meters: { type: 'string', default: '100' },
    intervals: { type: 'string', default: '4' },
    'interval-seconds': { type: 'string', default: '60' },
    speed: { type: 'string', default: '4' },
    seed: { type: 'string', default: '1' },
    'synthetic-only': { type: 'boolean', default: false },
  },
});
const meters = Number(values.meters);
const intervals = Number(values.intervals);
const intervalSeconds = Number(values['interval-seconds']);
const speed = Number(values.speed);
const seed = Number(values.seed);
// docs/mixnet.md: a packet sent costs the sender's SE 6 commands (GenKey and ECDH per hop), a packet relayed 1 (ECDH).
const SE_PER_PACKET_SENT = 6;
const SE_PER_PACKET_RELAYED = 1;

console.log(
  `mixnet: ${meters} meters, ${intervals} intervals of ${intervalSeconds} s at ${speed}x, seed ${seed}; ${os.cpus().length} cores, ${new Date().toISOString()}`,
);

if (!values['synthetic-only']) {
  const runs: Array<{ name: string; s: TestbedSummary }> = [];
  let shown = '';
  for (const mix of [true, false]) {
    const s = await runTestbed({
      meters,
      intervals,
      intervalSeconds,
      speed,
      impulsesPerKWh: 1000,
      mix,
      seed,
      onProgress: (p) => {
        const line = `${mix ? 'mixnet' : 'no-mix'} ${p.phase === 'provisioning' ? `provisioning ${p.provisioned}/${p.meters}` : `interval ${p.interval}/${p.intervals}`}`;
        if (line !== shown) process.stderr.write(`\r  ${(shown = line)}   `);
      },
    });
    process.stderr.write('\n');
    runs.push({ name: mix ? 'mixnet' : 'no-mix', s });
  }
  for (const { name, s } of runs) {
    const m = s.mix;
    console.log(
      `\n${name}: readings ${s.readings.received}/${s.readings.expected}, offers ${JSON.stringify(s.offers)}`,
    );
    if (!m) {
      console.log('  no mix figures (no market?)');
      continue;
    }
    const perMeterInterval = (n: number) => Math.round((n / (meters * intervals)) * 100) / 100;
    const relayed = m.relays.forwarded + m.relays.dropped;
    console.log(
      `  mix        ${JSON.stringify({ packets: m.packets, dummies: m.dummies, delivered: m.delivered, lost: m.lost, resent: m.resent, observerLinkRate: m.observerLinkRate, chance: m.chance })}`,
    );
    console.log(`  exit       ${JSON.stringify(m.exit)}`);
    console.log(
      `  sender     ${perMeterInterval(m.packets)} packets, ${perMeterInterval(m.packets * ONION_PACKET_BYTES)} bytes, ${perMeterInterval(m.packets * SE_PER_PACKET_SENT)} SE commands per meter per interval (6 per packet)`,
    );
    console.log(
      `  relay      ${perMeterInterval(relayed)} packets in, ${perMeterInterval(m.relays.forwarded)} out: ${perMeterInterval(relayed * ONION_PACKET_BYTES)} bytes in, ${perMeterInterval(m.relays.forwarded * ONION_PACKET_BYTES)} out, ${perMeterInterval(relayed * SE_PER_PACKET_RELAYED)} SE commands per meter per interval (1 per packet)`,
    );
    console.log(
      `  measured   ${m.seCommandsPerMeterInterval} SE commands per meter per interval in all (readings, trading, mixnet)`,
    );
    console.log(
      `  per hop    ${m.relays.hopLatencyMs} ms of the meters' clock a packet waits in a relay (a slot is ${(intervalSeconds * 1000) / 20} ms)`,
    );
    console.log(`  batches    largest a relay forwarded at once: ${m.relays.largestBatch} (measured)`);
    console.log(`  speed      ${s.achievedSpeed}x achieved, ${s.wallSeconds} s wall`);
  }
  const [withMix, without] = runs.map((r) => r.s.mix);
  if (withMix && without)
    console.log(
      `\nSE commands the mixnet adds per meter per interval (measured, mixnet − no-mix): ${Math.round((withMix.seCommandsPerMeterInterval - without.seCommandsPerMeterInterval) * 10) / 10}`,
    );
}

console.log(
  '\nsynthetic traces of the design (estimated; each meter has an offer in half the rounds): the bridge sending offers as they come; holding each round and sending it in arrival order; or holding it and sending it in its batch order (host-tools/bridge/batch-order.ts)',
);
const exitModes = [
  { name: 'as they come      ', exitHoldsRound: false, heldInArrivalOrder: false },
  { name: 'held, arrival     ', exitHoldsRound: true, heldInArrivalOrder: true },
  { name: 'held, batch order ', exitHoldsRound: true, heldInArrivalOrder: false },
];
for (const [n, rounds] of [
  [100, 8],
  [1000, 8],
]) {
  for (const mode of exitModes) {
    const { exitHoldsRound, heldInArrivalOrder } = mode;
    const run = syntheticRun({
      mix: 'batched',
      meters: n,
      rounds,
      seed,
      offerShare: 0.5,
      exitHoldsRound,
      heldInArrivalOrder,
    });
    // The linker weighs order-keeping assignments when the chain's order is arrival order, else takes each batch as a set.
    const orderedBatches = !exitHoldsRound || heldInArrivalOrder;
    const links = linkOffers(run.trace, run.offers, { seed, roundOf: run.roundOf, orderedBatches });
    const rate = linkRate(links, run.truth);
    const over = run.flushSizes.filter((size) => size > RELAY_CAPACITY);
    console.log(
      `  ${n} meters, ${rounds} rounds, ${mode.name}: largest relay batch ${run.largestBatch}, ${over.length} of ${run.flushSizes.length} batches above a relay's capacity of ${RELAY_CAPACITY} (${over.reduce((a, b) => a + b - RELAY_CAPACITY, 0)} packets dropped); observer link rate ${Math.round(rate * 1000) / 1000} against chance ${1 / n} (${run.offers.length} offers)`,
    );
  }
}
