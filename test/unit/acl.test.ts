// The broker rule table: topic matching, what meters and the DSO may do, and the mosquitto ACL text.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BRIDGE_USERNAME,
  DSO_USERNAME,
  filterCovers,
  meterUserProblem,
  mayPublish,
  maySubscribe,
  mosquittoAcl,
  rulesFor,
  topicMatches,
} from '../../host-tools/broker/acl.ts';
import { BrokerCredentials, verifyPassword } from '../../host-tools/broker/credentials.ts';

test('topic matching follows MQTT wildcards', () => {
  assert.ok(topicMatches('veilgrid/meters/a/#', 'veilgrid/meters/a/readings'));
  assert.ok(topicMatches('veilgrid/meters/a/#', 'veilgrid/meters/a'), '# also matches the parent level');
  assert.ok(topicMatches('veilgrid/+/a', 'veilgrid/meters/a'));
  assert.not.ok(topicMatches('veilgrid/meters/a/#', 'veilgrid/meters/ab/readings'));
  assert.not.ok(topicMatches('veilgrid/+', 'veilgrid/meters/a'));
  assert.not.ok(topicMatches('#', '$SYS/broker'), 'wildcards do not reach $ topics');
});

test('a subscription is allowed only when a read rule covers every topic it can match', () => {
  assert.ok(filterCovers('veilgrid/meters/#', 'veilgrid/meters/+/readings'));
  assert.ok(filterCovers('veilgrid/meters/#', 'veilgrid/meters/#'));
  assert.ok(filterCovers('veilgrid/+/x', 'veilgrid/a/x'));
  assert.not.ok(filterCovers('veilgrid/meters/#', 'veilgrid/#'));
  assert.not.ok(filterCovers('veilgrid/+/x', 'veilgrid/+/#'));
  assert.not.ok(filterCovers('veilgrid/a/x', 'veilgrid/+/x'));
});

test('a meter publishes only to its own topics and the mix topics', () => {
  assert.ok(mayPublish('meter-a', 'veilgrid/meters/meter-a/readings'));
  assert.ok(mayPublish('meter-a', 'veilgrid/meters/meter-a/keys'));
  assert.ok(mayPublish('meter-a', 'veilgrid/mix/0011223344556677'), "into any relay's inbox");
  assert.not.ok(mayPublish('meter-a', 'veilgrid/mix/round/1'));
  assert.not.ok(mayPublish('meter-a', 'veilgrid/meters/meter-b/readings'));
  assert.not.ok(mayPublish('meter-a', 'veilgrid/market/bids'));
  assert.not.ok(maySubscribe('meter-a', 'veilgrid/meters/meter-b/readings'), 'a meter does not read other meters');
  assert.ok(maySubscribe('meter-a', 'veilgrid/mix/0011223344556677', '0011223344556677'), 'its own inbox');
  assert.not.ok(maySubscribe('meter-a', 'veilgrid/mix/8899aabbccddeeff', '0011223344556677'), "no other relay's");
  assert.not.ok(maySubscribe('meter-a', 'veilgrid/mix/+', '0011223344556677'));
  assert.not.ok(maySubscribe('meter-a', 'veilgrid/mix/0011223344556677'), 'no inbox before its relay id is known');
  assert.ok(maySubscribe('meter-a', 'veilgrid/market/prices'));
  assert.ok(maySubscribe('meter-a', 'veilgrid/meters/meter-a/replies/assets'), "a meter reads the DSO's replies to it");
  assert.not.ok(maySubscribe('meter-a', 'veilgrid/meters/meter-b/replies/assets'), "… and no other meter's");
  assert.not.ok(maySubscribe('meter-a', 'veilgrid/meters/+/replies/assets'));
  assert.not.ok(maySubscribe('meter-a', '#'));
});

test('the DSO reads readings, keys, asset requests and status and writes only replies; the bridge reads offers and writes the market; unknown users get nothing', () => {
  for (const filter of [
    'veilgrid/meters/+/readings',
    'veilgrid/meters/+/keys',
    'veilgrid/meters/+/assets',
    'veilgrid/meters/+/status',
  ])
    assert.ok(maySubscribe(DSO_USERNAME, filter), filter);
  assert.not.ok(maySubscribe(DSO_USERNAME, 'veilgrid/meters/+/offers'), "offers are the bridge's");
  assert.ok(mayPublish(DSO_USERNAME, 'veilgrid/meters/x/replies/assets'));
  assert.not.ok(mayPublish(DSO_USERNAME, 'veilgrid/meters/x/readings'));
  assert.not.ok(mayPublish(DSO_USERNAME, 'veilgrid/market/clearing'));
  assert.ok(mayPublish(DSO_USERNAME, 'veilgrid/directory/pages/3'), 'the DSO publishes the relay directory');
  assert.ok(maySubscribe('meter-a', 'veilgrid/directory/#'), '… which every meter reads');
  assert.not.ok(mayPublish('meter-a', 'veilgrid/directory/head'), '… and no meter writes');
  assert.ok(maySubscribe(BRIDGE_USERNAME, 'veilgrid/meters/+/offers'));
  assert.not.ok(maySubscribe(BRIDGE_USERNAME, 'veilgrid/meters/+/readings'));
  assert.ok(maySubscribe(BRIDGE_USERNAME, 'veilgrid/mix/exit'), 'the bridge reads the exit inbox');
  assert.not.ok(maySubscribe(BRIDGE_USERNAME, 'veilgrid/mix/+'), "but no relay's inbox");
  assert.ok(mayPublish('meter-1', 'veilgrid/mix/exit'), 'a second relay forwards to the exit');
  assert.ok(mayPublish(BRIDGE_USERNAME, 'veilgrid/market/clearing'));
  assert.not.ok(mayPublish(BRIDGE_USERNAME, 'veilgrid/meters/x/offers'));
  assert.equal(rulesFor('bad/name'), [], 'a username that is not a meter id has no rules');
  assert.equal(rulesFor('a+b'), []);
});

test('service user names are never meter ids: refused as meters, given no meter rules, refused as broker users', () => {
  for (const name of [DSO_USERNAME, BRIDGE_USERNAME, 'DSO', 'Bridge']) {
    assert.match(meterUserProblem(name) ?? '', /is reserved for the (dso|bridge) service/, name);
    assert.not.ok(mayPublish(name, 'veilgrid/meters/dso/readings'), `${name} may not publish as a meter`);
  }
  assert.is(meterUserProblem('meter-0042'), undefined);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-acl-'));
  try {
    const credentials = new BrokerCredentials(dir);
    const dsoPassword = credentials.ensureDsoUser();
    assert.throws(() => credentials.setUser(DSO_USERNAME, 'a meter password'), /reserved for the dso service/);
    assert.throws(() => credentials.setUser(BRIDGE_USERNAME, 'x'), /reserved for the bridge service/);
    assert.ok(
      verifyPassword(dsoPassword, credentials.passwords().get(DSO_USERNAME)!),
      'the DSO keeps its own password',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the mosquitto ACL file lists each user with its rules, sorted, without duplicates', () => {
  const acl = mosquittoAcl(['meter-b', DSO_USERNAME, 'meter-a', 'meter-a'], new Map([['meter-a', '0011223344556677']]));
  assert.match(acl, /^# Generated/);
  const blocks = acl
    .split('\n\n')
    .slice(1)
    .filter((b) => b.trim());
  assert.equal(
    blocks.map((b) => b.split('\n')[0]),
    ['user dso', 'user meter-a', 'user meter-b'],
  );
  assert.ok(blocks[1].includes('topic write veilgrid/meters/meter-a/#'));
  assert.ok(blocks[1].includes('topic read veilgrid/market/#'));
  assert.ok(blocks[1].includes('topic read veilgrid/mix/0011223344556677'), 'meter A reads its mixnet inbox');
  assert.not.ok(blocks[2].includes('topic read veilgrid/mix/'), 'meter B, whose relay id is not known, reads no inbox');
  assert.ok(blocks[0].includes('topic read veilgrid/meters/+/readings'));
  assert.equal(
    blocks[0].split('\n').filter((l) => l.startsWith('topic write')),
    ['topic write veilgrid/meters/+/replies/#', 'topic write veilgrid/directory/#'],
  );
});

test.run();
