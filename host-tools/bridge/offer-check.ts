// The bridge's hot path: what it does to each offer message before queuing it (docs/bridge.md, "What the
// bridge checks"). Parse with the shared codec, check the deployment, the gate and the key, and verify the
// ES256 signature with node:crypto (OpenSSL) — the contract's P256VERIFY is the judge, this only keeps offers
// the chain would refuse from costing gas. test/bridge/verify-agreement.test.ts holds node:crypto to
// @noble/curves on valid, invalid, high-s and mutated signatures.
import { createHash, createPublicKey, verify } from 'node:crypto';
import {
  REASON_BRIDGE_BAD_SIGNATURE,
  REASON_BRIDGE_GATE_CLOSED,
  REASON_BRIDGE_MALFORMED,
  REASON_BRIDGE_REVOKED_KEY,
  REASON_BRIDGE_WRONG_MARKET,
} from '../../firmware/src/protocol/market-broadcast.ts';
import {
  decodeOffer,
  OFFER_MESSAGE_LENGTH,
  splitOfferMessage,
  type MarketDomain,
  type Offer,
} from '../../firmware/src/protocol/offer.ts';
import { keyIdOf } from '../ledger/trading-key.ts';

/**
 * ES256 (ECDSA P-256 over SHA-256 of message) with the signature as r || s, high s accepted (as the ATECC608
 * makes it and P256VERIFY accepts it). False for a point not on the curve, r or s out of range, any other length.
 */
export function verifyEs256(message: Uint8Array, signature: Uint8Array, x: Uint8Array, y: Uint8Array): boolean {
  if (signature.length !== 64 || x.length !== 32 || y.length !== 32) return false;
  let key;
  try {
    // JWK, not DER: Node sets the coordinates itself (checking the point is on the curve), which took half the
    // time of OpenSSL 3's DER decoder here (bench/bridge-verify.ts; the import is most of the bridge's overhead).
    key = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: Buffer.from(x).toString('base64url'),
        y: Buffer.from(y).toString('base64url'),
      },
      format: 'jwk',
    });
  } catch {
    return false; // not a point on the curve
  }
  return verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, signature);
}

export type OfferCheck =
  | { ok: true; digest: Uint8Array; offer: Offer; signedBytes: Uint8Array; signature: Uint8Array }
  | { ok: false; digest: Uint8Array; reason: number; detail: string };

export interface OfferCheckContext {
  domain: MarketDomain;
  /** Unix seconds at which an interval's gate closes (genesis + interval · Δ). */
  gateClosure(interval: number): number;
  /** The chain's time now, Unix seconds. */
  now(): number;
  /** Key ids (keccak256(x || y), lower-case hex) revoked on chain; consulted only when not empty. */
  revokedKeys: ReadonlySet<string>;
}

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/** Everything the bridge checks off chain, cheapest first; the digest names the offer in the receipt. */
export function checkOfferMessage(message: Uint8Array, context: OfferCheckContext): OfferCheck {
  if (message.length !== OFFER_MESSAGE_LENGTH) {
    return {
      ok: false,
      digest: sha256(message),
      reason: REASON_BRIDGE_MALFORMED,
      detail: `an offer message is ${OFFER_MESSAGE_LENGTH} bytes, got ${message.length}`,
    };
  }
  const { signedBytes, signature } = splitOfferMessage(message);
  const digest = sha256(signedBytes);
  let offer: Offer;
  try {
    offer = decodeOffer(signedBytes);
  } catch (err) {
    return { ok: false, digest, reason: REASON_BRIDGE_MALFORMED, detail: (err as Error).message };
  }
  if (
    offer.domain.chainId !== context.domain.chainId ||
    offer.domain.market.toLowerCase() !== context.domain.market.toLowerCase()
  ) {
    return {
      ok: false,
      digest,
      reason: REASON_BRIDGE_WRONG_MARKET,
      detail: `signed for market ${offer.domain.market} on chain ${offer.domain.chainId}, this is ${context.domain.market} on chain ${context.domain.chainId}`,
    };
  }
  const closure = context.gateClosure(offer.interval);
  if (context.now() >= closure) {
    return {
      ok: false,
      digest,
      reason: REASON_BRIDGE_GATE_CLOSED,
      detail: `interval ${offer.interval}'s gate closed at ${new Date(closure * 1000).toISOString()}`,
    };
  }
  if (context.revokedKeys.size > 0 && context.revokedKeys.has(keyIdOf(offer.key).toLowerCase())) {
    return {
      ok: false,
      digest,
      reason: REASON_BRIDGE_REVOKED_KEY,
      detail: 'the trading key was revoked on chain (its meter is banned)',
    };
  }
  if (!verifyEs256(signedBytes, signature, offer.key.x, offer.key.y)) {
    return {
      ok: false,
      digest,
      reason: REASON_BRIDGE_BAD_SIGNATURE,
      detail: 'the ES256 signature does not verify under the key in the offer',
    };
  }
  return { ok: true, digest, offer, signedBytes, signature };
}
