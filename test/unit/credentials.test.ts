// Broker credentials: the mosquitto $7$ password format, generated passwords, the broker folder.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BrokerCredentials,
  generateMqttPassword,
  hashPassword,
  parsePasswordFile,
  verifyPassword,
} from '../../host-tools/broker/credentials.ts';

test('generated passwords are 24 random bytes in base64url', () => {
  const a = generateMqttPassword();
  assert.match(a, /^[A-Za-z0-9_-]{32}$/);
  assert.is.not(a, generateMqttPassword());
});

test('hashes have the $7$ layout mosquitto 2.x reads: 101 iterations, 12-byte salt, 64-byte SHA-512 hash', () => {
  const hash = hashPassword('s3cret');
  const [empty, seven, iterations, salt, digest] = hash.split('$');
  assert.is(empty, '');
  assert.is(seven, '7');
  assert.is(iterations, '101');
  assert.is(Buffer.from(salt, 'base64').length, 12);
  assert.is(Buffer.from(digest, 'base64').length, 64);
  assert.ok(verifyPassword('s3cret', hash));
  assert.not.ok(verifyPassword('s3cret!', hash));
  assert.not.ok(verifyPassword('s3cret', 'plain'));
});

test('a hash written by mosquitto_passwd verifies, when it is installed', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-passwd-'));
  try {
    const file = path.join(dir, 'pw');
    const run = spawnSync('mosquitto_passwd', ['-c', '-b', file, 'alice', 'correct horse'], { encoding: 'utf8' });
    if (run.error) {
      console.log(
        '  (skipped the mosquitto_passwd cross-check: mosquitto_passwd is not installed — apt-get install mosquitto)',
      );
      return;
    }
    const hash = parsePasswordFile(fs.readFileSync(file, 'utf8')).get('alice')!;
    assert.match(hash, /^\$7\$101\$/);
    assert.ok(verifyPassword('correct horse', hash));
    assert.not.ok(verifyPassword('correct horse ', hash));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the broker folder: users set idempotently, ACL rewritten, snapshot and restore', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-brokerdir-'));
  try {
    const broker = new BrokerCredentials(path.join(dir, 'broker'));
    const before = broker.snapshot();
    broker.setUser('meter-a', 'pw-a');
    const passwd = fs.readFileSync(broker.passwordFile, 'utf8');
    assert.equal([...broker.passwords().keys()], ['dso', 'meter-a'], 'the DSO user is created with the first meter');
    assert.ok(verifyPassword(broker.dsoPassword(), broker.passwords().get('dso')!));
    assert.is(fs.statSync(broker.passwordFile).mode & 0o777, 0o600);
    broker.setUser('meter-a', 'pw-a');
    assert.is(fs.readFileSync(broker.passwordFile, 'utf8'), passwd, 'the same password again changes nothing');
    const middle = broker.snapshot();
    broker.setUser('meter-b', 'pw-b');
    assert.ok(fs.readFileSync(broker.aclFile, 'utf8').includes('user meter-b'));
    broker.restore(middle);
    assert.is(fs.readFileSync(broker.passwordFile, 'utf8'), passwd);
    assert.not.ok(fs.readFileSync(broker.aclFile, 'utf8').includes('meter-b'));
    assert.ok(broker.removeUser('meter-a'));
    assert.not.ok(broker.removeUser('meter-a'));
    broker.restore(before);
    assert.not.ok(fs.existsSync(broker.passwordFile), 'restoring the empty folder removes what was written');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
