// A P-256 trading key held in the host (node:crypto), for tests, benchmarks and emulated meters: on a real
// meter the key lives in the secure element, which signs the same digest (ES256, signature r || s).
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { keccak256 } from 'viem';
import type { TradingPublicKey } from '../../firmware/src/protocol/offer.ts';

export interface TradingKey {
  publicKey: TradingPublicKey;
  /** The contract's name for the key: keccak256(x || y). */
  keyId: `0x${string}`;
  /** ES256 over SHA-256 of message, as r || s (64 bytes). */
  sign(message: Uint8Array): Uint8Array;
}

export function keyIdOf(key: TradingPublicKey): `0x${string}` {
  return keccak256(new Uint8Array([...key.x, ...key.y]));
}

export function tradingKeyFrom(privateKey: KeyObject, publicKey: KeyObject): TradingKey {
  const jwk = publicKey.export({ format: 'jwk' });
  const point = {
    x: new Uint8Array(Buffer.from(jwk.x!, 'base64url')),
    y: new Uint8Array(Buffer.from(jwk.y!, 'base64url')),
  };
  return {
    publicKey: point,
    keyId: keyIdOf(point),
    sign: (message) => new Uint8Array(sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
  };
}

export function generateTradingKey(): TradingKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return tradingKeyFrom(privateKey, publicKey);
}
