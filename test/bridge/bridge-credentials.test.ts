// The bridge's broker user in the broker folder: made once with a password of its own (0600), kept when
// asked again, next to the DSO's, and given the bridge's rules in the ACL file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { BRIDGE_USERNAME } from '../../host-tools/broker/acl.ts';
import { BRIDGE_PASSWORD_FILE, BrokerCredentials, verifyPassword } from '../../host-tools/broker/credentials.ts';
import { tempDir } from './bridge-fixture.ts';

test('ensureBridgeUser makes the bridge user once, with its password file and its ACL rules', () => {
  const tmp = tempDir('veilgrid-bridge-credentials-');
  try {
    const credentials = new BrokerCredentials(path.join(tmp.dir, 'broker'));
    const password = credentials.ensureBridgeUser();
    const file = path.join(credentials.dir, BRIDGE_PASSWORD_FILE);
    assert.is(fs.statSync(file).mode & 0o777, 0o600);
    assert.is(fs.readFileSync(file, 'utf8').trim(), password);
    const passwords = credentials.passwords();
    assert.ok(verifyPassword(password, passwords.get(BRIDGE_USERNAME)!));
    assert.ok(passwords.has('dso'), 'the DSO user is there too');
    const hash = passwords.get(BRIDGE_USERNAME);
    assert.is(credentials.ensureBridgeUser(), password, 'asked again: the same password');
    assert.is(credentials.passwords().get(BRIDGE_USERNAME), hash, 'and the same stored hash (no file changes)');
    const acl = fs.readFileSync(credentials.aclFile, 'utf8');
    assert.match(
      acl,
      /user bridge\ntopic read veilgrid\/meters\/\+\/offers\ntopic read veilgrid\/mix\/exit\ntopic write veilgrid\/market\/#/,
    );
  } finally {
    tmp.remove();
  }
});

test.run();
