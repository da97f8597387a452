// `veilgrid dso key-init / key-export`: the DSO key file a technician provisions meters with; and the
// start-up errors of `veilgrid dso serve` (its running is tested end to end in e2e/meter-lifecycle).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CliError } from '../../host-tools/cli/command.ts';
import { command } from '../../host-tools/dso/dso-command.ts';
import { readDsoKey } from '../../host-tools/dso/dso-key.ts';

/** Runs body with a fresh folder (and its key file paths) and console.log silenced; removes the folder after. */
async function inKeyFolder(body: (dir: string, file: string, out: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-dso-'));
  const log = console.log;
  console.log = () => {};
  try {
    await body(dir, path.join(dir, 'dso-key.json'), path.join(dir, 'dso-public.json'));
  } finally {
    console.log = log;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('key-init creates a key, key-export writes the public half alone, and init never replaces a key', () =>
  inKeyFolder(async (_dir, file, out) => {
    assert.is(await command.run(['key-init', '--file', file]), 0);
    assert.is(fs.statSync(file).mode & 0o777, 0o600);
    assert.is(await command.run(['key-export', '--file', file, '--out', out]), 0);
    const full = readDsoKey(file);
    const pub = readDsoKey(out);
    assert.equal(pub.publicKey, full.publicKey);
    assert.is(pub.privateKey, undefined);
    const before = fs.readFileSync(file, 'utf8');
    try {
      await command.run(['key-init', '--file', file]);
      assert.unreachable('replaced an existing key');
    } catch (err) {
      assert.instance(err, CliError);
      assert.match((err as Error).message, 'already exists');
    }
    assert.is(fs.readFileSync(file, 'utf8'), before);
  }));

/** The CliError message command.run(args) fails with. */
async function failure(args: string[]): Promise<string> {
  try {
    await command.run(args);
  } catch (err) {
    assert.instance(err, CliError);
    return (err as Error).message;
  }
  assert.unreachable(`${args.join(' ')} succeeded`);
  return '';
}

test('serve says what is missing or wrong before it connects to anything', () =>
  inKeyFolder(async (dir, file, out) => {
    await command.run(['key-init', '--file', file]);
    await command.run(['key-export', '--file', file, '--out', out]);
    const base = [
      'serve',
      '--file',
      file,
      '--dso-db',
      path.join(dir, 'dso.db'),
      '--readings',
      path.join(dir, 'readings.db'),
    ];
    assert.match(await failure(base), 'serve needs --broker');
    assert.match(await failure([...base, '--broker', '127.0.0.1:1883']), 'must be a URL like mqtt://');
    assert.match(await failure([...base, '--broker', 'mqtt://127.0.0.1:1']), 'serve needs --broker-dir');
    assert.match(
      await failure([...base, '--broker', 'mqtt://127.0.0.1:1', '--broker-dir', dir]),
      "the folder 'veilgrid provision --broker-dir' writes",
    );
    fs.writeFileSync(path.join(dir, 'dso-mqtt.password'), 'secret\n', { mode: 0o600 });
    assert.match(
      await failure([...base, '--broker', 'mqtt://127.0.0.1:1', '--broker-dir', dir, '--http', 'nine']),
      '--http must be HOST:PORT',
    );
    assert.match(
      await failure([...base, '--broker', 'mqtt://127.0.0.1:1', '--broker-dir', dir, '--exit-key', 'beef']),
      '--exit-key: the exit key must be 128 hex digits',
    );
    const publicOnly = [
      'serve',
      '--file',
      out,
      ...base.slice(3),
      '--broker',
      'mqtt://127.0.0.1:1',
      '--broker-dir',
      dir,
    ];
    assert.match(await failure(publicOnly), 'holds the public key only');
    assert.not.ok(fs.existsSync(path.join(dir, 'dso.db')), 'nothing was created for a refused start');
  }));

test.run();
