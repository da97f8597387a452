// The meter's side of broker logins (protocol/broker-login.ts): its secure element makes a new login for
// every CONNECT.
import type { Sha256 } from '../protocol/crypto/sha256.ts';
import { encodeLoginPassword, loginNonce } from '../protocol/broker-login.ts';
import { IDENTITY_SLOT, LOGIN_COUNTER, MIX_SLOT } from '../protocol/slot-map.ts';
import type { SecureElement } from '../se/secure-element.ts';

/**
 * The next login password of the meter whose chip is `se`: counter step, then Random, Nonce, GenKey
 * digest of the mix key and Sign internal by the identity key, in one wake. Throws SecureElementError.
 */
export function meterLoginPassword(se: SecureElement, sha256: Sha256, meterId: string): string {
  const counter = se.counter(LOGIN_COUNTER, true);
  return encodeLoginPassword(
    counter,
    se.attestKey(IDENTITY_SLOT, MIX_SLOT, loginNonce(sha256, meterId, counter)).signature,
  );
}
