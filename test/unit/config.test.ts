// The meter configuration (vg.config): a valid file, defaults, and a clear ConfigError naming every
// wrong field for wrong types, missing fields, unknown fields and malformed JSON.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CONFIG_DEFAULTS,
  CONFIG_FILE,
  ConfigError,
  consolePasswordIn,
  parseMeterConfig,
  type MeterConfig,
} from '../../firmware/src/protocol/meter-config.ts';

const valid: MeterConfig = {
  meterId: 'meter-0001',
  broker: { host: '127.0.0.1', port: 1883 },
  mqtt: { username: 'meter-0001', password: 's3cret' },
  intervalSeconds: 60,
  s0: { importPin: 25, exportPin: 26, impulsesPerKWh: 1000, debounceMs: 10 },
  journal: { commitEveryWh: 10 },
};

function problemsOf(text: string | undefined): string[] {
  try {
    parseMeterConfig(text);
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.ok((e as Error).message.startsWith(CONFIG_FILE + ': '), (e as Error).message);
    return (e as ConfigError).problems;
  }
  assert.unreachable('expected a ConfigError');
  return [];
}

test('a complete configuration parses to the same object', () => {
  assert.equal(parseMeterConfig(JSON.stringify(valid)), valid);
  const withWifi = { ...valid, wifi: { ssid: 'farm', password: 'pw' } };
  assert.equal(parseMeterConfig(JSON.stringify(withWifi)), withWifi);
});

test('optional fields take their defaults', () => {
  const minimal = {
    meterId: 'm1',
    broker: { host: 'broker.local' },
    mqtt: { username: 'm1', password: '' },
    s0: { importPin: 25, exportPin: 26, impulsesPerKWh: 800 },
  };
  const config = parseMeterConfig(JSON.stringify(minimal));
  assert.is(config.broker.port, CONFIG_DEFAULTS.brokerPort);
  assert.is(config.intervalSeconds, CONFIG_DEFAULTS.intervalSeconds);
  assert.is(config.s0.debounceMs, CONFIG_DEFAULTS.debounceMs);
  assert.is(config.journal.commitEveryWh, CONFIG_DEFAULTS.commitEveryWh);
  assert.is(config.wifi, undefined);
});

test('a missing or empty file says how to provide it', () => {
  for (const text of [undefined, '']) {
    const problems = problemsOf(text);
    assert.is(problems.length, 1);
    assert.match(problems[0], /missing or empty.*vg\.config/);
  }
});

test('malformed JSON is reported as such', () => {
  const problems = problemsOf('{"meterId": "m1", ');
  assert.is(problems.length, 1);
  assert.match(problems[0], /not valid JSON/);
  assert.match(problemsOf('[1,2]')[0], /must hold a JSON object/);
  assert.match(problemsOf('42')[0], /must hold a JSON object/);
});

test('wrong types: every wrong field is named with what was expected and what was found', () => {
  const bad = {
    meterId: 42,
    broker: { host: '', port: '1883' },
    mqtt: { username: 'u', password: 1234 },
    intervalSeconds: 1.5,
    s0: { importPin: 25, exportPin: 25, impulsesPerKWh: 0, debounceMs: -1 },
    journal: { commitEveryWh: 'often' },
    wifi: 'home',
  };
  const problems = problemsOf(JSON.stringify(bad));
  const expected = [
    /^meterId must be a string .*\(got 42\)$/,
    /^broker\.host must be a non-empty string \(got ""\)$/,
    /^broker\.port must be a whole number from 1 to 65535 \(got "1883"\)$/,
    /^mqtt\.password must be a string \(got a number\)$/,
    /^intervalSeconds must be a whole number from 1 to 86400 \(got 1\.5\)$/,
    /^s0\.importPin and s0\.exportPin must be different pins/,
    /^s0\.impulsesPerKWh must be a whole number from 1 to 100000 \(got 0\)$/,
    /^s0\.debounceMs must be a whole number from 0 to 1000 \(got -1\)$/,
    /^journal\.commitEveryWh must be a whole number from 1 to 100000 \(got "often"\)$/,
    /^wifi must be an object \(got "home"\)$/,
  ];
  assert.is(problems.length, expected.length, problems.join('\n'));
  expected.forEach((re, i) => assert.match(problems[i], re));
  // A password is never echoed.
  assert.not.match(problems.join(' '), /1234/);
});

test('without mqtt.password the meter logs in with its secure element; a password given must be a string', () => {
  const config = parseMeterConfig(JSON.stringify({ ...valid, mqtt: { username: 'meter-0001' } }));
  assert.equal(config.mqtt, { username: 'meter-0001' });
  assert.ok(
    problemsOf(JSON.stringify({ ...valid, mqtt: { username: 'meter-0001', password: 7 } })).some((p) =>
      p.startsWith('mqtt.password must be a string'),
    ),
  );
});

test('missing required fields are each named', () => {
  const problems = problemsOf('{}');
  for (const field of [
    'meterId',
    'broker',
    'broker.host',
    'mqtt',
    'mqtt.username',
    's0',
    's0.importPin',
    's0.exportPin',
    's0.impulsesPerKWh',
  ]) {
    assert.ok(
      problems.some((p) => p.startsWith(field + ' ')),
      `${field} not named in:\n${problems.join('\n')}`,
    );
  }
  assert.ok(problems.some((p) => /\(missing\)/.test(p)));
});

test('a meter id that cannot be a topic level is refused', () => {
  for (const id of ['a/b', 'a+b', '#', 'a b', '', 'x'.repeat(65)]) {
    const problems = problemsOf(JSON.stringify({ ...valid, meterId: id }));
    assert.is(problems.length, 1, `${JSON.stringify(id)}: ${problems.join('; ')}`);
    assert.match(problems[0], /^meterId /);
  }
});

test('unknown fields (typos) are named with the known ones', () => {
  const problems = problemsOf(JSON.stringify({ ...valid, journal: { comitEveryWh: 5 }, colour: 'red' }));
  assert.equal(problems, [
    'unknown field colour (known: meterId, broker, mqtt, intervalSeconds, s0, journal, wifi, dsoPublicKey, keys, trading, mixnet, consolePassword)',
    'unknown field journal.comitEveryWh (known: commitEveryWh)',
  ]);
});

test('dsoPublicKey (130 hex digits, 04...) and keys.rotationSeconds are optional and checked', () => {
  const dsoPublicKey = '04' + 'ab'.repeat(64);
  const config = parseMeterConfig(
    JSON.stringify({
      ...valid,
      dsoPublicKey: dsoPublicKey.toUpperCase().replace('0X', ''),
      keys: { rotationSeconds: 3600 },
    }),
  );
  assert.is(config.dsoPublicKey, dsoPublicKey, 'kept in lower case');
  assert.equal(config.keys, { rotationSeconds: 3600 });
  assert.is(parseMeterConfig(JSON.stringify(valid)).dsoPublicKey, undefined);
  const problems = problemsOf(
    JSON.stringify({ ...valid, dsoPublicKey: '02' + 'ab'.repeat(64), keys: { rotationSeconds: 5, every: 1 } }),
  );
  assert.is(problems.length, 3, problems.join('\n'));
  assert.match(problems[0], /dsoPublicKey must be 130 hex digits starting 04/);
  assert.match(problems.join('\n'), /unknown field keys\.every/);
  assert.match(problems.join('\n'), /keys\.rotationSeconds must be a whole number from 60/);
  assert.match(
    problemsOf(JSON.stringify({ ...valid, dsoPublicKey: '04' + 'zz'.repeat(64) }))[0],
    /character 2 is not a hex digit/,
  );
});

test('the console password: 12-20 printable ASCII characters without spaces, never echoed', () => {
  const password = 'Abc-def_123456789xyz'; // 20: the most Espruino's console lets one type
  assert.is(parseMeterConfig(JSON.stringify({ ...valid, consolePassword: password })).consolePassword, password);
  assert.is(parseMeterConfig(JSON.stringify(valid)).consolePassword, undefined, 'absent: an unprovisioned meter');
  for (const bad of [
    password + 'X',
    'short-pass1',
    'has a space here',
    'tab\there-12345',
    'caf\u00e9-passwort1',
    42,
    null,
  ]) {
    const problems = problemsOf(JSON.stringify({ ...valid, consolePassword: bad }));
    assert.is(problems.length, 1, JSON.stringify(bad));
    assert.match(problems[0], /^consolePassword must be 12-20 printable ASCII characters without spaces/);
    if (typeof bad === 'string') assert.not.ok(problems[0].includes(bad), 'the password is never echoed');
  }
});

test('consolePasswordIn: the password a boot locks with, even when the rest of the file is wrong', () => {
  const password = 'Abc-def_123456789xyz';
  assert.is(consolePasswordIn(JSON.stringify({ consolePassword: password })), password);
  assert.is(consolePasswordIn(JSON.stringify({ ...valid, intervalSeconds: 'x', consolePassword: password })), password);
  for (const text of [
    undefined,
    '',
    'not json',
    '[]',
    'null',
    JSON.stringify(valid),
    JSON.stringify({ consolePassword: password + 'X' }),
  ]) {
    assert.is(consolePasswordIn(text), undefined, String(text));
  }
});

test.run();
