// The main job end to end: emulated meters running the built bundle report through a real broker
// (aedes in this process, and a mosquitto process when installed) to the collector, which decodes
// them with MQTT.js and stores them in SQLite.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findMosquitto, MOSQUITTO_MISSING } from '../../host-tools/broker/mosquitto.ts';
import { runTestbed, type TestbedSummary } from '../../host-tools/testbed/testbed.ts';

const small = { meters: 3, intervals: 3, intervalSeconds: 30, speed: 30, impulsesPerKWh: 1000 };

function assertEveryReadingArrived(s: TestbedSummary) {
  assert.is(s.readings.expected, small.meters * small.intervals);
  assert.is(s.readings.received, s.readings.expected, `received ${s.readings.received} of ${s.readings.expected}`);
  assert.is(s.readings.missing, 0);
  assert.is(s.readings.rejected, 0);
  assert.is(s.gaps.lostSequenceNumbers, 0);
  // Each meter's first reading covers only part of an interval, and says so.
  assert.is(s.gaps.flaggedReadings, small.meters);
  // What the meters reported is what the S0 sources emitted, less at most one pulse in flight per
  // source at the window's end.
  assert.ok(s.energy.importWh > 0 && s.energy.exportWh > 0, JSON.stringify(s.energy));
  assert.ok(Math.abs(s.emitted.importWh - s.energy.importWh) <= small.meters, JSON.stringify(s));
  assert.ok(Math.abs(s.emitted.exportWh - s.energy.exportWh) <= small.meters, JSON.stringify(s));
}

test('testbed through aedes: every reading arrives once, with the energy the S0 sources emitted', async () => {
  assertEveryReadingArrived(await runTestbed({ ...small, broker: 'aedes' }));
});

test('testbed through a mosquitto process', async () => {
  if (!findMosquitto()) {
    console.log(`  SKIPPED: ${MOSQUITTO_MISSING}; only the aedes testbed ran`);
    return;
  }
  assertEveryReadingArrived(await runTestbed({ ...small, broker: 'mosquitto' }));
});

test.run();
