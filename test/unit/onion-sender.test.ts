// A meter's onion, end to end at the byte level: the sender's emulated ATECC608 makes every hop's key
// (GenKey into TempKey, ECDH), two relays' chips peel with their mix keys (ECDH in slot 3) through the
// firmware's relay batch, and the bridge, the exit, finds the offer. Paths are two distinct relays, never
// the sender, drawn uniformly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createECDH, randomBytes, randomInt } from 'node:crypto';
import { choosePath, RELAYS_PER_PATH, sealOnion } from '../../firmware/src/mixnet/onion-sender.ts';
import { RelayBatch } from '../../firmware/src/mixnet/relay-batch.ts';
import { kidOf } from '../../firmware/src/protocol/certificate.ts';
import {
  ONION_PACKET_BYTES,
  PAYLOAD_OFFER,
  onionEphemeralKey,
  peelOnionPacket,
} from '../../firmware/src/protocol/onion-packet.ts';
import type { RelayRecord } from '../../firmware/src/protocol/relay-directory.ts';
import { MIX_SLOT } from '../../firmware/src/protocol/slot-map.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { TEST_WINDOW } from '../support/onion-relays.ts';
import { provisionedSecureElement, type ProvisionedSecureElement } from '../support/provisioned-se.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function recordOf(mixKey65: Uint8Array): RelayRecord {
  return { relayId: kidOf(nodeSha256, mixKey65), mixKey: mixKey65.subarray(1) };
}

test('paths: two distinct relays, never the sender, every ordered pair about equally often', () => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 12_000; i++) {
    const path = choosePath(5, 2, (n) => randomInt(n));
    assert.is(path.length, RELAYS_PER_PATH);
    assert.ok(!path.includes(2) && path[0] !== path[1] && path.every((p) => p >= 0 && p < 5), String(path));
    counts.set(path.join(','), (counts.get(path.join(',')) ?? 0) + 1);
  }
  assert.is(counts.size, 12, 'all 4 x 3 ordered pairs of the other relays');
  for (const [pair, n] of counts) assert.ok(n > 800 && n < 1200, `${pair}: ${n} of 12,000 (1,000 expected)`);
  assert.throws(() => choosePath(2, 0, (n) => randomInt(n)), /needs 2 besides this meter/);
});

test('the secure elements make and peel every layer; the bridge finds the offer', () => {
  const chips: ProvisionedSecureElement[] = [
    provisionedSecureElement(),
    provisionedSecureElement(),
    provisionedSecureElement(),
  ];
  try {
    const [sender, relayA, relayB] = chips;
    const bridge = createECDH('prime256v1');
    bridge.generateKeys();
    const exit = recordOf(new Uint8Array(bridge.getPublicKey()));
    const offer = new Uint8Array(randomBytes(177));
    const before = sender.se.stats.commands;
    const packet = sealOnion(
      sender.se,
      nodeCryptoPrimitives,
      TEST_WINDOW,
      [recordOf(relayA.mixKey), recordOf(relayB.mixKey)],
      exit,
      PAYLOAD_OFFER,
      offer,
    );
    assert.is(packet.length, ONION_PACKET_BYTES);
    const senderCommands = sender.se.stats.commands - before;
    assert.is(senderCommands, 6, 'a GenKey and an ECDH per hop');

    const batchOf = (chip: ProvisionedSecureElement) =>
      new RelayBatch({
        primitives: nodeCryptoPrimitives,
        ecdh: (e) => chip.se.ecdh(MIX_SLOT, e),
        randomBelow: (n) => randomInt(n),
        capacity: 4,
      });
    const a = batchOf(relayA);
    const relayBefore = relayA.se.stats.commands;
    assert.is(a.accept(packet, TEST_WINDOW), undefined);
    const [toB] = a.flush();
    assert.is(relayA.se.stats.commands - relayBefore, 1, 'relaying a packet costs one ECDH');
    assert.is(hex(toB.nextRelayId), hex(recordOf(relayB.mixKey).relayId));
    const b = batchOf(relayB);
    assert.is(b.accept(toB.packet, TEST_WINDOW), undefined);
    const [toBridge] = b.flush();
    assert.is(hex(toBridge.nextRelayId), hex(exit.relayId));
    const shared = new Uint8Array(
      bridge.computeSecret(Buffer.concat([Buffer.from([4]), onionEphemeralKey(toBridge.packet)])),
    );
    const opened = peelOnionPacket(nodeCryptoPrimitives, TEST_WINDOW, shared, toBridge.packet);
    assert.is(opened.payloadType, PAYLOAD_OFFER);
    assert.is(hex(opened.payload!), hex(offer));
    assert.is(b.accept(toB.packet, TEST_WINDOW), 'replayed', 'the second relay refuses the same packet again');
    console.log(`    figures: ${senderCommands} SE commands to send one packet (3 hops), 1 per packet relayed`);
  } finally {
    for (const chip of chips) chip.close();
  }
});

test.run();
