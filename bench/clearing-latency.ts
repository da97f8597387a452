// Gate closure to clearing result in the testbed (issue 10's benchmark): N emulated meters trading on the
// in-process market with the DSO's issuance and the bridge, as `veilgrid testbed` runs them; prints the
// trading figures of the run: assets, offers, intervals cleared with energy traded, and the real time from
// each gate closure to the broker's acknowledgement of that interval's clearing result on the broadcast
// topic (p50, p99). PETra's implementation measured offer to clearing at a median of 11 s with 9 prosumers.
// Usage: node --import tsx bench/clearing-latency.ts [--meters 100] [--intervals 4] [--interval-seconds 60] [--speed 4] [--broker aedes|mosquitto]
import os from 'node:os';
import { parseArgs } from 'node:util';
import { runTestbed } from '../host-tools/testbed/testbed.ts';

const { values } = parseArgs({
  options: {
    meters: { type: 'string', default: '100' },
    intervals: { type: 'string', default: '4' },
    'interval-seconds': { type: 'string', default: '60' },
    speed: { type: 'string', default: '4' },
    broker: { type: 'string', default: 'aedes' },
  },
});
const options = {
  meters: Number(values.meters),
  intervals: Number(values.intervals),
  intervalSeconds: Number(values['interval-seconds']),
  speed: Number(values.speed),
  impulsesPerKWh: 1000,
  broker: values.broker as 'aedes' | 'mosquitto',
  onProgress: (p: { phase: string; provisioned: number; meters: number; interval: number; intervals: number }) =>
    process.stderr.write(
      `\r  ${p.phase === 'provisioning' ? `provisioning ${p.provisioned}/${p.meters}` : `interval ${p.interval}/${p.intervals}`}   `,
    ),
};
console.log(
  `clearing latency: ${options.meters} meters, ${options.intervals} intervals of ${options.intervalSeconds} s at ${options.speed}x, ${options.broker}; ${os.cpus().length} cores, ${new Date().toISOString()}`,
);
const s = await runTestbed(options);
process.stderr.write('\n');
console.log(`readings  ${s.readings.received}/${s.readings.expected} received, ${s.readings.rejected} rejected`);
console.log(`assets    ${JSON.stringify(s.assets)}`);
console.log(`offers    ${JSON.stringify(s.offers)}`);
console.log(`clearing  ${s.clearing?.intervals} intervals with energy traded, ${s.clearing?.tradedWh} Wh`);
console.log(
  `latency   gate closure to result: p50 ${s.clearing?.latencyMs.p50} ms, p99 ${s.clearing?.latencyMs.p99} ms`,
);
console.log(`speed     ${s.achievedSpeed}x achieved, ${s.wallSeconds} s wall`);
