// Mixnet relays for tests, their mix keys in node:crypto: a relay id and key pair, and what a sender's
// secure element does per hop (a fresh ephemeral key, ECDH with the hop's mix key).
import { createECDH, randomBytes, type ECDH } from 'node:crypto';
import type { OnionHop } from '../../firmware/src/protocol/onion-packet.ts';

/** The offer window (a market interval) the tests' packets travel in. */
export const TEST_WINDOW = 29944038;

export interface TestRelay {
  id: Uint8Array;
  key: ECDH;
}

export function testRelay(): TestRelay {
  const key = createECDH('prime256v1');
  key.generateKeys();
  return { id: new Uint8Array(randomBytes(8)), key };
}

export function hopTo(relay: TestRelay): OnionHop {
  const ephemeral = createECDH('prime256v1');
  ephemeral.generateKeys();
  return {
    relayId: relay.id,
    ephemeralKey: new Uint8Array(ephemeral.getPublicKey().subarray(1)),
    shared: new Uint8Array(ephemeral.computeSecret(relay.key.getPublicKey())),
  };
}
