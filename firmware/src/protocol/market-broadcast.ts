// What the ledger bridge broadcasts to every meter (docs/bridge.md, "Broadcast messages"), written once for
// the meter (Espruino 2v29) and the bridge:
//   - receipts on RECEIPT_TOPIC: per accepted offer its digest, interval and index in the interval's book; per
//     refused offer its digest and a reason code (the contract's Refusal numbering, or the bridge's own);
//   - clearing results on CLEARING_TOPIC: per interval its price and volume and, per settled offer, its digest
//     and fill, so a meter finds its own fill by the digest it signed.
// Both are deterministic CBOR maps with small integer keys, like a reading (reading.ts). A message never
// exceeds MAX_BROADCAST_PAYLOAD_BYTES: the encoders split long lists into several messages.
//
// Receipt: map
//   1  accepted  array of [digest (32-byte bstr), interval (uint), index (uint)]   (key absent when empty)
//   2  refused   array of [digest (32-byte bstr), reason (uint, RECEIPT_REASONS)]  (key absent when empty)
// Clearing part: map
//   1  interval  uint
//   2  price     uint, money units per Wh (0 when nothing traded)
//   3  volumeWh  amount
//   4  offers    uint, offers in the interval's book (the Cleared event's count)
//   5  part      uint, 0-based number of this message among the interval's messages
//   6  parts     uint, how many messages the interval's result takes (>= 1)
//   7  fills     array of [digest (32-byte bstr), fillWh (uint), paid (amount), received (amount)], in book
//                order; every settled offer is listed once over all parts, unfilled ones with fillWh 0
// amount = uint below 2^53, else a byte string of 7..16 bytes: the big-endian value, no leading zero byte
// (money is uint128 on chain; the meter has no BigInt, and a JS number is exact only below 2^53).
//
// Device-safe: no Node APIs, no DataView, no BigInt; byte strings are compared byte by byte.
import { CborError, CborMap, decode, encode, type CborValue } from './cbor.ts';
import { describeValue, uintProblem } from './field-problems.ts';
import { VeilgridError } from './veilgrid-error.ts';

/**
 * The largest payload of one broadcast message. Both brokers refuse MQTT packets above 2,048 bytes
 * (host-tools/broker/max-packet-size.ts, MAX_MQTT_PACKET_BYTES: mosquitto's max_packet_size, the embedded
 * broker's guard), and a PUBLISH on veilgrid/market/clearing adds 31 bytes (fixed header 3, topic 26,
 * packet id 2); the meter's own packet cap (mqtt/client.ts, 16 KB by default) is larger. 1,920 leaves room.
 */
export const MAX_BROADCAST_PAYLOAD_BYTES = 1920;

export const DIGEST_LENGTH = 32;

/**
 * Reason codes of a refused offer. 1..9: the contract refused it (Market.Refusal, same numbers; the host's
 * REFUSALS in host-tools/ledger/market.ts is made from RECEIPT_REASONS). 16..21: the bridge refused it before the
 * chain saw it.
 * 18 (duplicate) is reserved and not a verdict on the offer: the bridge answers a copy of an offer it already
 * has by publishing that offer's outcome again once it is known (nothing while it is pending), so a meter
 * never needs to act on it.
 */
export const REASON_MALFORMED = 1;
export const REASON_BAD_SIGNATURE = 2;
export const REASON_REPLAYED = 3;
export const REASON_GATE_CLOSED = 4;
export const REASON_KEY_REVOKED = 5;
export const REASON_INSUFFICIENT_ASSET = 6;
export const REASON_INSUFFICIENT_MONEY = 7;
export const REASON_BRIDGE_MALFORMED = 16;
export const REASON_BRIDGE_BAD_SIGNATURE = 17;
export const REASON_BRIDGE_DUPLICATE = 18;
export const REASON_BRIDGE_WRONG_MARKET = 19;
export const REASON_BRIDGE_GATE_CLOSED = 20;
export const REASON_BRIDGE_REVOKED_KEY = 21;

/** Name of each reason code (index = code; '' where no code is defined). */
export const RECEIPT_REASONS = [
  '',
  'Malformed',
  'BadSignature',
  'Replayed',
  'GateClosed',
  'KeyRevoked',
  'InsufficientAsset',
  'InsufficientMoney',
  'UnknownOffer',
  'NotOpen',
  '',
  '',
  '',
  '',
  '',
  '',
  'malformed',
  'bad-signature',
  'duplicate',
  'wrong-market',
  'gate-closed',
  'revoked-key',
];

/** The name of a reason code, or undefined for a code that is not defined. */
export function reasonName(code: number): string | undefined {
  const name = code >= 0 && code < RECEIPT_REASONS.length && code === Math.floor(code) ? RECEIPT_REASONS[code] : '';
  return name === '' ? undefined : name;
}

/** Money and volume: a number below 2^53, or the big-endian bytes of a larger value (see the header). */
export type Amount = number | Uint8Array;

export interface AcceptedOffer {
  digest: Uint8Array;
  interval: number;
  /** The offer's place in the interval's book: Settled events name offers by it. */
  index: number;
}

export interface RefusedOffer {
  digest: Uint8Array;
  reason: number;
}

export interface Receipt {
  accepted: AcceptedOffer[];
  refused: RefusedOffer[];
}

export interface Fill {
  digest: Uint8Array;
  fillWh: number;
  /** What a bid's key paid (fillWh x price); 0 for an ask. */
  paid: Amount;
  /** What an ask's key received (fillWh x price); 0 for a bid. */
  received: Amount;
}

export interface ClearingSummary {
  interval: number;
  price: number;
  volumeWh: Amount;
  offers: number;
}

export interface ClearingPart extends ClearingSummary {
  part: number;
  parts: number;
  fills: Fill[];
}

export class BroadcastFormatError extends VeilgridError {
  constructor(message: string) {
    super('BroadcastFormatError', 'broadcast-format', message);
  }
}

function amountProblem(name: string, value: unknown): string | undefined {
  if (typeof value === 'number') return uintProblem(name, value);
  if (value instanceof Uint8Array) {
    if (value.length < 7 || value.length > 16 || value[0] === 0)
      return (
        name + ' as bytes must be 7..16 big-endian bytes without a leading zero (got ' + describeValue(value) + ')'
      );
    if (value.length === 7 && value[0] < 0x20)
      return name + ' as bytes must be at least 2^53 (smaller values are integers)';
    return undefined;
  }
  return name + ' must be an integer or a byte string (got ' + describeValue(value) + ')';
}

function digestProblem(value: unknown): string | undefined {
  if (!(value instanceof Uint8Array) || value.length !== DIGEST_LENGTH)
    return 'a digest must be a ' + DIGEST_LENGTH + '-byte string (got ' + describeValue(value) + ')';
  return undefined;
}

function check(problem: string | undefined): void {
  if (problem) throw new BroadcastFormatError(problem);
}

/** Greedy split of encoded items into lists whose message (fixed + items) stays within the cap. */
function split(items: Uint8Array[][], fixedBytes: number, what: string): number[][] {
  // items[k] = encoded entries of list k; returns per message, per list, how many entries it takes.
  const out: number[][] = [];
  const next: number[] = [];
  for (let k = 0; k < items.length; k++) next.push(0);
  let more = true;
  while (more) {
    const counts: number[] = [];
    // Array heads: up to 3 bytes each (counts below 65,536), plus 1 byte per map key.
    let size = fixedBytes;
    for (let k = 0; k < items.length; k++) {
      counts.push(0);
      size += 4;
    }
    for (let k = 0; k < items.length; k++) {
      while (
        next[k] + counts[k] < items[k].length &&
        size + items[k][next[k] + counts[k]].length <= MAX_BROADCAST_PAYLOAD_BYTES
      ) {
        size += items[k][next[k] + counts[k]].length;
        counts[k]++;
      }
      if (next[k] + counts[k] < items[k].length && counts[k] === 0 && sum(counts) === 0) {
        throw new BroadcastFormatError(
          'one ' + what + ' entry does not fit in ' + MAX_BROADCAST_PAYLOAD_BYTES + ' bytes',
        );
      }
    }
    more = false;
    for (let k = 0; k < items.length; k++) {
      next[k] += counts[k];
      if (next[k] < items[k].length) more = true;
    }
    out.push(counts);
  }
  return out;
}

function sum(values: number[]): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s;
}

function entries(encoded: Uint8Array[], from: number, count: number): CborValue[] {
  const out: CborValue[] = [];
  for (let i = from; i < from + count; i++) out.push(decode(encoded[i]));
  return out;
}

/**
 * The receipt messages for these outcomes: one message when they fit, several otherwise (each at most
 * MAX_BROADCAST_PAYLOAD_BYTES); none when both lists are empty. Throws BroadcastFormatError on a bad field.
 */
export function encodeReceipts(receipt: Receipt): Uint8Array[] {
  const accepted: Uint8Array[] = [];
  const refused: Uint8Array[] = [];
  for (let i = 0; i < receipt.accepted.length; i++) {
    const a = receipt.accepted[i];
    check(digestProblem(a.digest));
    check(uintProblem('interval', a.interval));
    check(uintProblem('index', a.index));
    accepted.push(encode([a.digest, a.interval, a.index]));
  }
  for (let i = 0; i < receipt.refused.length; i++) {
    const r = receipt.refused[i];
    check(digestProblem(r.digest));
    if (reasonName(r.reason) === undefined) throw new BroadcastFormatError('unknown reason code ' + r.reason);
    refused.push(encode([r.digest, r.reason]));
  }
  if (accepted.length + refused.length === 0) return [];
  const plan = split([accepted, refused], 1, 'receipt');
  const out: Uint8Array[] = [];
  let a = 0;
  let r = 0;
  for (let m = 0; m < plan.length; m++) {
    const pairs: Array<[CborValue, CborValue]> = [];
    if (plan[m][0] > 0) pairs.push([1, entries(accepted, a, plan[m][0])]);
    if (plan[m][1] > 0) pairs.push([2, entries(refused, r, plan[m][1])]);
    a += plan[m][0];
    r += plan[m][1];
    out.push(encode(new CborMap(pairs)));
  }
  return out;
}

function decodeMap(bytes: Uint8Array, what: string, maxKey: number): CborMap {
  if (bytes.length > MAX_BROADCAST_PAYLOAD_BYTES)
    throw new BroadcastFormatError(
      'a ' + what + ' is at most ' + MAX_BROADCAST_PAYLOAD_BYTES + ' bytes, got ' + bytes.length,
    );
  let item: CborValue;
  try {
    item = decode(bytes);
  } catch (err) {
    if (err instanceof CborError)
      throw new BroadcastFormatError('a ' + what + ' is not deterministic CBOR: ' + err.message);
    throw err;
  }
  // An empty map decodes as a plain object (no key says it has integer keys).
  if (
    item !== null &&
    typeof item === 'object' &&
    !(item instanceof CborMap) &&
    !(item instanceof Uint8Array) &&
    !Array.isArray(item) &&
    Object.keys(item).length === 0
  )
    item = new CborMap([]);
  if (!(item instanceof CborMap))
    throw new BroadcastFormatError('a ' + what + ' is a CBOR map with integer keys (got ' + describeValue(item) + ')');
  for (let i = 0; i < item.entries.length; i++) {
    const key = item.entries[i][0];
    if (typeof key !== 'number' || key < 1 || key > maxKey)
      throw new BroadcastFormatError(
        'unknown key ' + describeValue(key) + ' in a ' + what + ' (keys are 1..' + maxKey + ')',
      );
  }
  return item;
}

function tuples(value: CborValue, name: string, size: number): CborValue[][] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new BroadcastFormatError(name + ' must be an array (got ' + describeValue(value) + ')');
  const out: CborValue[][] = [];
  for (let i = 0; i < value.length; i++) {
    const t = value[i];
    if (!Array.isArray(t) || t.length !== size)
      throw new BroadcastFormatError(
        name + ' entry ' + i + ' must be an array of ' + size + ' items (got ' + describeValue(t) + ')',
      );
    out.push(t);
  }
  return out;
}

/** A receipt message; throws BroadcastFormatError naming the first problem. */
export function decodeReceipt(bytes: Uint8Array): Receipt {
  const map = decodeMap(bytes, 'receipt', 2);
  const accepted = tuples(map.get(1), 'accepted', 3);
  const refused = tuples(map.get(2), 'refused', 2);
  if (accepted.length + refused.length === 0) throw new BroadcastFormatError('a receipt lists at least one offer');
  const out: Receipt = { accepted: [], refused: [] };
  for (let i = 0; i < accepted.length; i++) {
    const t = accepted[i];
    check(digestProblem(t[0]));
    check(uintProblem('interval', t[1]));
    check(uintProblem('index', t[2]));
    out.accepted.push({ digest: t[0] as Uint8Array, interval: t[1] as number, index: t[2] as number });
  }
  for (let i = 0; i < refused.length; i++) {
    const t = refused[i];
    check(digestProblem(t[0]));
    if (typeof t[1] !== 'number' || reasonName(t[1]) === undefined)
      throw new BroadcastFormatError('unknown reason code ' + describeValue(t[1]));
    out.refused.push({ digest: t[0] as Uint8Array, reason: t[1] });
  }
  return out;
}

/**
 * The clearing messages of one interval: the summary in every part, the fills spread over as many parts
 * as needed (at least one, also when there are no fills). Throws BroadcastFormatError on a bad field.
 */
export function encodeClearing(summary: ClearingSummary, fills: Fill[]): Uint8Array[] {
  check(uintProblem('interval', summary.interval));
  check(uintProblem('price', summary.price));
  check(amountProblem('volumeWh', summary.volumeWh));
  check(uintProblem('offers', summary.offers));
  const encoded: Uint8Array[] = [];
  for (let i = 0; i < fills.length; i++) {
    const f = fills[i];
    check(digestProblem(f.digest));
    check(uintProblem('fillWh', f.fillWh));
    check(amountProblem('paid', f.paid));
    check(amountProblem('received', f.received));
    encoded.push(encode([f.digest, f.fillWh, f.paid, f.received]));
  }
  // part and parts below 65,536 take at most 3 bytes each: the fixed part is the map with both at 0, +4.
  const fixed = encodeClearingPart(summary, 0, 0, []).length + 4;
  const plan = fills.length === 0 ? [[0]] : split([encoded], fixed, 'clearing');
  const out: Uint8Array[] = [];
  let next = 0;
  for (let m = 0; m < plan.length; m++) {
    out.push(encodeClearingPart(summary, m, plan.length, entries(encoded, next, plan[m][0])));
    next += plan[m][0];
  }
  return out;
}

function encodeClearingPart(s: ClearingSummary, part: number, parts: number, fills: CborValue[]): Uint8Array {
  return encode(
    new CborMap([
      [1, s.interval],
      [2, s.price],
      [3, s.volumeWh],
      [4, s.offers],
      [5, part],
      [6, parts],
      [7, fills],
    ]),
  );
}

/** One clearing message; throws BroadcastFormatError naming the first problem. */
export function decodeClearing(bytes: Uint8Array): ClearingPart {
  const map = decodeMap(bytes, 'clearing result', 7);
  const names = ['interval', 'price', 'volumeWh', 'offers', 'part', 'parts'];
  for (let k = 1; k <= 6; k++) {
    const value = map.get(k);
    if (value === undefined) throw new BroadcastFormatError(names[k - 1] + ' (key ' + k + ') is missing');
    check(k === 3 ? amountProblem('volumeWh', value) : uintProblem(names[k - 1], value));
  }
  const part = map.get(5) as number;
  const parts = map.get(6) as number;
  if (parts < 1 || part >= parts)
    throw new BroadcastFormatError('part ' + part + ' of ' + parts + ' is not a valid part number');
  if (map.get(7) === undefined) throw new BroadcastFormatError('fills (key 7) is missing');
  const rows = tuples(map.get(7), 'fills', 4);
  const fills: Fill[] = [];
  for (let i = 0; i < rows.length; i++) {
    const t = rows[i];
    check(digestProblem(t[0]));
    check(uintProblem('fillWh', t[1]));
    check(amountProblem('paid', t[2]));
    check(amountProblem('received', t[3]));
    fills.push({ digest: t[0] as Uint8Array, fillWh: t[1] as number, paid: t[2] as Amount, received: t[3] as Amount });
  }
  return {
    interval: map.get(1) as number,
    price: map.get(2) as number,
    volumeWh: map.get(3) as Amount,
    offers: map.get(4) as number,
    part: part,
    parts: parts,
    fills: fills,
  };
}

function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The fill of the offer with this digest in a clearing message, or undefined when this part does not list it. */
export function findFill(part: ClearingPart, digest: Uint8Array): Fill | undefined {
  for (let i = 0; i < part.fills.length; i++) if (sameDigest(part.fills[i].digest, digest)) return part.fills[i];
  return undefined;
}

/** Where a receipt names the offer with this digest: its acceptance, its refusal, or undefined. */
export function findReceipt(receipt: Receipt, digest: Uint8Array): AcceptedOffer | RefusedOffer | undefined {
  for (let i = 0; i < receipt.accepted.length; i++)
    if (sameDigest(receipt.accepted[i].digest, digest)) return receipt.accepted[i];
  for (let i = 0; i < receipt.refused.length; i++)
    if (sameDigest(receipt.refused[i].digest, digest)) return receipt.refused[i];
  return undefined;
}
