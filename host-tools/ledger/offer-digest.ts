// The offer digest: SHA-256 of an offer's signed bytes (firmware/src/protocol/offer.ts). It is what the
// trading key signs and what names the offer everywhere: events, rescissions, the bridge's receipts.
import { nodeSha256 } from '../crypto/node-primitives.ts';

export function offerDigest(signedBytes: Uint8Array): Uint8Array {
  return nodeSha256(signedBytes);
}
