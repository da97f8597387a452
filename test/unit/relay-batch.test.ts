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
import { hopTo, testRelay as node, type TestRelay as Node } from '../support/onion-relays.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

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
  for (const p of payloads)
    assert.is(
      batch.accept(buildOnionPacket(nodeCryptoPrimitives, [relay, bridge].map(hopTo), PAYLOAD_OFFER, p)),
      undefined,
    );
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
    order.push(peelOnionPacket(nodeCryptoPrimitives, shared, f.packet).payload![0]);
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
  const good = buildOnionPacket(nodeCryptoPrimitives, [relay, bridge].map(hopTo), PAYLOAD_OFFER, new Uint8Array(10));
  assert.is(batch.accept(good.subarray(0, 1000)), 'bad-length');
  assert.is(batch.accept(Object.assign(new Uint8Array(good), { 0: 9 })), 'bad-version');
  assert.is(
    batch.accept(Object.assign(new Uint8Array(good), { 1: good[1] ^ 1 })),
    'bad-key',
    'an ephemeral key off the curve',
  );
  assert.is(batch.accept(Object.assign(new Uint8Array(good), { 500: good[500] ^ 1 })), 'bad-mac');
  assert.is(
    batch.accept(buildOnionPacket(nodeCryptoPrimitives, [other, bridge].map(hopTo), PAYLOAD_OFFER, new Uint8Array(10))),
    'bad-mac',
    'meant for another relay',
  );
  assert.is(
    batch.accept(buildOnionPacket(nodeCryptoPrimitives, [relay].map(hopTo), PAYLOAD_OFFER, new Uint8Array(10))),
    'not-for-a-relay',
    'a meter is never the exit',
  );
  assert.is(batch.accept(good), undefined);
  assert.is(batch.accept(good), 'replayed');
  assert.is(
    batch.accept(buildOnionPacket(nodeCryptoPrimitives, [relay, bridge].map(hopTo), PAYLOAD_OFFER, new Uint8Array(10))),
    undefined,
  );
  assert.is(
    batch.accept(buildOnionPacket(nodeCryptoPrimitives, [relay, bridge].map(hopTo), PAYLOAD_OFFER, new Uint8Array(10))),
    'batch-full',
  );
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
  assert.is(batch.accept(good), 'replayed', 'the round remembers the tag after forwarding');
  batch.forgetTags();
  assert.is(batch.accept(good), undefined, 'once the tags are forgotten it is relayed again');
});

test("the chip refusing an ephemeral key is the packet's bad-key; the chip not answering is the relay's error, thrown", () => {
  const [relay, bridge] = [node(), node()];
  const packet = buildOnionPacket(nodeCryptoPrimitives, [relay, bridge].map(hopTo), PAYLOAD_OFFER, new Uint8Array(1));
  const failing = (status: number) =>
    new RelayBatch({
      primitives: nodeCryptoPrimitives,
      ecdh: () => {
        throw new SecureElementError('ecdh', status, 'as the driver says it');
      },
      randomBelow: (k) => randomInt(k),
      capacity: 4,
    });
  assert.is(failing(0x0f).accept(packet), 'bad-key');
  assert.throws(() => failing(-1).accept(packet), /as the driver says it/, 'MixRelay counts it as relay-error');
});

test('memory stays bounded however many valid packets arrive, and random input never throws', () => {
  const [relay, bridge] = [node(), node()];
  const batch = relayFor(relay, 4);
  for (let i = 0; i < 30; i++)
    batch.accept(buildOnionPacket(nodeCryptoPrimitives, [relay].map(hopTo), PAYLOAD_OFFER, new Uint8Array(1)));
  assert.ok(batch.rememberedTags <= 8, `tags ${batch.rememberedTags}`);
  assert.is(batch.dropped['batch-full'], 22);
  const fresh = relayFor(relay, 4);
  const valid = buildOnionPacket(nodeCryptoPrimitives, [relay, bridge].map(hopTo), PAYLOAD_OFFER, new Uint8Array(1));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1100 }), fc.nat(1023), fc.integer({ min: 1, max: 255 }), (random, at, x) => {
      fresh.accept(random);
      fresh.accept(Object.assign(new Uint8Array(valid), { [at]: valid[at] ^ x }));
      fresh.forgetTags();
    }),
    { numRuns: 500 },
  );
  assert.ok(fresh.size <= 4);
});

test.run();
