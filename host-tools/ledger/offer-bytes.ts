// The bytes a trading key signs for an offer and for a rescission (docs/ledger.md, "Signed bytes"), as the
// contract parses them (contracts/OfferBytes.sol). The meter's secure element signs SHA-256 of these bytes
// (ES256); the firmware's codec will build the same layout, and this module is the host's side of it.
import { nodeSha256 } from '../crypto/node-primitives.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export const OFFER_LENGTH = 113;
export const RESCIND_LENGTH = 128;
export const SIGNATURE_LENGTH = 64;
const OFFER_TAG = 'VGO1';
const RESCIND_TAG = 'VGR1';
export const SIDE_CODES = { ask: 1, bid: 2 } as const;
export type Side = keyof typeof SIDE_CODES;

/** Which deployment an offer is for: signed in, so an offer cannot be replayed on another chain or market. */
export interface MarketDomain {
  chainId: bigint;
  market: `0x${string}`;
}

/** A trading key's public point, 32-byte big-endian coordinates. */
export interface TradingPublicKey {
  x: Uint8Array;
  y: Uint8Array;
}

export interface OfferFields {
  side: Side;
  /** Delivery interval number (the contract's clock: genesis + interval · Δ). */
  interval: number;
  /** Energy offered or wanted in the interval, Wh. */
  wh: number;
  /** Limit price, money units per Wh: the least an ask accepts, the most a bid pays. */
  limitPrice: number;
  /** Lets one key sign distinct offers with otherwise equal fields (each digest is accepted once). */
  seq: number;
  key: TradingPublicKey;
}

export class OfferBytesError extends VeilgridError {
  constructor(message: string) {
    super('OfferBytesError', 'offer-bytes', message);
  }
}

function uint32(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new OfferBytesError(`${name} must be a whole number in 0..2^32-1, got ${value}`);
  return value;
}

function coordinate(bytes: Uint8Array, name: string): Uint8Array {
  if (bytes.length !== 32) throw new OfferBytesError(`the key's ${name} must be 32 bytes, got ${bytes.length}`);
  return bytes;
}

/** Tag, chain id and market address: the first 32 bytes of both layouts. */
function writeDomain(out: Uint8Array, view: DataView, tag: string, domain: MarketDomain): void {
  for (let i = 0; i < 4; i++) out[i] = tag.charCodeAt(i);
  view.setBigUint64(4, domain.chainId);
  const market = domain.market.slice(2);
  if (!/^[0-9a-fA-F]{40}$/.test(market)) throw new OfferBytesError(`market must be a 20-byte hex address, got ${domain.market}`);
  out.set(Buffer.from(market, 'hex'), 12);
}

export function encodeOffer(domain: MarketDomain, offer: OfferFields): Uint8Array {
  const out = new Uint8Array(OFFER_LENGTH);
  const view = new DataView(out.buffer);
  writeDomain(out, view, OFFER_TAG, domain);
  out[32] = SIDE_CODES[offer.side];
  view.setUint32(33, uint32(offer.interval, 'interval'));
  view.setUint32(37, uint32(offer.wh, 'wh'));
  view.setUint32(41, uint32(offer.limitPrice, 'limitPrice'));
  view.setUint32(45, uint32(offer.seq, 'seq'));
  out.set(coordinate(offer.key.x, 'x'), 49);
  out.set(coordinate(offer.key.y, 'y'), 81);
  return out;
}

/** The rescission of the offer whose SHA-256 digest is offerDigest, by the key that signed it. */
export function encodeRescission(domain: MarketDomain, offerDigest: Uint8Array, key: TradingPublicKey): Uint8Array {
  if (offerDigest.length !== 32) throw new OfferBytesError(`an offer digest is 32 bytes, got ${offerDigest.length}`);
  const out = new Uint8Array(RESCIND_LENGTH);
  writeDomain(out, new DataView(out.buffer), RESCIND_TAG, domain);
  out.set(offerDigest, 32);
  out.set(coordinate(key.x, 'x'), 64);
  out.set(coordinate(key.y, 'y'), 96);
  return out;
}

/** What the secure element signs and what the contract indexes an offer by. */
export function offerDigest(signedBytes: Uint8Array): Uint8Array {
  return nodeSha256(signedBytes);
}
