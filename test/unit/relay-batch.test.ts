// A meter's relay batch: valid packets held and forwarded shuffled to their next hop; malformed, tampered,
// wrong-key, replayed, exit and excess packets dropped with their reason, never thrown, memory bounded.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomInt } from 'node:crypto';
import fc from 'fast-check';
import { RelayBatch } from '../../firmware/src/mixnet/relay-batch.ts';
import { buildOnionPacket, PAYLOAD_OFFER, peelOnionPacket } from '../../firmware/src/protocol/onion-packet.ts';
import { nodeCryptoPrimitives } from '../../host-tools/crypto/node-primitives.ts';
import { SecureElementError } from '../../firmware/src/se/secure-element.ts';
import { hopTo, testRelay as node, type TestRelay as Node, TEST_WINDOW } from '../support/onion-relays.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A packet through `hops` in the tests' window. */
function packetThrough(hops: Node[], payload: Uint8Array): Uint8Array {
  return buildOnionPacket(nodeCryptoPrimitives, TEST_WINDOW, hops.map(hopTo), PAYLOAD_OFFER, payload);
}

function relayFor(n: Node, capacity = 8) {
  return new RelayBatch({
    primitives: nodeCryptoPrimitives,
    ecdh: (ephemeral) => new Uint8Array(n.key.computeSecret(Buffer.concat([Buffer.from([4]), ephemeral]))),
    randomBelow: (k) => randomInt(k),
    capacity,
  });
}

test("packets from many senders are held, then forwarded shuffled to each one's next hop, peelable there", () => {
  const [relay, bridge] = [node(), node()];
  const batch = relayFor(relay, 64);
  const payloads = Array.from({ length: 40 }, (_, i) => new Uint8Array(177).fill(i));
  for (const p of payloads) assert.is(batch.accept(packetThrough([relay, bridge], p), TEST_WINDOW), undefined);
  assert.is(batch.size, 40);
  const out = batch.flush();
  assert.is(batch.size, 0);
  assert.is(batch.forwarded, 40);
  const order: number[] = [];
  for (const f of out) {
    assert.is(hex(f.nextRelayId), hex(bridge.id));
    const shared = new Uint8Array(
      bridge.key.computeSecret(Buffer.concat([Buffer.from([4]), f.packet.subarray(1, 65)])),
    );
    order.push(peelOnionPacket(nodeCryptoPrimitives, TEST_WINDOW, shared, f.packet).payload![0]);
  }
  assert.equal(
    [...order].sort((a, b) => a - b),
    payloads.map((_, i) => i),
    'every payload arrives once',
  );
  assert.not.equal(
    order,
    payloads.map((_, i) => i),
    'not in arrival order (a 1-in-40! chance of a false failure)',
  );
});

test('each bad packet is dropped with its reason and counted; the batch keeps working', () => {
  const [relay, other, bridge] = [node(), node(), node()];
  const batch = relayFor(relay, 2);
  const good = packetThrough([relay, bridge], new Uint8Array(10));
  assert.is(batch.accept(good.subarray(0, 1000), TEST_WINDOW), 'bad-length');
  assert.is(batch.accept(Object.assign(new Uint8Array(good), { 0: 9 }), TEST_WINDOW), 'bad-version');
  assert.is(
    batch.accept(Object.assign(new Uint8Array(good), { 1: good[1] ^ 1 }), TEST_WINDOW),
    'bad-key',
    'an ephemeral key off the curve',
  );
  assert.is(batch.accept(Object.assign(new Uint8Array(good), { 500: good[500] ^ 1 }), TEST_WINDOW), 'bad-mac');
  assert.is(
    batch.accept(packetThrough([other, bridge], new Uint8Array(10)), TEST_WINDOW),
    'bad-mac',
    'meant for another relay',
  );
  assert.is(
    batch.accept(packetThrough([relay], new Uint8Array(10)), TEST_WINDOW),
    'not-for-a-relay',
    'a meter is never the exit',
  );
  assert.is(batch.accept(good, TEST_WINDOW), undefined);
  assert.is(batch.accept(good, TEST_WINDOW), 'replayed');
  assert.is(batch.accept(packetThrough([relay, bridge], new Uint8Array(10)), TEST_WINDOW), undefined);
  assert.is(batch.accept(packetThrough([relay, bridge], new Uint8Array(10)), TEST_WINDOW), 'batch-full');
  assert.equal(batch.dropped, {
    'bad-length': 1,
    'bad-version': 1,
    'bad-key': 1,
    'bad-mac': 2,
    'bad-payload': 0,
    replayed: 1,
    'not-for-a-relay': 1,
    'batch-full': 1,
    'out-of-round': 0,
    busy: 0,
    'relay-error': 0,
  });
  batch.flush();
  assert.is(batch.accept(good, TEST_WINDOW), 'replayed', 'the round remembers the tag after forwarding');
  batch.forgetTags();
  assert.is(batch.accept(good, TEST_WINDOW), undefined, 'once the tags are forgotten it is relayed again');
});

test("the chip refusing an ephemeral key is the packet's bad-key; the chip not answering is the relay's error, thrown", () => {
  const [relay, bridge] = [node(), node()];
  const packet = packetThrough([relay, bridge], new Uint8Array(1));
  const failing = (status: number) =>
    new RelayBatch({
      primitives: nodeCryptoPrimitives,
      ecdh: () => {
        throw new SecureElementError('ecdh', status, 'as the driver says it');
      },
      randomBelow: (k) => randomInt(k),
      capacity: 4,
    });
  assert.is(failing(0x0f).accept(packet, TEST_WINDOW), 'bad-key');
  assert.throws(
    () => failing(-1).accept(packet, TEST_WINDOW),
    /as the driver says it/,
    'MixRelay counts it as relay-error',
  );
});

test('memory stays bounded however many valid packets arrive, and random input never throws', () => {
  const [relay, bridge] = [node(), node()];
  const batch = relayFor(relay, 4);
  for (let i = 0; i < 30; i++) batch.accept(packetThrough([relay], new Uint8Array(1)), TEST_WINDOW);
  assert.ok(batch.rememberedTags <= 8, `tags ${batch.rememberedTags}`);
  assert.is(batch.dropped['batch-full'], 22);
  const fresh = relayFor(relay, 4);
  const valid = packetThrough([relay, bridge], new Uint8Array(1));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1100 }), fc.nat(1023), fc.integer({ min: 1, max: 255 }), (random, at, x) => {
      fresh.accept(random, TEST_WINDOW);
      fresh.accept(Object.assign(new Uint8Array(valid), { [at]: valid[at] ^ x }), TEST_WINDOW);
      fresh.forgetTags();
    }),
    { numRuns: 500 },
  );
  assert.ok(fresh.size <= 4);
});

test.run();
