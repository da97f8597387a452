// Stand-ins for the DSO's asset issuance and the bridge, as tests of the trading meter need them: open a
// meter's sealed asset request with the DSO's private key and check the identity key's attestation of the
// trading key (as the DSO's issuance must), check an offer message with node:crypto and the shared codec
// (as the bridge must), and the market info a bridge publishes. Host code: node:crypto and @noble/curves.
import { createPublicKey, verify } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { ALG_ATECC608_ATTESTED } from '../../firmware/src/protocol/cose.ts';
import {
  decodeAssetRequest,
  kidOf,
  openSignedCertificate,
  type AssetRequest,
} from '../../firmware/src/protocol/certificate.ts';
import { attestationMessage } from '../../firmware/src/protocol/key-attestation.ts';
import { encodeMarketInfo, type MarketInfo } from '../../firmware/src/protocol/market-info.ts';
import { decodeOffer, splitOfferMessage, type Offer } from '../../firmware/src/protocol/offer.ts';
import { decodeEnvelope, openEnvelope } from '../../firmware/src/protocol/sealed-reading.ts';
import { nodeCryptoPrimitives, nodeSha256, nodeVerifyEs256 } from '../../host-tools/crypto/node-primitives.ts';

/** A market for tests: chain 31337, a fixed address, the DSO buying at 100 and selling at 300 per Wh. */
export function testMarketInfo(intervalSeconds: number, genesisTime: number): MarketInfo {
  return {
    domain: { chainId: 31337, market: '0x5fbdb2315678afecb367f032d93f642f64180aa3' },
    intervalSeconds,
    genesisTime,
    fromInterval: 0,
    consumptionPrice: 300,
    productionPrice: 100,
  };
}

export function testMarketInfoBytes(intervalSeconds: number, genesisTime: number): Uint8Array {
  return encodeMarketInfo(testMarketInfo(intervalSeconds, genesisTime));
}

/**
 * The asset request in a sealed envelope, opened with the DSO's private key; throws unless the identity key
 * (65 bytes) attested exactly this trading key in the trading slot the request names.
 */
export function openAssetRequest(
  dsoSecretKey: Uint8Array,
  identityKey: Uint8Array,
  envelope: Uint8Array,
): AssetRequest {
  const shared = p256.getSharedSecret(dsoSecretKey, decodeEnvelope(envelope).ephemeralPublicKey, true).subarray(1);
  const opened = openSignedCertificate(openEnvelope(nodeCryptoPrimitives, shared, envelope), ALG_ATECC608_ATTESTED);
  if (Buffer.compare(Buffer.from(opened.kid), Buffer.from(kidOf(nodeSha256, identityKey))) !== 0)
    throw new Error('the asset request names another signer than the identity key');
  const request = decodeAssetRequest(opened.payload);
  const message = attestationMessage(nodeSha256, nodeSha256(opened.toBeSigned), request.slot, request.tradingKey);
  if (!nodeVerifyEs256(identityKey, message, opened.signature))
    throw new Error('the identity key did not attest this trading key in slot ' + request.slot);
  return request;
}

/** ES256 over the 113 signed bytes, checked by node:crypto with the key in the bytes, as the bridge checks an offer. */
export function verifyOfferWithNodeCrypto(message: Uint8Array): Offer {
  const { signedBytes, signature } = splitOfferMessage(message);
  const offer = decodeOffer(signedBytes);
  const key = createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: Buffer.from(offer.key.x).toString('base64url'),
      y: Buffer.from(offer.key.y).toString('base64url'),
    },
    format: 'jwk',
  });
  if (!verify('sha256', signedBytes, { key, dsaEncoding: 'ieee-p1363' }, signature))
    throw new Error('the offer signature does not verify (node:crypto)');
  return offer;
}

/** The offer digest: SHA-256 of the signed bytes. */
export function offerDigest(message: Uint8Array): Uint8Array {
  return nodeSha256(splitOfferMessage(message).signedBytes);
}
