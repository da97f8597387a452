// The DSO's side of the relay directory (docs/relay-directory.md): the active meters' mix keys from the
// registry, cut into pages, the head signed with the DSO's key, and all of it published retained for the
// meters; the head's hash is what the DSO anchors on the ledger (MarketClient.anchorDirectory).
import { p256 } from '@noble/curves/nist.js';
import {
  encodeRelayDirectoryHead,
  kidOf,
  signedCertificate,
  type RelayDirectoryHead,
} from '../../firmware/src/protocol/certificate.ts';
import {
  buildDirectoryPages,
  relayRecordBytes,
  type RelayRecord,
} from '../../firmware/src/protocol/relay-directory.ts';
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

/** The exit as a relay record from its mix public key (x || y, or 04 || x || y): relay id kidOf(key). */
export function exitRecordOf(mixKey: Uint8Array): RelayRecord {
  return { relayId: kidOf(nodeSha256, mixKey), mixKey: mixKey.length === 65 ? mixKey.subarray(1) : mixKey };
}

/**
 * The directory of relays for epoch (an increasing number: the DSO service uses the Unix second it signs at,
 * or the last epoch + 1), naming exit in its head when given (without it meters cannot send through the mixnet).
 */
export function signRelayDirectory(
  dsoKey: DsoKey,
  epoch: number,
  relays: RelayRecord[],
  exit?: RelayRecord,
  issuedAt = Math.floor(Date.now() / 1000),
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
  if (exit) head.exit = relayRecordBytes(exit);
  const sign = (digest: Uint8Array) => p256.sign(digest, privateKey, { prehash: false });
  const signedHead = signedCertificate({ sha256: nodeSha256, sign }, dsoKey.publicKey, encodeRelayDirectoryHead(head));
  return { head, signedHead, headHash: nodeSha256(signedHead), pages };
}

/** Publishes one retained message with QoS 1, resolving on the broker's acknowledgement. */
export type RetainedPublish = (topic: string, payload: Uint8Array) => Promise<void>;

/**
 * Publishes the pages, then the head (a meter that sees the head can find every page it names), and clears
 * the retained pages an earlier, longer directory left (an empty retained message deletes one).
 */
export async function publishRelayDirectory(
  publishRetained: RetainedPublish,
  directory: SignedRelayDirectory,
  previousPageCount = 0,
): Promise<void> {
  for (let i = 0; i < directory.pages.length; i++)
    await publishRetained(relayDirectoryPageTopic(i), directory.pages[i]);
  await publishRetained(RELAY_DIRECTORY_HEAD_TOPIC, directory.signedHead);
  for (let i = directory.pages.length; i < previousPageCount; i++)
    await publishRetained(relayDirectoryPageTopic(i), new Uint8Array(0));
}
