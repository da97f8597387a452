// A meter sending through the mixnet (docs/mixnet.md): two relays drawn at random from the directory, then
// the exit, and one onion packet (protocol/onion-packet.ts) whose per-hop keys the secure element makes:
// for each hop a fresh ephemeral key in TempKey (GenKey) and ECDH of it with the hop's mix key, so no
// private key ever exists outside the chip and no two hops share a value.
import { buildOnionPacket, type OnionHop, type OnionPrimitives } from '../protocol/onion-packet.ts';
import type { RelayRecord } from '../protocol/relay-directory.ts';

/** What the sender needs of the secure element (se/secure-element.ts). */
export interface OnionSecureElement {
  /** A new ephemeral key in TempKey; its public key x || y. */
  genTempKey(): Uint8Array;
  /** ECDH of TempKey with a public key x || y: the shared x. */
  ecdh(source: 'tempkey', peerPublicKey: Uint8Array): Uint8Array;
}

/** Relays per path before the exit. */
export const RELAYS_PER_PATH = 2;

/**
 * The directory indexes of RELAYS_PER_PATH distinct relays, none of them `ownIndex` (a meter never relays
 * its own packet), drawn uniformly with randomBelow(n) in [0, n). Needs a directory of at least
 * RELAYS_PER_PATH + 1 relays counting the sender.
 */
export function choosePath(relayCount: number, ownIndex: number, randomBelow: (n: number) => number): number[] {
  const others = ownIndex >= 0 && ownIndex < relayCount ? relayCount - 1 : relayCount;
  if (others < RELAYS_PER_PATH)
    throw new Error(
      'the directory lists ' + relayCount + ' relays: a path needs ' + RELAYS_PER_PATH + ' besides this meter',
    );
  const path: number[] = [];
  while (path.length < RELAYS_PER_PATH) {
    // Drawn among the others (skipping ownIndex), again until distinct: uniform over ordered pairs.
    let index = randomBelow(others);
    if (ownIndex >= 0 && index >= ownIndex) index++;
    if (path.indexOf(index) < 0) path.push(index);
  }
  return path;
}

/**
 * The packet carrying payload through `relays` (in order) to `exit` in offer window `window` (the interval it
 * is for). Per hop one GenKey and one ECDH in the secure element; a hop whose ECDH fails (TempKey lost: the
 * chip's watchdog put it to sleep between the two, on a slow or loaded meter) is made once more with a new
 * key. Returns the packet; it goes to the first relay's inbox.
 */
export function sealOnion(
  se: OnionSecureElement,
  primitives: OnionPrimitives,
  window: number,
  relays: RelayRecord[],
  exit: RelayRecord,
  payloadType: number,
  payload: Uint8Array,
): Uint8Array {
  const path = relays.concat([exit]);
  const hops: OnionHop[] = [];
  for (let i = 0; i < path.length; i++) {
    let ephemeralKey = se.genTempKey();
    let shared: Uint8Array;
    try {
      shared = se.ecdh('tempkey', path[i].mixKey);
    } catch (e) {
      ephemeralKey = se.genTempKey();
      shared = se.ecdh('tempkey', path[i].mixKey);
    }
    hops.push({ relayId: path[i].relayId, ephemeralKey: ephemeralKey, shared: shared });
  }
  return buildOnionPacket(primitives, window, hops, payloadType, payload);
}
