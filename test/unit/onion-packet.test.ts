// The onion packet (firmware/src/protocol/onion-packet.ts, docs/onion-packet.md): a path of up to three hops,
// each peeled with its own key; constant length; any change, a wrong key or a replay detected; and a
// reference peeler written here from the documented layout with node:crypto alone.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHmac, createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  buildOnionPacket,
  MAX_HOPS,
  ONION_PACKET_BYTES,
  ONION_PAYLOAD_MAX_BYTES,
  OnionPacketError,
  onionEphemeralKey,
  PAYLOAD_OFFER,
  peelOnionPacket,
} from '../../firmware/src/protocol/onion-packet.ts';
import { nodeCryptoPrimitives } from '../../host-tools/crypto/node-primitives.ts';
import { hopTo, testRelay as relay, type TestRelay as Relay, TEST_WINDOW } from '../support/onion-relays.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** What a relay's secure element does: ECDH of its mix key with the packet's ephemeral key. */
function sharedAt(r: Relay, packet: Uint8Array): Uint8Array {
  return new Uint8Array(r.key.computeSecret(Buffer.concat([Buffer.from([4]), onionEphemeralKey(packet)])));
}

/** An offer's packet along `path` in the tests' window. */
function offerPacket(path: Relay[], payload: Uint8Array): Uint8Array {
  return buildOnionPacket(nodeCryptoPrimitives, TEST_WINDOW, path.map(hopTo), PAYLOAD_OFFER, payload);
}

function peel(r: Relay, packet: Uint8Array) {
  return peelOnionPacket(nodeCryptoPrimitives, TEST_WINDOW, sharedAt(r, packet), packet);
}

function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.instance(err, OnionPacketError);
    return (err as OnionPacketError).code;
  }
  return 'no error';
}

test('a payload goes through 1, 2 and 3 hops; every hop sees 1024 bytes and only its next hop', () => {
  for (let hops = 1; hops <= MAX_HOPS; hops++) {
    const path = Array.from({ length: hops }, relay);
    const payload = new Uint8Array(randomBytes(177));
    let packet = offerPacket(path, payload);
    const seen: string[] = [];
    for (let i = 0; i < hops; i++) {
      assert.is(packet.length, ONION_PACKET_BYTES, `hop ${i} of ${hops}`);
      seen.push(hex(packet));
      const peeled = peel(path[i], packet);
      if (i < hops - 1) {
        assert.is(hex(peeled.nextRelayId!), hex(path[i + 1].id));
        assert.is(peeled.payload, undefined);
        packet = peeled.packet!;
      } else {
        assert.is(peeled.nextRelayId, undefined, 'the last hop is the exit');
        assert.is(peeled.payloadType, PAYLOAD_OFFER);
        assert.is(hex(peeled.payload!), hex(payload));
      }
    }
    // Two hops' packets share no run of 8 bytes beyond the version byte: nothing to link them by.
    for (let a = 0; a < seen.length; a++)
      for (let b = a + 1; b < seen.length; b++) {
        for (let at = 2; at + 16 <= seen[a].length; at += 16)
          assert.not.ok(seen[b].includes(seen[a].slice(at, at + 16)), `hops ${a} and ${b} share bytes at ${at / 2}`);
      }
  }
});

test('the largest payload fits, one byte more is refused', () => {
  const path = [relay(), relay(), relay()];
  const payload = new Uint8Array(randomBytes(ONION_PAYLOAD_MAX_BYTES));
  let packet = offerPacket(path, payload);
  packet = peel(path[0], packet).packet!;
  packet = peel(path[1], packet).packet!;
  assert.is(hex(peel(path[2], packet).payload!), hex(payload));
  assert.throws(() => offerPacket(path, new Uint8Array(ONION_PAYLOAD_MAX_BYTES + 1)), /at most/);
});

test('any changed bit fails at the next hop, whichever hop it is meant for', () => {
  const path = [relay(), relay(), relay()];
  const packet = offerPacket(path, new Uint8Array(177).fill(9));
  const second = peel(path[0], packet).packet!;
  for (let at = 1; at < ONION_PACKET_BYTES; at += 7) {
    const changed = new Uint8Array(packet);
    changed[at] ^= 1 << (at % 8);
    if (at < 65) {
      // A changed ephemeral key is usually no point on the curve (the relay's ECDH refuses it), else a wrong MAC.
      let shared: Uint8Array | undefined;
      try {
        shared = sharedAt(path[0], changed);
      } catch (err) {
        assert.match((err as Error).message, /Public key is not valid/);
      }
      if (shared)
        assert.is(
          failure(() => peelOnionPacket(nodeCryptoPrimitives, TEST_WINDOW, shared!, changed)),
          'bad-mac',
          `first hop, byte ${at}`,
        );
    } else {
      assert.is(
        failure(() => peelOnionPacket(nodeCryptoPrimitives, TEST_WINDOW, sharedAt(path[0], packet), changed)),
        'bad-mac',
        `first hop, byte ${at}`,
      );
    }
    const changedLater = new Uint8Array(second);
    changedLater[at] ^= 0x80;
    if (at >= 65)
      assert.is(
        failure(() => peelOnionPacket(nodeCryptoPrimitives, TEST_WINDOW, sharedAt(path[1], second), changedLater)),
        'bad-mac',
        `second hop, byte ${at}`,
      );
  }
  assert.is(
    failure(() => peel(path[0], Object.assign(new Uint8Array(packet), { 0: 1 }))),
    'bad-version',
  );
  assert.is(
    failure(() => peel(path[0], packet.subarray(1))),
    'bad-length',
  );
});

test('a packet for another relay fails its MAC; the same packet twice has the same replay tag, two packets never', () => {
  const [a, b, exit] = [relay(), relay(), relay()];
  const packet = offerPacket([a, b, exit], new Uint8Array(10));
  assert.is(
    failure(() => peel(b, packet)),
    'bad-mac',
  );
  assert.is(hex(peel(a, packet).replayTag), hex(peel(a, packet).replayTag));
  const other = offerPacket([a, b, exit], new Uint8Array(10));
  assert.is.not(hex(peel(a, other).replayTag), hex(peel(a, packet).replayTag));
});

test('a packet replayed into another offer window fails its MAC at every hop', () => {
  const path = [relay(), relay(), relay()];
  let packet = offerPacket(path, new Uint8Array(10));
  for (let i = 0; i < 3; i++) {
    const at = packet;
    for (const window of [TEST_WINDOW - 1, TEST_WINDOW + 1, TEST_WINDOW + 96])
      assert.is(
        failure(() => peelOnionPacket(nodeCryptoPrimitives, window, sharedAt(path[i], at), at)),
        'bad-mac',
        `hop ${i}, window ${window}`,
      );
    const peeled = peel(path[i], packet);
    if (peeled.packet) packet = peeled.packet;
  }
  assert.throws(() => buildOnionPacket(nodeCryptoPrimitives, -1, [hopTo(path[0])], PAYLOAD_OFFER, new Uint8Array(1)));
  assert.throws(() =>
    buildOnionPacket(nodeCryptoPrimitives, 2 ** 31, [hopTo(path[0])], PAYLOAD_OFFER, new Uint8Array(1)),
  );
});

/** The documented layout, peeled with node:crypto only (no code from the module). */
function referencePeel(shared: Buffer, packet: Buffer, window: number) {
  const e = packet.subarray(1, 65);
  const windowBytes = Buffer.alloc(4);
  windowBytes.writeUInt32BE(window);
  const okm = Buffer.from(
    hkdfSync('sha256', shared, Buffer.alloc(0), Buffer.concat([Buffer.from('veilgrid onion v2'), e, windowBytes]), 80),
  );
  const aes = (key: Buffer, data: Buffer) => createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(data);
  const beta = packet.subarray(97, 409);
  const body = packet.subarray(409);
  const mac = createHmac('sha256', okm.subarray(32, 64))
    .update(Buffer.concat([packet.subarray(0, 1), beta, body]))
    .digest();
  if (!mac.equals(packet.subarray(65, 97))) return undefined;
  const header = aes(okm.subarray(0, 16), Buffer.concat([beta, Buffer.alloc(104)]));
  const inner = aes(okm.subarray(16, 32), body);
  return {
    next: header.subarray(0, 8),
    packet: Buffer.concat([Buffer.from([2]), header.subarray(8), inner]),
    inner,
    tag: okm.subarray(64, 80),
  };
}

test('a reference peeler written from docs/onion-packet.md with node:crypto agrees at every hop', () => {
  const path = [relay(), relay(), relay()];
  const payload = new Uint8Array(randomBytes(300));
  let packet = Buffer.from(offerPacket(path, payload));
  for (let i = 0; i < 3; i++) {
    const ours = peel(path[i], packet);
    const reference = referencePeel(Buffer.from(sharedAt(path[i], packet)), packet, TEST_WINDOW)!;
    assert.ok(reference, `hop ${i}: the reference accepts the MAC`);
    assert.is(hex(ours.replayTag), hex(reference.tag));
    if (i < 2) {
      assert.is(hex(reference.next), hex(path[i + 1].id));
      assert.is(hex(reference.packet), hex(ours.packet!));
      packet = reference.packet;
    } else {
      assert.is(hex(reference.next), '0000000000000000');
      assert.is(hex(reference.inner.subarray(0, 3)), `01${(300).toString(16).padStart(4, '0')}`);
      assert.is(hex(reference.inner.subarray(3, 303)), hex(payload));
    }
  }
});

test('fuzz: random and mutated packets only ever raise OnionPacketError', () => {
  const [a, b] = [relay(), relay()];
  const valid = offerPacket([a, b], new Uint8Array(177));
  const shared = sharedAt(a, valid);
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 1100 }),
      fc.array(fc.tuple(fc.nat(ONION_PACKET_BYTES - 1), fc.integer({ min: 1, max: 255 })), { maxLength: 8 }),
      (random, flips) => {
        for (const candidate of [
          random,
          flips.reduce((p, [at, x]) => Object.assign(p, { [at]: p[at] ^ x }), new Uint8Array(valid)),
        ]) {
          try {
            peelOnionPacket(nodeCryptoPrimitives, TEST_WINDOW, shared, candidate);
          } catch (err) {
            if (!(err instanceof OnionPacketError)) throw err;
          }
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test.run();
