// A small fuzz run in npm test (bench/fuzz-dso.ts runs the large one): mutated readings, key
// certificates, broker logins and MQTT packets through the DSO's decode path and the MQTT stream decoder, with no
// exception escaping and no forgery accepted (test/fuzz/dso-fuzz.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runDsoFuzz } from './dso-fuzz.ts';

test('2,000 mutated inputs: every one refused or genuine, nothing escapes', () => {
  const figures = runDsoFuzz(2_000, 8);
  assert.equal(figures.firstProblems, []);
  assert.is(figures.escapedExceptions, 0);
  assert.is(figures.acceptedForgeries, 0);
  assert.is(figures.inputs, 2_000);
  assert.ok(
    figures.readings.refused > 0 &&
      figures.keyCertificates.refused > 0 &&
      figures.logins.refused > 0 &&
      figures.mqttPackets.refused > 0,
    JSON.stringify(figures),
  );
});

test.run();
