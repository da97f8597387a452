// How many emulated meters one process runs at a given speed (default 60x real time): runs the testbed
// with growing meter counts and prints each run's figures. The clock counts only time the host spends
// waiting (docs/emulator.md), so more meters slow the run down rather than starve it: the figure is the
// speed the metering achieved, and the count up to which it stays at the speed asked for.
// Usage: node --import tsx bench/meters-at-speed.ts [--speed 60] [--intervals 5] [--interval-seconds 60] [--start 1] [--max 200]
import { parseArgs } from 'node:util';
import { runTestbed } from '../host-tools/testbed/testbed.ts';

const { values } = parseArgs({
  options: {
    speed: { type: 'string', default: '60' },
    intervals: { type: 'string', default: '5' },
    'interval-seconds': { type: 'string', default: '60' },
    start: { type: 'string', default: '1' },
    max: { type: 'string', default: '200' },
  },
});
const speed = Number(values.speed);
const intervals = Number(values.intervals);
const intervalSeconds = Number(values['interval-seconds']);

console.log(`meters at ${speed}x: ${intervals} intervals of ${intervalSeconds} s each`);
console.log('meters  expected  received  missing  duplicates  achieved speed  wall s');
let sustained = 0;
for (let meters = Number(values.start); meters <= Number(values.max); meters *= 2) {
  const s = await runTestbed({ meters, intervals, intervalSeconds, speed, impulsesPerKWh: 1000 });
  const r = s.readings;
  console.log(
    `${String(meters).padStart(6)}  ${String(r.expected).padStart(8)}  ${String(r.received).padStart(8)}  ${String(r.missing).padStart(7)}  ${String(r.duplicates).padStart(10)}  ${String(s.achievedSpeed).padStart(13)}x  ${String(s.wallSeconds).padStart(6)}`,
  );
  if (r.missing > 0) break;
  if (s.achievedSpeed >= 0.9 * speed) sustained = meters;
}
console.log(`at ${speed}x (within 10%) with every reading delivered: ${sustained} meters`);
