// nodeVerifyEs256, the DSO's signature check (OpenSSL through node:crypto), against @noble/curves: the
// same verdict on good, tampered and high-S signatures (the ATECC608 does not normalise S), and false,
// never an exception, for keys and signatures that are not what ES256 needs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { p256 } from '@noble/curves/nist.js';
import { nodeSha256, nodeVerifyEs256 } from '../../host-tools/crypto/node-primitives.ts';

const N = p256.Point.CURVE().n;

function toHighS(signature: Uint8Array): Uint8Array {
  const s = BigInt('0x' + Buffer.from(signature.subarray(32)).toString('hex'));
  const high = s > N / 2n ? s : N - s;
  return new Uint8Array([...signature.subarray(0, 32), ...Buffer.from(high.toString(16).padStart(64, '0'), 'hex')]);
}

test('agrees with noble on good, tampered and high-S signatures', () => {
  for (let i = 0; i < 20; i++) {
    const { secretKey } = p256.keygen();
    const uncompressed = p256.getPublicKey(secretKey, false);
    const message = new TextEncoder().encode(`reading ${i}`);
    const signature = p256.sign(nodeSha256(message), secretKey, { prehash: false });
    const high = toHighS(signature);
    const nobleVerdict = (sig: Uint8Array, msg: Uint8Array) =>
      p256.verify(sig, nodeSha256(msg), uncompressed, { prehash: false, lowS: false });
    assert.ok(nodeVerifyEs256(uncompressed, message, signature), 'a good signature');
    assert.ok(
      nodeVerifyEs256(uncompressed, message, high) && nobleVerdict(high, message),
      'the same signature with S above n/2',
    );
    const tampered = message.slice();
    tampered[0] ^= 1;
    assert.is(nodeVerifyEs256(uncompressed, tampered, signature), nobleVerdict(signature, tampered));
    assert.not.ok(nodeVerifyEs256(uncompressed, tampered, signature), 'a changed message');
  }
});

test('false for a key off the curve, a compressed key, or a signature of the wrong length', () => {
  const { secretKey } = p256.keygen();
  const key = p256.getPublicKey(secretKey, false);
  const message = new Uint8Array([1, 2, 3]);
  const signature = p256.sign(nodeSha256(message), secretKey, { prehash: false });
  const offCurve = key.slice();
  offCurve[64] ^= 1;
  assert.not.ok(nodeVerifyEs256(offCurve, message, signature));
  assert.not.ok(nodeVerifyEs256(p256.getPublicKey(secretKey, true), message, signature));
  assert.not.ok(nodeVerifyEs256(key, message, signature.subarray(0, 63)));
  assert.ok(nodeVerifyEs256(key, message, signature), 'and the right ones still verify');
});

test.run();
