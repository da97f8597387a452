import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { hmacSha256 } from '../../firmware/src/protocol/crypto/hmac.ts';
import { concatBytes, equalBytes } from '../../firmware/src/protocol/crypto/bytes.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { RFC4231_HMAC_SHA256, bytesToHex, hexToBytes } from '../fixtures/crypto/rfc-vectors.ts';

for (const v of RFC4231_HMAC_SHA256) {
  test(`${v.name}: hmacSha256 over node's SHA-256 gives the RFC's tag, and noble agrees`, () => {
    const key = hexToBytes(v.key);
    const data = hexToBytes(v.data);
    const mac = hmacSha256(nodeSha256, key, data);
    assert.is(mac.length, 32);
    // Case 5's tag is truncated: the RFC compares the leading 128 bits only.
    assert.is(bytesToHex(mac.subarray(0, v.mac.length / 2)), v.mac);
    assert.equal(mac, hmac(nobleSha256, key, data));
  });
}

test("the SHA-256 is a parameter: noble's gives the same tags as node's", () => {
  for (const v of RFC4231_HMAC_SHA256) {
    const key = hexToBytes(v.key);
    const data = hexToBytes(v.data);
    assert.equal(hmacSha256(nobleSha256, key, data), hmacSha256(nodeSha256, key, data), v.name);
  }
});

test('keys of exactly one block, one more, and empty ones match noble', () => {
  for (const size of [0, 1, 32, 63, 64, 65, 200]) {
    const key = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
    const data = new Uint8Array(size + 5).map((_, i) => i & 0xff);
    assert.equal(hmacSha256(nodeSha256, key, data), hmac(nobleSha256, key, data), `key of ${size} bytes`);
  }
});

test('SHA-256 calls: 2 per HMAC, 3 when the key is longer than a block', () => {
  let calls = 0;
  const counting = (d: Uint8Array) => {
    calls++;
    return nodeSha256(d);
  };
  hmacSha256(counting, new Uint8Array(32), new Uint8Array(100));
  assert.is(calls, 2);
  calls = 0;
  hmacSha256(counting, new Uint8Array(65), new Uint8Array(100));
  assert.is(calls, 3);
});

test('equalBytes and concatBytes', () => {
  assert.ok(equalBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])));
  assert.not.ok(equalBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])));
  assert.not.ok(equalBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2])));
  assert.ok(equalBytes(new Uint8Array(0), new Uint8Array(0)));
  assert.equal(
    concatBytes([new Uint8Array([1]), new Uint8Array(0), new Uint8Array([2, 3])]),
    new Uint8Array([1, 2, 3]),
  );
  assert.equal(concatBytes([]), new Uint8Array(0));
});

test.run();
