// The main job end to end: emulated meters running the built bundle, each provisioned by the field
// technician's code, report through a real broker enforcing the provisioned credentials and ACL (aedes
// in this process, and a mosquitto process when installed) to the DSO's collector, which verifies every
// sealed, signed reading and stores it in SQLite. Keys rotate during the run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findMosquitto, MOSQUITTO_MISSING } from '../../host-tools/broker/mosquitto.ts';
import { loginPluginUnavailable } from '../../host-tools/broker/mosquitto-plugin.ts';
import { runTestbed, type TestbedSummary } from '../../host-tools/testbed/testbed.ts';

const small = { meters: 3, intervals: 4, intervalSeconds: 30, speed: 30, impulsesPerKWh: 1000, rotationSeconds: 60 };

function assertEveryReadingArrived(s: TestbedSummary) {
  assert.is(s.readings.expected, small.meters * small.intervals);
  assert.is(s.readings.received, s.readings.expected, `received ${s.readings.received} of ${s.readings.expected}`);
  assert.is(s.readings.missing, 0);
  assert.is(s.readings.rejected, 0);
  // The collector stores only what the verifier accepted; meters provisioned first also reported
  // (empty) intervals before the window.
  assert.ok(s.readings.verified >= s.readings.received, `verified ${s.readings.verified}, received ${s.readings.received}`);
  // Over 120 simulated seconds with a 60 s period: each meter's first key and at least one rotation.
  assert.ok(s.keys.rotations >= 2 * small.meters, `reading keys certified: ${s.keys.rotations}`);
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
  const missing = findMosquitto() ? loginPluginUnavailable() : MOSQUITTO_MISSING;
  if (missing) {
    console.log(`  SKIPPED: ${missing}; only the aedes testbed ran`);
    return;
  }
  assertEveryReadingArrived(await runTestbed({ ...small, broker: 'mosquitto' }));
});

test.run();
