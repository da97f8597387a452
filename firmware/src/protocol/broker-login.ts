// A meter's MQTT password, new for every connection, so that one read off the wire is worth nothing
// (docs/broker-login.md; the meter makes it in keys/meter-login.ts). It is the secure element's
// attestation (protocol/key-attestation.ts) of the meter's mix key, slot 3, for the nonce SHA-256(CBOR ["veilgrid broker login", meterId, counter]), where counter
// is the next value of the SE's monotonic counter 1: every connection attempt takes a new one, and a power
// cut cannot make the chip reuse one. The broker's login service (host-tools/broker/meter-logins.ts) checks
// the signature with the identity key and mix key of the meter's device certificate and accepts each
// meter's counter values once, in increasing order.
//
//   password = "vgl1." counter "." hex(signature r || s)     ASCII, 134 to 141 characters
//
// Only the chip can make one, the static password that vg.config used to hold is gone, and a login caught
// on the LAN is refused once the meter has used it (or a later one).

import { encode } from './cbor.ts';
import type { Sha256 } from './crypto/sha256.ts';
import { bytesToHex, hexToBytes } from './hex.ts';

export const LOGIN_PASSWORD_PREFIX = 'vgl1.';
/** The SE's monotonic counters stop here (2^21 - 1). */
export const LOGIN_COUNTER_MAX = 2097151;

/** The 32-byte nonce the chip attests the mix key with, for one login. */
export function loginNonce(sha256: Sha256, meterId: string, counter: number): Uint8Array {
  return sha256(encode(['veilgrid broker login', meterId, counter]));
}

export function encodeLoginPassword(counter: number, signature: Uint8Array): string {
  return LOGIN_PASSWORD_PREFIX + counter + '.' + bytesToHex(signature);
}

/** A login password's parts, or a sentence saying why text is not one. */
export function parseLoginPassword(text: string): { counter: number; signature: Uint8Array } | string {
  if (typeof text !== 'string' || text.indexOf(LOGIN_PASSWORD_PREFIX) !== 0)
    return 'not a meter login (it does not start with "' + LOGIN_PASSWORD_PREFIX + '")';
  const parts = text.substring(LOGIN_PASSWORD_PREFIX.length).split('.');
  if (parts.length !== 2 || !/^(0|[1-9][0-9]{0,6})$/.test(parts[0]))
    return 'a meter login is "' + LOGIN_PASSWORD_PREFIX + '<counter>.<signature hex>"';
  const counter = parseInt(parts[0], 10);
  if (counter > LOGIN_COUNTER_MAX)
    return 'login counter ' + counter + " is past the chip's maximum " + LOGIN_COUNTER_MAX;
  // Lower case only: one login has one text (hexToBytes would take either case).
  const signature = /^[0-9a-f]{128}$/.test(parts[1]) ? hexToBytes(parts[1]) : undefined;
  if (!signature) return "a meter login's signature is 128 lower-case hex digits (r || s)";
  return { counter: counter, signature: signature };
}
