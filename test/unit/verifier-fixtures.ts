// Host-side stand-ins for the parties of the trust chain, for the registry and verifier tests and the
// DSO benchmark: an operator key, meters (noble keys standing in for the meter's secure element) with
// device and key certificates, and sealed, signed readings built exactly as the firmware builds them
// (the shared cose.ts, certificate.ts, sealed-reading.ts with node:crypto primitives).
import { p256 } from '@noble/curves/nist.js';
import { signSign1 } from '../../firmware/src/protocol/cose.ts';
import {
  attestedCertificate,
  encodeKeyCertificate,
  encodeOperatorCertificate,
  kidOf,
  signedCertificate,
  type DeviceLimits,
} from '../../firmware/src/protocol/certificate.ts';
import { attestationMessage } from '../../firmware/src/protocol/key-attestation.ts';
import { readingSlotForRotation } from '../../firmware/src/protocol/slot-map.ts';
import { encodeReading, type Reading } from '../../firmware/src/protocol/reading.ts';
import { sealEnvelope } from '../../firmware/src/protocol/sealed-reading.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { issueDeviceCertificate, type OperatorKey } from '../../host-tools/operator/operator-key.ts';

export const DAY_SECONDS = 86_400;

export interface KeyPair {
  privateKey: Uint8Array;
  /** 65 bytes uncompressed */
  publicKey: Uint8Array;
  kid: Uint8Array;
  /** ES256 over a digest, like the SE's Sign: s is not normalized (about half the signatures are high-S). */
  signDigest(digest: Uint8Array): Uint8Array;
}

export function keyPair(): KeyPair {
  const privateKey = p256.utils.randomSecretKey();
  const publicKey = p256.getPublicKey(privateKey, false);
  return {
    privateKey,
    publicKey,
    kid: kidOf(nodeSha256, publicKey),
    signDigest: (digest) => p256.sign(digest, privateKey, { prehash: false, lowS: false }),
  };
}

export interface TestOperator {
  key: OperatorKey;
  certificate: Uint8Array;
}

/** An operator whose self-signed certificate is valid from notBefore for validDays (Unix seconds). */
export function makeOperator(
  operatorId = 'operator-test',
  notBefore = Math.floor(Date.now() / 1000) - DAY_SECONDS,
  validDays = 365,
): TestOperator {
  const pair = keyPair();
  const payload = encodeOperatorCertificate({
    operatorId,
    publicKey: pair.publicKey,
    notBefore,
    notAfter: notBefore + validDays * DAY_SECONDS,
  });
  const certificate = signedCertificate({ sha256: nodeSha256, sign: pair.signDigest }, pair.publicKey, payload);
  return { key: { operatorId, publicKey: pair.publicKey, kid: pair.kid, signDigest: pair.signDigest }, certificate };
}

export interface TestMeter {
  meterId: string;
  identity: KeyPair;
  mix: KeyPair;
  deviceCertificate: Uint8Array;
}

export function makeMeter(
  operator: TestOperator,
  meterId: string,
  options: { feeder?: string; limits?: DeviceLimits; issuedAt?: number } = {},
): TestMeter {
  const identity = keyPair();
  const mix = keyPair();
  const deviceCertificate = issueDeviceCertificate(operator.key, {
    meterId,
    feeder: options.feeder ?? 'feeder-1',
    identityKey: identity.publicKey,
    mixKey: mix.publicKey,
    limits: options.limits ?? { maxImportW: 11_000, maxExportW: 7_000 },
    issuedAt: options.issuedAt ?? Math.floor(Date.now() / 1000),
  });
  return { meterId, identity, mix, deviceCertificate };
}

export interface ReadingKey extends KeyPair {
  rotation: number;
  certificate: Uint8Array;
}

/**
 * A key certificate payload attested as the meter's chip attests it, by `signer` standing in for the
 * identity key: a signature over the attestation message for `publicKey` in the slot of `rotation`.
 */
export function attestKeyCertificate(
  signer: Pick<KeyPair, 'publicKey' | 'signDigest'>,
  payload: Uint8Array,
  rotation: number,
  publicKey: Uint8Array,
): Uint8Array {
  return attestedCertificate(
    nodeSha256,
    (nonce) =>
      signer.signDigest(nodeSha256(attestationMessage(nodeSha256, nonce, readingSlotForRotation(rotation), publicKey))),
    signer.publicKey,
    payload,
  );
}

/** A reading key for intervals validFrom..validTo, certified by the meter's identity key. */
export function makeReadingKey(
  meter: TestMeter,
  rotation: number,
  validFromInterval: number,
  validToInterval: number,
  signer: KeyPair = meter.identity,
): ReadingKey {
  const pair = keyPair();
  const payload = encodeKeyCertificate({
    meterId: meter.meterId,
    publicKey: pair.publicKey,
    validFromInterval,
    validToInterval,
    rotation,
  });
  return { ...pair, rotation, certificate: attestKeyCertificate(signer, payload, rotation, pair.publicKey) };
}

export function reading(meterId: string, seq: number, interval: number, importWh = 120): Reading {
  return {
    meterId,
    seq,
    interval,
    importWh,
    exportWh: 0,
    importTotalWh: 10_000 + seq * 150,
    exportTotalWh: 400,
    flags: 0,
  };
}

/** The COSE_Sign1 (ES256) of a reading's bytes, signed by key: what the meter puts in the envelope. */
export function signReadingBytes(key: KeyPair, readingBytes: Uint8Array): Uint8Array {
  return signSign1(nodeSha256, key.signDigest, key.kid, readingBytes);
}

/** plaintext sealed to the DSO's public key with a fresh ephemeral key (the meter's SE TempKey). */
export function seal(dsoPublicKey: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const ephemeral = p256.utils.randomSecretKey();
  const shared = p256.getSharedSecret(ephemeral, dsoPublicKey, true).subarray(1);
  return sealEnvelope(nodeCryptoPrimitives, shared, p256.getPublicKey(ephemeral, false), plaintext);
}

/** A reading as it travels: signed by key, sealed to the DSO. */
export function sealedReading(dsoPublicKey: Uint8Array, key: KeyPair, r: Reading): Uint8Array {
  return seal(dsoPublicKey, signReadingBytes(key, encodeReading(r)));
}
