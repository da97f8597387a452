// The mixnet's exit as logic (host-tools/bridge/mix-exit.ts) and its key file (exit-key.ts): packets built by a
// sender and peeled by two relays open to the offer or the dummy in them; every kind of bad packet is dropped
// with its reason; replays are caught in the same and the next window; the per-window bounds hold; and a fuzz
// run of random and mutated packets never throws and never grows the replay memory beyond its bound.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { sealOnion } from '../../firmware/src/mixnet/onion-sender.ts';
import { RelayBatch } from '../../firmware/src/mixnet/relay-batch.ts';
import { kidOf } from '../../firmware/src/protocol/certificate.ts';
import {
  buildOnionPacket,
  ONION_PACKET_BYTES,
  PAYLOAD_DUMMY,
  PAYLOAD_OFFER,
} from '../../firmware/src/protocol/onion-packet.ts';
import { ensureExitKey, ExitKeyFileError, exitKeyHex, readExitKey } from '../../host-tools/bridge/exit-key.ts';
import { MixExit } from '../../host-tools/bridge/mix-exit.ts';
import { MIX_SLOT } from '../../firmware/src/protocol/slot-map.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { parseExitKey } from '../../host-tools/dso/directory-publisher.ts';
import { provisionedSecureElement } from '../support/provisioned-se.ts';
import { hopTo, testRelay } from '../support/onion-relays.ts';
import { exitRelay, mixPacket, tempDir } from './bridge-fixture.ts';

const test = suite('mixnet exit');
const tmp = tempDir('veilgrid-exit-');
const exitKey = ensureExitKey(path.join(tmp.dir, 'bridge', 'exit-key.json'));
const exit = exitRelay(exitKey);
const WINDOW = 11;
const offerBytes = new Uint8Array(randomBytes(177));

test.after(() => tmp.remove());

test('the exit key is made once, 0600, and read back; its relay id is kidOf its public key', () => {
  const file = path.join(tmp.dir, 'bridge', 'exit-key.json');
  assert.is(fs.statSync(file).mode & 0o777, 0o600);
  assert.is(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
  const again = ensureExitKey(file);
  assert.equal(again.publicKey, exitKey.publicKey);
  assert.equal(again.privateKey, exitKey.privateKey);
  assert.equal(exitKey.relayId, kidOf(nodeSha256, exitKey.publicKey));
  assert.match(exitKeyHex(exitKey), /^[0-9a-f]{128}$/);
  assert.equal(parseExitKey(exitKeyHex(exitKey)), exitKey.publicKey, 'what veilgrid dso serve --exit-key takes');

  const broken = path.join(tmp.dir, 'broken.json');
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(
    broken,
    JSON.stringify({ ...json, publicKey: json.publicKey.replace(/^./, (c: string) => (c === '0' ? '1' : '0')) }),
  );
  assert.throws(
    () => readExitKey(broken),
    (err: Error) => err instanceof ExitKeyFileError && /does not belong/.test(err.message),
  );
  fs.writeFileSync(broken, '{"format":"something else"}');
  assert.throws(() => readExitKey(broken), /not a veilgrid bridge exit key file/);
});

test('an offer and a dummy through two relays open at the exit; a second copy is a replay; two windows on, a bad MAC', () => {
  const mix = new MixExit({ privateKey: exitKey.privateKey });
  const offer = mixPacket(exit, PAYLOAD_OFFER, offerBytes, WINDOW);
  const result = mix.take(offer, WINDOW);
  assert.is(result.outcome, 'offer');
  assert.equal(result.outcome === 'offer' && result.message, offerBytes);
  assert.is(mix.take(mixPacket(exit, PAYLOAD_DUMMY, new Uint8Array(0), WINDOW), WINDOW).outcome, 'dummy');
  assert.is(mix.take(offer, WINDOW).outcome, 'replayed');
  assert.is(mix.take(offer, WINDOW + 1).outcome, 'replayed', 'the window before is still peeled, and remembered');
  assert.is(mix.take(offer, WINDOW + 2).outcome, 'bad-mac', 'two windows on, its keys no longer match');
  assert.is(mix.replayTags, 0, 'tags are kept for this window and the one before');
  const late = new MixExit({ privateKey: exitKey.privateKey });
  assert.is(
    late.take(mixPacket(exit, PAYLOAD_DUMMY, new Uint8Array(0), WINDOW), WINDOW + 1).outcome,
    'dummy',
    "a packet of the meters' window, peeled after the bridge's clock moved on",
  );
});

test("a meter's secure element seals it, two relays' chips peel it, the exit opens it", () => {
  const chips = [provisionedSecureElement(), provisionedSecureElement(), provisionedSecureElement()];
  try {
    const [sender, ...relays] = chips;
    const records = relays.map((r) => ({ relayId: kidOf(nodeSha256, r.mixKey), mixKey: r.mixKey.subarray(1) }));
    const exitRecord = { relayId: exitKey.relayId, mixKey: exitKey.publicKey };
    let packet = sealOnion(sender.se, nodeCryptoPrimitives, WINDOW, records, exitRecord, PAYLOAD_OFFER, offerBytes);
    for (const relay of relays) {
      const batch = new RelayBatch({
        primitives: nodeCryptoPrimitives,
        ecdh: (e) => relay.se.ecdh(MIX_SLOT, e),
        randomBelow: (n) => randomInt(n),
        capacity: 4,
      });
      assert.is(batch.accept(packet, WINDOW), undefined);
      packet = batch.flush()[0].packet;
    }
    const result = new MixExit({ privateKey: exitKey.privateKey }).take(packet, WINDOW);
    assert.equal(result.outcome === 'offer' && result.message, offerBytes);
  } finally {
    for (const chip of chips) chip.close();
  }
});

test('bad packets are dropped with their reason', () => {
  const mix = new MixExit({ privateKey: exitKey.privateKey });
  const offer = mixPacket(exit, PAYLOAD_OFFER, offerBytes, WINDOW);
  const outcome = (packet: Uint8Array) => mix.take(packet, WINDOW).outcome;
  assert.is(outcome(offer.subarray(0, ONION_PACKET_BYTES - 1)), 'bad-length');
  assert.is(outcome(new Uint8Array(ONION_PACKET_BYTES + 1)), 'bad-length');
  assert.is(outcome(new Uint8Array(0)), 'bad-length');
  const version = offer.slice();
  version[0] = 1; // the format before the window was bound into the keys
  assert.is(outcome(version), 'bad-version');
  const changed = offer.slice();
  changed[700] ^= 1;
  assert.is(outcome(changed), 'bad-mac');
  const offCurve = offer.slice();
  offCurve.fill(0xff, 1, 65);
  assert.is(outcome(offCurve), 'bad-key');
  assert.is(
    outcome(mixPacket(testRelay(), PAYLOAD_OFFER, offerBytes, WINDOW)),
    'bad-mac',
    'built for another exit key',
  );
  // A packet whose routing names a next relay: the exit is its first hop of two.
  const twoHops = buildOnionPacket(
    nodeCryptoPrimitives,
    WINDOW,
    [hopTo(exit), hopTo(testRelay())],
    PAYLOAD_OFFER,
    offerBytes,
  );
  assert.is(outcome(twoHops), 'not-for-the-exit');
  assert.is(outcome(mixPacket(exit, 3, offerBytes, WINDOW)), 'unknown-type');
  assert.is(outcome(offer), 'offer', 'the genuine packet still opens after all that');
});

test('at most windowPackets are peeled per window; the key budget is per window', () => {
  const mix = new MixExit({ privateKey: exitKey.privateKey, windowPackets: 3, keyBudget: 2 });
  const packets = Array.from({ length: 4 }, () => mixPacket(exit, PAYLOAD_DUMMY, new Uint8Array(0), WINDOW));
  assert.equal(
    packets.map((p) => mix.take(p, WINDOW).outcome),
    ['dummy', 'dummy', 'dummy', 'window-full'],
  );
  assert.is(
    mix.take(mixPacket(exit, PAYLOAD_DUMMY, new Uint8Array(0), WINDOW + 1), WINDOW + 1).outcome,
    'dummy',
    'a new window peels again',
  );
  mix.chargeKey('k');
  assert.not.ok(mix.keyExhausted('k'));
  mix.chargeKey('k');
  assert.ok(mix.keyExhausted('k'));
  mix.take(packets[0], WINDOW + 2);
  assert.not.ok(mix.keyExhausted('k'), 'charges start again each window');
});

test('fuzz: random and mutated packets never throw and the replay memory stays bounded', () => {
  const windowPackets = 200;
  const mix = new MixExit({ privateKey: exitKey.privateKey, windowPackets });
  const genuine = [
    mixPacket(exit, PAYLOAD_OFFER, offerBytes, WINDOW),
    mixPacket(exit, PAYLOAD_DUMMY, new Uint8Array(0), WINDOW),
    mixPacket(exit, 9, new Uint8Array(612), WINDOW),
  ];
  const outcomes: Record<string, number> = {};
  let window = WINDOW;
  for (let i = 0; i < 6000; i++) {
    if (i % 1000 === 999) window++;
    let packet: Uint8Array;
    const kind = i % 4;
    if (kind === 0) packet = new Uint8Array(randomBytes(ONION_PACKET_BYTES));
    else if (kind === 1) packet = new Uint8Array(randomBytes(randomBytes(2).readUInt16BE() % 2100));
    else {
      packet = genuine[i % genuine.length].slice();
      const flips = 1 + (i % 5);
      for (let f = 0; f < flips; f++) packet[randomBytes(2).readUInt16BE() % packet.length] ^= 1 << (i % 8);
      if (kind === 3) packet[0] = 1; // keep the version: reach the ECDH and the MAC
    }
    const { outcome } = mix.take(packet, window);
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    assert.ok(mix.replayTags <= 2 * windowPackets, `replay tags ${mix.replayTags} after packet ${i}`);
  }
  assert.ok(
    outcomes['bad-length'] > 0 && outcomes['bad-mac'] > 0 && outcomes['window-full'] > 0,
    JSON.stringify(outcomes),
  );
  const known = [
    'offer',
    'dummy',
    'unknown-type',
    'replayed',
    'bad-length',
    'bad-version',
    'bad-key',
    'bad-mac',
    'window-full',
  ];
  for (const outcome of Object.keys(outcomes)) assert.ok(known.includes(outcome), outcome);
});

test.run();
