// `veilgrid dso key-init / key-export`: the DSO key file a technician provisions meters with.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CliError } from '../../host-tools/cli/command.ts';
import { command } from '../../host-tools/dso/dso-command.ts';
import { readDsoKey } from '../../host-tools/dso/dso-key.ts';

test('key-init creates a key, key-export writes the public half alone, and init never replaces a key', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-dso-'));
  const file = path.join(dir, 'dso-key.json');
  const out = path.join(dir, 'dso-public.json');
  const log = console.log;
  console.log = () => {};
  try {
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
  } finally {
    console.log = log;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
