// The asset request a meter sends the DSO for each delivery interval (protocol/certificate.ts kind 4): the
// interval's trading key and the Wh it asks for, attested by the identity key exactly as a reading key's
// certificate is (the chip vouches that it holds the key in that trading slot: protocol/key-attestation.ts),
// then sealed to the DSO in the envelope readings travel in (protocol/sealed-reading.ts), because it ties
// the meter to its trading key and only the DSO may know that.
//
// SE commands: the attestation 4 (Random, Nonce, GenKey digest of the slot, Sign internal with slot 0) and the
// seal 2 (GenKey TempKey, ECDH): 6.

import { attestedCertificate, encodeAssetRequest, type AssetRequest } from '../protocol/certificate.ts';
import { equalBytes } from '../protocol/crypto/bytes.ts';
import { uncompressedPoint } from '../protocol/crypto/p256-point.ts';
import { sealEnvelope, type SealPrimitives } from '../protocol/sealed-reading.ts';
import { IDENTITY_SLOT } from '../protocol/slot-map.ts';
import { dsoKeyForEcdh } from '../readings/signed-reading.ts';
import type { SecureElement } from '../se/secure-element.ts';
import { TradingKeyError } from '../keys/trading-keys.ts';

/**
 * The sealed asset request to publish on assetRequestTopic(meterId). identityPublicKey: slot 0's key, 65
 * bytes (it names the signer in the kid); dsoPublicKey: 65 bytes 04||x||y. Throws if the chip attests
 * another key than the request names (nothing is sent then).
 */
export function sealedAssetRequest(
  se: SecureElement,
  primitives: SealPrimitives,
  identityPublicKey: Uint8Array,
  dsoPublicKey: Uint8Array,
  request: AssetRequest,
): Uint8Array {
  const signed = attestedCertificate(
    primitives.sha256,
    function (nonce) {
      const attested = se.attestKey(IDENTITY_SLOT, request.slot, nonce);
      if (!equalBytes(uncompressedPoint(attested.publicKey), request.tradingKey)) {
        throw new TradingKeyError(
          'market: the secure element attested another key in slot ' +
            request.slot +
            ' than the trading key for interval ' +
            request.interval,
        );
      }
      return attested.signature;
    },
    identityPublicKey,
    encodeAssetRequest(request),
  );
  const ephemeral = uncompressedPoint(se.genTempKey());
  return sealEnvelope(primitives, se.ecdh('tempkey', dsoKeyForEcdh(dsoPublicKey)), ephemeral, signed);
}
