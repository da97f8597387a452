// The mixnet's onion packet (docs/onion-packet.md): what a meter sends through two other meters to the
// bridge, so that nobody watching the broker can tell which meter an offer came from. Written once for the
// meters (sender and relay) and the bridge (exit).
//
// Every packet is ONION_PACKET_BYTES long on every hop, whatever the path length and the hop:
//
//   version (1) | ephemeral key E (64, x || y) | mac (32) | routing β (312) | body (615)
//
// A hop holds a P-256 mix key. It computes shared = ECDH(mix key, E) (in its secure element), derives
//   okm = HKDF-SHA256(ikm = shared, salt = empty, info = "veilgrid onion v2" || E || window (4, big-endian), 80)
//   headerKey = okm[0..16)  bodyKey = okm[16..32)  macKey = okm[32..64)  replayTag = okm[64..80)
// checks mac = HMAC-SHA256(macKey, version || β || body), then decrypts
//   (β || 104 zero bytes) XOR AES-128-CTR(headerKey)  →  next relay id (8) | E' (64) | mac' (32) | β' (312)
//   body XOR AES-128-CTR(bodyKey)                     →  body'
// and forwards version | E' | mac' | β' | body', again ONION_PACKET_BYTES long. A next relay id of eight zero
// bytes means this hop is the exit: body' is the payload block, type (1) | length (2, big-endian) | data |
// zeros. The sender precomputes the bytes each hop shifts in at the end of β (the "filler", as in Sphinx),
// so every hop's mac covers exactly the bytes that hop will receive: any change to any byte fails at the next
// hop. Each hop has its own ephemeral key (the SE's GenKey into TempKey, then ECDH), so no value is shared
// between hops, and each AES key encrypts one message (Espruino's CTR always starts its counter at zero:
// protocol/crypto/aes-ctr.ts). A relay remembers replayTag for the offer window: the same packet twice has
// the same E, hence the same tag. `window` is the market interval whose offer window the packet travels in
// (protocol/mix-schedule.ts): every hop peels with the window it is in, so a packet replayed into a later
// window fails its MAC at the first hop, with no tags kept across windows.
//
// The ECDH is not done here: the caller gives each hop's shared secret (sender) or its own (relay).

import { encodeUtf8 } from './cbor.ts';
import type { Aes128Ctr } from './crypto/aes-ctr.ts';
import { AES128_KEY_BYTES } from './crypto/aes-ctr.ts';
import { concatBytes, copyBytes, equalBytes } from './crypto/bytes.ts';
import { hkdfSha256 } from './crypto/hkdf.ts';
import { hmacSha256 } from './crypto/hmac.ts';
import { SHA256_BYTES, type Sha256 } from './crypto/sha256.ts';
import { RELAY_ID_BYTES } from './relay-directory.ts';
import { VeilgridError } from './veilgrid-error.ts';

export const ONION_VERSION = 2;
export const ONION_PACKET_BYTES = 1024;
export const EPHEMERAL_KEY_BYTES = 64;
export const MAX_HOPS = 3;
const MAC_BYTES = SHA256_BYTES;
const REPLAY_TAG_BYTES = 16;
/** What each hop takes off the front of β: the next relay id, the next ephemeral key, the next mac. */
const ROUTING_BYTES = RELAY_ID_BYTES + EPHEMERAL_KEY_BYTES + MAC_BYTES;
const BETA_BYTES = MAX_HOPS * ROUTING_BYTES;
const E_AT = 1;
const MAC_AT = E_AT + EPHEMERAL_KEY_BYTES;
const BETA_AT = MAC_AT + MAC_BYTES;
const BODY_AT = BETA_AT + BETA_BYTES;
export const ONION_BODY_BYTES = ONION_PACKET_BYTES - BODY_AT;
const PAYLOAD_HEADER_BYTES = 3;
/** The most data one packet carries to the exit. */
export const ONION_PAYLOAD_MAX_BYTES = ONION_BODY_BYTES - PAYLOAD_HEADER_BYTES;
const INFO_PREFIX = encodeUtf8('veilgrid onion v2');

/** What the exit finds in a payload: an offer message (protocol/offer.ts), or a dummy it drops. */
export const PAYLOAD_OFFER = 1;
export const PAYLOAD_DUMMY = 2;

export interface OnionPrimitives {
  sha256: Sha256;
  aes128Ctr: Aes128Ctr;
}

/** One hop of a path, as the sender knows it. */
export interface OnionHop {
  /** The hop's relay id (the exit's too): the previous hop forwards to it. */
  relayId: Uint8Array;
  /** The ephemeral public key made for this hop, x || y. */
  ephemeralKey: Uint8Array;
  /** ECDH(ephemeral private key, the hop's mix public key): the 32-byte x coordinate. */
  shared: Uint8Array;
}

/** Why a packet was dropped; the code of OnionPacketError. */
export type OnionFailure = 'bad-length' | 'bad-version' | 'bad-mac' | 'bad-payload';

export class OnionPacketError extends VeilgridError {
  declare readonly reason: OnionFailure;
  constructor(reason: OnionFailure, message: string) {
    super('OnionPacketError', reason, message);
    this.reason = reason;
  }
}

/** What one hop learns from a packet. */
export interface PeeledPacket {
  /** Remember for the round; a second packet with the same tag is a replay. */
  replayTag: Uint8Array;
  /** Where to forward `packet`, or undefined when this hop is the exit. */
  nextRelayId?: Uint8Array;
  /** The packet for the next hop (ONION_PACKET_BYTES), when not the exit. */
  packet?: Uint8Array;
  /** At the exit: the payload's type and data. */
  payloadType?: number;
  payload?: Uint8Array;
}

interface HopKeys {
  header: Uint8Array;
  body: Uint8Array;
  mac: Uint8Array;
  replayTag: Uint8Array;
}

/** The window's interval as the 4 big-endian bytes the key derivation takes. */
function windowBytes(window: number): Uint8Array {
  // At most 2^31 - 1: Espruino's bit operations are on 32-bit signed integers.
  if (typeof window !== 'number' || Math.floor(window) !== window || window < 0 || window > 0x7fffffff)
    throw new Error("an onion packet's window is an interval number 0..2^31-1 (got " + window + ')');
  return new Uint8Array([window >> 24, (window >> 16) & 0xff, (window >> 8) & 0xff, window & 0xff]);
}

function hopKeys(sha256: Sha256, shared: Uint8Array, ephemeralKey: Uint8Array, window: number): HopKeys {
  if (shared.length !== 32)
    throw new Error('an onion hop needs the 32-byte ECDH x coordinate (got ' + shared.length + ' bytes)');
  const okm = hkdfSha256(
    sha256,
    shared,
    new Uint8Array(0),
    concatBytes([INFO_PREFIX, ephemeralKey, windowBytes(window)]),
    2 * AES128_KEY_BYTES + MAC_BYTES + REPLAY_TAG_BYTES,
  );
  return {
    header: okm.subarray(0, 16),
    body: okm.subarray(16, 32),
    mac: okm.subarray(32, 64),
    replayTag: okm.subarray(64, 80),
  };
}

/** The header keystream: long enough for β and the routing block each hop shifts in. */
function headerStream(aes128Ctr: Aes128Ctr, key: Uint8Array): Uint8Array {
  return aes128Ctr(key, new Uint8Array(BETA_BYTES + ROUTING_BYTES));
}

function xorInto(out: Uint8Array, at: number, stream: Uint8Array, from: number, length: number): void {
  for (let i = 0; i < length; i++) out[at + i] ^= stream[from + i];
}

function packetMac(sha256: Sha256, macKey: Uint8Array, beta: Uint8Array, body: Uint8Array): Uint8Array {
  return hmacSha256(sha256, macKey, concatBytes([new Uint8Array([ONION_VERSION]), beta, body]));
}

function isExit(relayId: Uint8Array): boolean {
  for (let i = 0; i < relayId.length; i++) if (relayId[i] !== 0) return false;
  return true;
}

/**
 * The packet that carries payload (type, data) along hops, the last hop being the exit, in offer window
 * `window`. The caller sends it to hops[0].relayId. Each hop needs its own fresh ephemeral key and shared
 * secret.
 */
export function buildOnionPacket(
  primitives: OnionPrimitives,
  window: number,
  hops: OnionHop[],
  payloadType: number,
  payload: Uint8Array,
): Uint8Array {
  const r = hops.length;
  if (r < 1 || r > MAX_HOPS) throw new Error('an onion path has 1 to ' + MAX_HOPS + ' hops (got ' + r + ')');
  if (payload.length > ONION_PAYLOAD_MAX_BYTES)
    throw new Error('an onion payload is at most ' + ONION_PAYLOAD_MAX_BYTES + ' bytes (got ' + payload.length + ')');
  if (payloadType < 1 || payloadType > 255) throw new Error('payload type must be 1..255 (got ' + payloadType + ')');
  const keys: HopKeys[] = [];
  const streams: Uint8Array[] = [];
  for (let i = 0; i < r; i++) {
    if (hops[i].ephemeralKey.length !== EPHEMERAL_KEY_BYTES)
      throw new Error('hop ' + i + ': the ephemeral key is x || y, 64 bytes (got ' + hops[i].ephemeralKey.length + ')');
    if (i > 0 && (hops[i].relayId.length !== RELAY_ID_BYTES || isExit(hops[i].relayId)))
      throw new Error('hop ' + i + ': a relay id is 8 bytes, not all zero');
    keys.push(hopKeys(primitives.sha256, hops[i].shared, hops[i].ephemeralKey, window));
    streams.push(headerStream(primitives.aes128Ctr, keys[i].header));
  }
  // The bytes hops 0..r-2 shift in at the end of β, as the exit will see them.
  let filler: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < r - 1; i++) {
    const grown = new Uint8Array(filler.length + ROUTING_BYTES);
    grown.set(filler, 0);
    xorInto(grown, 0, streams[i], BETA_BYTES + ROUTING_BYTES - grown.length, grown.length);
    filler = grown;
  }
  let body: Uint8Array = new Uint8Array(ONION_BODY_BYTES);
  body[0] = payloadType;
  body[1] = payload.length >> 8;
  body[2] = payload.length & 0xff;
  body.set(payload, PAYLOAD_HEADER_BYTES);
  let beta: Uint8Array = new Uint8Array(BETA_BYTES);
  let mac: Uint8Array = new Uint8Array(MAC_BYTES);
  for (let i = r - 1; i >= 0; i--) {
    body = primitives.aes128Ctr(keys[i].body, body);
    const next = new Uint8Array(BETA_BYTES);
    if (i === r - 1) {
      // The exit's routing block is all zeros (next relay id 0 = exit); what follows it up to the filler is
      // keystream, so the exit cannot tell how many hops came before.
      xorInto(next, 0, streams[i], 0, BETA_BYTES - filler.length);
      next.set(filler, BETA_BYTES - filler.length);
    } else {
      next.set(hops[i + 1].relayId, 0);
      next.set(hops[i + 1].ephemeralKey, RELAY_ID_BYTES);
      next.set(mac, RELAY_ID_BYTES + EPHEMERAL_KEY_BYTES);
      next.set(beta.subarray(0, BETA_BYTES - ROUTING_BYTES), ROUTING_BYTES);
      xorInto(next, 0, streams[i], 0, BETA_BYTES);
    }
    beta = next;
    mac = packetMac(primitives.sha256, keys[i].mac, beta, body);
  }
  const packet = new Uint8Array(ONION_PACKET_BYTES);
  packet[0] = ONION_VERSION;
  packet.set(hops[0].ephemeralKey, E_AT);
  packet.set(mac, MAC_AT);
  packet.set(beta, BETA_AT);
  packet.set(body, BODY_AT);
  return packet;
}

/**
 * The ephemeral key a hop computes its shared secret with (ECDH with its mix key), after checking the
 * packet's length and version. Throws OnionPacketError.
 */
export function onionEphemeralKey(packet: Uint8Array): Uint8Array {
  if (!(packet instanceof Uint8Array) || packet.length !== ONION_PACKET_BYTES) {
    throw new OnionPacketError(
      'bad-length',
      'an onion packet is ' +
        ONION_PACKET_BYTES +
        ' bytes (got ' +
        (packet instanceof Uint8Array ? packet.length : typeof packet) +
        ')',
    );
  }
  if (packet[0] !== ONION_VERSION)
    throw new OnionPacketError('bad-version', 'unknown onion packet version ' + packet[0]);
  return packet.subarray(E_AT, E_AT + EPHEMERAL_KEY_BYTES);
}

/**
 * One hop's work on a packet that arrived in offer window `window`, given shared = ECDH(its mix key,
 * onionEphemeralKey(packet)). Throws OnionPacketError when the packet is not for this hop, not for this
 * window, or was changed ('bad-mac'), or the exit's payload block is not well formed ('bad-payload').
 * Checking replayTag against the window's tags is the caller's.
 */
export function peelOnionPacket(
  primitives: OnionPrimitives,
  window: number,
  shared: Uint8Array,
  packet: Uint8Array,
): PeeledPacket {
  const ephemeralKey = onionEphemeralKey(packet);
  const keys = hopKeys(primitives.sha256, shared, ephemeralKey, window);
  const beta = packet.subarray(BETA_AT, BODY_AT);
  const body = packet.subarray(BODY_AT, ONION_PACKET_BYTES);
  if (!equalBytes(packetMac(primitives.sha256, keys.mac, beta, body), packet.subarray(MAC_AT, BETA_AT))) {
    throw new OnionPacketError(
      'bad-mac',
      "the onion packet does not verify under this relay's key in this window: changed on the way, meant for another relay, or replayed from another window",
    );
  }
  const header = new Uint8Array(BETA_BYTES + ROUTING_BYTES);
  header.set(beta, 0);
  xorInto(header, 0, headerStream(primitives.aes128Ctr, keys.header), 0, header.length);
  const inner = primitives.aes128Ctr(keys.body, body);
  const nextRelayId = copyBytes(header, 0, RELAY_ID_BYTES);
  const replayTag = copyBytes(keys.replayTag, 0, REPLAY_TAG_BYTES);
  if (isExit(nextRelayId)) {
    const length = (inner[1] << 8) | inner[2];
    if (inner[0] === 0 || length > ONION_PAYLOAD_MAX_BYTES)
      throw new OnionPacketError('bad-payload', 'the payload block has type ' + inner[0] + ' and length ' + length);
    return {
      replayTag: replayTag,
      payloadType: inner[0],
      payload: copyBytes(inner, PAYLOAD_HEADER_BYTES, PAYLOAD_HEADER_BYTES + length),
    };
  }
  const next = new Uint8Array(ONION_PACKET_BYTES);
  next[0] = ONION_VERSION;
  next.set(header.subarray(RELAY_ID_BYTES, ROUTING_BYTES), E_AT); // E' then mac', as they sit in the routing block
  next.set(header.subarray(ROUTING_BYTES), BETA_AT);
  next.set(inner, BODY_AT);
  return { replayTag: replayTag, nextRelayId: nextRelayId, packet: next };
}
