import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import {
  HKDF_SHA256_MAX_LENGTH,
  hkdfExpand,
  hkdfExtract,
  hkdfSha256,
} from '../../firmware/src/protocol/crypto/hkdf.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { RFC5869_HKDF_SHA256, bytesToHex, hexToBytes } from '../fixtures/crypto/rfc-vectors.ts';

for (const v of RFC5869_HKDF_SHA256) {
  test(`${v.name}: PRK and OKM as in the RFC, and noble agrees`, () => {
    const ikm = hexToBytes(v.ikm);
    const salt = hexToBytes(v.salt);
    const info = hexToBytes(v.info);
    const prk = hkdfExtract(nodeSha256, salt, ikm);
    assert.is(bytesToHex(prk), v.prk);
    assert.is(bytesToHex(hkdfExpand(nodeSha256, prk, info, v.length)), v.okm);
    const okm = hkdfSha256(nodeSha256, ikm, salt, info, v.length);
    assert.is(bytesToHex(okm), v.okm);
    assert.equal(okm, hkdf(nobleSha256, ikm, salt, info, v.length));
    assert.equal(hkdfSha256(nobleSha256, ikm, salt, info, v.length), okm, "same result over noble's SHA-256");
  });
}

test('every output length from 0 to 100 and the maximum match noble', () => {
  const ikm = new Uint8Array(32).fill(7);
  const info = new Uint8Array([1, 2, 3]);
  for (let length = 0; length <= 100; length++) {
    assert.equal(
      hkdfSha256(nodeSha256, ikm, new Uint8Array(0), info, length),
      hkdf(nobleSha256, ikm, undefined, info, length),
      `length ${length}`,
    );
  }
  assert.equal(
    hkdfSha256(nodeSha256, ikm, new Uint8Array(0), info, HKDF_SHA256_MAX_LENGTH),
    hkdf(nobleSha256, ikm, undefined, info, HKDF_SHA256_MAX_LENGTH),
  );
});

test('lengths beyond 255 blocks, negative or fractional are refused with the allowed range', () => {
  for (const length of [HKDF_SHA256_MAX_LENGTH + 1, -1, 1.5, NaN]) {
    assert.throws(
      () => hkdfSha256(nodeSha256, new Uint8Array(1), new Uint8Array(0), new Uint8Array(0), length),
      /out of range: ask for 0 to 8160 bytes/,
    );
  }
});

test('SHA-256 calls: 2 to extract + 2 per 32-byte block (48 bytes: 6)', () => {
  let calls = 0;
  const counting = (d: Uint8Array) => {
    calls++;
    return nodeSha256(d);
  };
  hkdfSha256(counting, new Uint8Array(32), new Uint8Array(0), new Uint8Array(83), 48);
  assert.is(calls, 6);
});

test.run();
