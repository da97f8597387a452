// Meter logins (firmware/src/protocol/broker-login.ts, firmware/src/keys/meter-login.ts, host-tools/broker/meter-logins.ts): passwords made by
// the emulated chip through the firmware's driver, checked as a broker checks them.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  encodeLoginPassword,
  LOGIN_PASSWORD_PREFIX,
  parseLoginPassword,
} from '../../firmware/src/protocol/broker-login.ts';
import { meterLoginPassword } from '../../firmware/src/keys/meter-login.ts';
import { LOGIN_COUNTER } from '../../firmware/src/protocol/slot-map.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { MeterLogins } from '../../host-tools/broker/meter-logins.ts';
import { provisionedSecureElement } from '../support/provisioned-se.ts';

const logins = suite('meter logins');

logins('the format: prefix, counter, 128 hex digits; anything else says what is wrong', () => {
  const signature = new Uint8Array(64).fill(0xab);
  const text = encodeLoginPassword(42, signature);
  assert.is(text, 'vgl1.42.' + 'ab'.repeat(64));
  assert.equal(parseLoginPassword(text), { counter: 42, signature });
  assert.match(parseLoginPassword('hunter2') as string, 'does not start with "vgl1."');
  assert.match(parseLoginPassword('vgl1.042.' + 'ab'.repeat(64)) as string, '<counter>.<signature hex>');
  assert.match(parseLoginPassword('vgl1.1.2.' + 'ab'.repeat(64)) as string, '<counter>.<signature hex>');
  assert.match(parseLoginPassword('vgl1.2097152.' + 'ab'.repeat(64)) as string, "past the chip's maximum");
  assert.match(parseLoginPassword('vgl1.7.' + 'ab'.repeat(63)) as string, '128 lower-case hex digits');
  assert.match(parseLoginPassword('vgl1.7.' + 'zz'.repeat(64)) as string, '128 lower-case hex digits');
  assert.match(
    parseLoginPassword('vgl1.7.' + 'AB'.repeat(64)) as string,
    '128 lower-case hex digits',
    'one login, one text',
  );
});

logins(
  "a login from the chip is accepted once; replays, other meters' names, tampering and strangers are refused",
  () => {
    const chip = provisionedSecureElement();
    const store = new MeterLogins(':memory:');
    try {
      store.add('meter-1', chip.identityKey, chip.mixKey);
      const first = meterLoginPassword(chip.se, nodeSha256, 'meter-1');
      assert.ok(first.startsWith(LOGIN_PASSWORD_PREFIX) && first.length <= 141, first);
      assert.equal(store.check('meter-1', first), { ok: true, counter: 1 });
      assert.is(chip.se.counter(LOGIN_COUNTER, false), 1, 'the login took a step of counter 1');
      const again = store.check('meter-1', first);
      assert.ok(!again.ok && /used already .*replayed/.test(again.reason), JSON.stringify(again));

      const second = meterLoginPassword(chip.se, nodeSha256, 'meter-1');
      const third = meterLoginPassword(chip.se, nodeSha256, 'meter-1');
      assert.ok(store.check('meter-1', third).ok, 'counters may be skipped (an attempt that never reached the broker)');
      assert.ok(!store.check('meter-1', second).ok, 'but never go back');

      store.add('meter-2', chip.identityKey, chip.mixKey); // the same chip under another name
      const forTwo = meterLoginPassword(chip.se, nodeSha256, 'meter-1');
      const misnamed = store.check('meter-2', forTwo);
      assert.ok(
        !misnamed.ok && /not signed by meter "meter-2"/.test(misnamed.reason),
        'the meter id is signed: a login names its meter',
      );

      const login = meterLoginPassword(chip.se, nodeSha256, 'meter-1');
      const flipped = login.slice(0, -1) + (login.endsWith('0') ? '1' : '0');
      assert.ok(!store.check('meter-1', flipped).ok, 'one changed bit of the signature');
      const nextCounter = (parseLoginPassword(login) as { counter: number }).counter + 1;
      assert.ok(
        !store.check(
          'meter-1',
          encodeLoginPassword(nextCounter, (parseLoginPassword(login) as { signature: Uint8Array }).signature),
        ).ok,
        'the counter is signed too',
      );
      assert.ok(store.check('meter-1', login).ok, 'the untouched login is still good after those refusals');

      const stranger = store.check('meter-9', meterLoginPassword(chip.se, nodeSha256, 'meter-9'));
      assert.ok(!stranger.ok && /may not log in here/.test(stranger.reason));
      assert.ok(!store.check('meter-1', 'a static password').ok);
      assert.ok(!store.check(undefined, first).ok);
    } finally {
      store.close();
      chip.close();
    }
  },
);

logins(
  'provisioning the same chip again keeps the counter; a new chip starts afresh; removed meters are refused',
  () => {
    const chip = provisionedSecureElement();
    const other = provisionedSecureElement();
    const store = new MeterLogins(':memory:');
    try {
      store.add('meter-1', chip.identityKey, chip.mixKey);
      store.check('meter-1', meterLoginPassword(chip.se, nodeSha256, 'meter-1'));
      store.check('meter-1', meterLoginPassword(chip.se, nodeSha256, 'meter-1'));
      store.add('meter-1', chip.identityKey, chip.mixKey);
      assert.is(store.lastCounter('meter-1'), 2);
      store.add('meter-1', other.identityKey, other.mixKey);
      assert.is(store.lastCounter('meter-1'), -1);
      assert.ok(
        !store.check('meter-1', meterLoginPassword(chip.se, nodeSha256, 'meter-1')).ok,
        'the old chip no longer logs in',
      );
      assert.ok(store.check('meter-1', meterLoginPassword(other.se, nodeSha256, 'meter-1')).ok);
      assert.equal(store.meterIds(), ['meter-1']);
      assert.ok(store.remove('meter-1'));
      assert.ok(!store.check('meter-1', meterLoginPassword(other.se, nodeSha256, 'meter-1')).ok);
      assert.throws(() => store.add('dso', chip.identityKey, chip.mixKey), /reserved/);
    } finally {
      store.close();
      chip.close();
      other.close();
    }
  },
);

logins.run();
