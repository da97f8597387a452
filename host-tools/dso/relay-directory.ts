// The DSO's side of the relay directory (docs/relay-directory.md): the active meters' mix keys from the
// registry, cut into pages, the head signed with the DSO's key, and all of it published retained for the
// meters; the head's hash is what the DSO anchors on the ledger (MarketClient.anchorDirectory).
import { p256 } from '@noble/curves/nist.js';
import type { MqttClient } from 'mqtt';
import {
  encodeRelayDirectoryHead,
  kidOf,
  signedCertificate,
  type RelayDirectoryHead,
} from '../../firmware/src/protocol/certificate.ts';
import { buildDirectoryPages, type RelayRecord } from '../../firmware/src/protocol/relay-directory.ts';
import { RELAY_DIRECTORY_HEAD_TOPIC, relayDirectoryPageTopic } from '../../firmware/src/protocol/topics.ts';
import { nodeSha256 } from '../crypto/node-primitives.ts';
import type { DsoKey } from './dso-key.ts';
import type { MeterRegistry } from './registry.ts';

export interface SignedRelayDirectory {
  head: RelayDirectoryHead;
  /** The head as the DSO signed it (COSE_Sign1): what meters verify and the ledger anchors the hash of. */
  signedHead: Uint8Array;
  /** SHA-256 of signedHead. */
  headHash: Uint8Array;
  pages: Uint8Array[];
}

/** Every active meter as a relay: its relay id (kidOf the mix key) and mix key x || y. */
export function relaysOf(registry: MeterRegistry): RelayRecord[] {
  return registry
    .meters()
    .filter((meter) => meter.status === 'active')
    .map((meter) => ({ relayId: kidOf(nodeSha256, meter.mixKey), mixKey: meter.mixKey.subarray(1) }));
}

/** The directory of relays for epoch (an increasing number: the DSO uses the Unix second it signs at). */
export function signRelayDirectory(
  dsoKey: DsoKey,
  epoch: number,
  relays: RelayRecord[],
  issuedAt = epoch,
): SignedRelayDirectory {
  if (!dsoKey.privateKey) throw new Error('signing the relay directory needs the DSO key file with its private key');
  const privateKey = dsoKey.privateKey;
  const { pages, firstPageHash } = buildDirectoryPages(nodeSha256, epoch, relays);
  const head: RelayDirectoryHead = {
    epoch,
    relayCount: relays.length,
    pageCount: pages.length,
    firstPageHash,
    issuedAt,
  };
  const sign = (digest: Uint8Array) => p256.sign(digest, privateKey, { prehash: false });
  const signedHead = signedCertificate({ sha256: nodeSha256, sign }, dsoKey.publicKey, encodeRelayDirectoryHead(head));
  return { head, signedHead, headHash: nodeSha256(signedHead), pages };
}

function publishRetained(client: MqttClient, topic: string, payload: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(topic, Buffer.from(payload), { qos: 1, retain: true }, (err) => (err ? reject(err) : resolve())),
  );
}

/**
 * Publishes the pages, then the head (a meter that sees the head can find every page it names), and clears
 * the retained pages an earlier, longer directory left (an empty retained message deletes one).
 */
export async function publishRelayDirectory(
  client: MqttClient,
  directory: SignedRelayDirectory,
  previousPageCount = 0,
): Promise<void> {
  for (let i = 0; i < directory.pages.length; i++)
    await publishRetained(client, relayDirectoryPageTopic(i), directory.pages[i]);
  await publishRetained(client, RELAY_DIRECTORY_HEAD_TOPIC, directory.signedHead);
  for (let i = directory.pages.length; i < previousPageCount; i++)
    await publishRetained(client, relayDirectoryPageTopic(i), new Uint8Array(0));
}
