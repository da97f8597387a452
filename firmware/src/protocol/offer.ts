// The bytes a trading key signs for an offer and for a rescission (docs/ledger.md, "Signed bytes"), and the
// message that carries them (signed bytes followed by the 64-byte signature r || s). Written once: the
// meter builds offers with it, the host's bridge, tests and benches parse and build with it, and the
// market contract (host-tools/ledger/contracts/OfferBytes.sol) is the judge of the same layout.
// Device-safe: plain byte arithmetic (no DataView, no BigInt, which Espruino 2v29 lacks).
import { VeilgridError } from './veilgrid-error.ts';
import { hexToBytes } from './hex.ts';

export const OFFER_LENGTH = 113;
export const RESCISSION_LENGTH = 128;
export const SIGNATURE_LENGTH = 64;
/** An offer on the wire: the signed bytes, then the signature. */
export const OFFER_MESSAGE_LENGTH = OFFER_LENGTH + SIGNATURE_LENGTH;
const OFFER_TAG = 'VGO1';
const RESCISSION_TAG = 'VGR1';
/** Chain ids are signed as 8 bytes; this codec takes them as numbers, exact up to 2^53. */
const MAX_CHAIN_ID = 9007199254740991;

export const SIDE_ASK = 1;
export const SIDE_BID = 2;
export type Side = 'ask' | 'bid';

/** Which deployment an offer is for: signed in, so an offer cannot be replayed on another chain or market. */
export interface MarketDomain {
  chainId: number;
  /** The market contract's address, "0x" and 40 hex digits. */
  market: string;
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
  /** Energy offered or wanted in the interval, Wh, at least 1. */
  wh: number;
  /** Limit price, money units per Wh: the least an ask accepts, the most a bid pays. */
  limitPrice: number;
  /** Lets one key sign distinct offers with otherwise equal fields (each digest is accepted once). */
  seq: number;
  key: TradingPublicKey;
}

/** A parsed offer: its fields and the deployment it names. */
export interface Offer extends OfferFields {
  domain: MarketDomain;
}

/** Signed bytes and the signature over them, as one message carries them. */
export interface SignedMessage {
  signedBytes: Uint8Array;
  signature: Uint8Array;
}

export class OfferBytesError extends VeilgridError {
  constructor(message: string) {
    super('OfferBytesError', 'offer-bytes', message);
  }
}

function writeUint32(out: Uint8Array, at: number, value: number, name: string): void {
  if (typeof value !== 'number' || Math.floor(value) !== value || value < 0 || value > 0xffffffff) {
    throw new OfferBytesError(name + ' must be a whole number in 0..2^32-1, got ' + value);
  }
  out[at] = Math.floor(value / 0x1000000) & 0xff;
  out[at + 1] = (value >> 16) & 0xff;
  out[at + 2] = (value >> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

function readUint32(bytes: Uint8Array, at: number): number {
  return bytes[at] * 0x1000000 + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
}

function writeCoordinate(out: Uint8Array, at: number, bytes: Uint8Array, name: string): void {
  if (!bytes || bytes.length !== 32)
    throw new OfferBytesError("the key's " + name + ' must be 32 bytes, got ' + (bytes ? bytes.length : bytes));
  out.set(bytes, at);
}

/** Tag, chain id and market address: the first 32 bytes of both layouts. */
function writeDomain(out: Uint8Array, tag: string, domain: MarketDomain): void {
  for (let i = 0; i < 4; i++) out[i] = tag.charCodeAt(i);
  const chainId = domain.chainId;
  if (typeof chainId !== 'number' || Math.floor(chainId) !== chainId || chainId < 0 || chainId > MAX_CHAIN_ID) {
    throw new OfferBytesError('chainId must be a whole number in 0..2^53-1, got ' + chainId);
  }
  writeUint32(out, 4, Math.floor(chainId / 0x100000000), 'chainId');
  writeUint32(out, 8, chainId % 0x100000000, 'chainId');
  const market =
    typeof domain.market === 'string' && domain.market.length === 42 && domain.market.substring(0, 2) === '0x'
      ? hexToBytes(domain.market.substring(2))
      : undefined;
  if (!market)
    throw new OfferBytesError('market must be a 20-byte hex address ("0x" and 40 hex digits), got ' + domain.market);
  out.set(market, 12);
}

function readDomain(bytes: Uint8Array): MarketDomain {
  let market = '0x';
  for (let i = 12; i < 32; i++) market += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return { chainId: readUint32(bytes, 4) * 0x100000000 + readUint32(bytes, 8), market: market };
}

function hasTag(bytes: Uint8Array, tag: string): boolean {
  for (let i = 0; i < 4; i++) if (bytes[i] !== tag.charCodeAt(i)) return false;
  return true;
}

export function encodeOffer(domain: MarketDomain, offer: OfferFields): Uint8Array {
  const out = new Uint8Array(OFFER_LENGTH);
  writeDomain(out, OFFER_TAG, domain);
  if (offer.side !== 'ask' && offer.side !== 'bid')
    throw new OfferBytesError('side must be "ask" or "bid", got ' + offer.side);
  out[32] = offer.side === 'ask' ? SIDE_ASK : SIDE_BID;
  writeUint32(out, 33, offer.interval, 'interval');
  if (offer.wh === 0) throw new OfferBytesError('wh must be at least 1');
  writeUint32(out, 37, offer.wh, 'wh');
  writeUint32(out, 41, offer.limitPrice, 'limitPrice');
  writeUint32(out, 45, offer.seq, 'seq');
  writeCoordinate(out, 49, offer.key.x, 'x');
  writeCoordinate(out, 81, offer.key.y, 'y');
  return out;
}

/**
 * The offer in signed bytes, refusing what the contract refuses as Malformed whatever the deployment (wrong
 * length or tag, a side other than ask or bid, zero Wh). Whether the domain is this market's is the
 * caller's check.
 */
export function decodeOffer(bytes: Uint8Array): Offer {
  if (bytes.length !== OFFER_LENGTH)
    throw new OfferBytesError('an offer is ' + OFFER_LENGTH + ' bytes, got ' + bytes.length);
  if (!hasTag(bytes, OFFER_TAG))
    throw new OfferBytesError('not an offer: the bytes do not start with "' + OFFER_TAG + '"');
  const side = bytes[32];
  if (side !== SIDE_ASK && side !== SIDE_BID) throw new OfferBytesError('side must be 1 (ask) or 2 (bid), got ' + side);
  const wh = readUint32(bytes, 37);
  if (wh === 0) throw new OfferBytesError('wh must be at least 1');
  return {
    domain: readDomain(bytes),
    side: side === SIDE_ASK ? 'ask' : 'bid',
    interval: readUint32(bytes, 33),
    wh: wh,
    limitPrice: readUint32(bytes, 41),
    seq: readUint32(bytes, 45),
    key: { x: bytes.subarray(49, 81), y: bytes.subarray(81, 113) },
  };
}

/** The rescission of the offer whose SHA-256 digest is offerDigest, by the key that signed it. */
export function encodeRescission(domain: MarketDomain, offerDigest: Uint8Array, key: TradingPublicKey): Uint8Array {
  if (!offerDigest || offerDigest.length !== 32)
    throw new OfferBytesError('an offer digest is 32 bytes, got ' + (offerDigest ? offerDigest.length : offerDigest));
  const out = new Uint8Array(RESCISSION_LENGTH);
  writeDomain(out, RESCISSION_TAG, domain);
  out.set(offerDigest, 32);
  writeCoordinate(out, 64, key.x, 'x');
  writeCoordinate(out, 96, key.y, 'y');
  return out;
}

/** An offer message: the 113 signed bytes followed by the signature r || s. */
export function encodeOfferMessage(signedBytes: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signedBytes.length !== OFFER_LENGTH)
    throw new OfferBytesError('an offer is ' + OFFER_LENGTH + ' bytes, got ' + signedBytes.length);
  if (signature.length !== SIGNATURE_LENGTH)
    throw new OfferBytesError('a signature is ' + SIGNATURE_LENGTH + ' bytes (r || s), got ' + signature.length);
  const out = new Uint8Array(OFFER_MESSAGE_LENGTH);
  out.set(signedBytes, 0);
  out.set(signature, OFFER_LENGTH);
  return out;
}

/** Splits an offer message; the offer itself is checked by decodeOffer, the signature by its verifier. */
export function splitOfferMessage(message: Uint8Array): SignedMessage {
  if (message.length !== OFFER_MESSAGE_LENGTH)
    throw new OfferBytesError(
      'an offer message is ' + OFFER_MESSAGE_LENGTH + ' bytes (offer and signature), got ' + message.length,
    );
  return {
    signedBytes: message.subarray(0, OFFER_LENGTH),
    signature: message.subarray(OFFER_LENGTH, OFFER_MESSAGE_LENGTH),
  };
}
