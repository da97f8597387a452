import { createCipheriv, createHmac, hkdfSync } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { p256 } from '@noble/curves/nist.js';
import { Decoder } from 'cbor-x';
import { encode } from '../../firmware/src/protocol/cbor.ts';
import { signSign1 } from '../../firmware/src/protocol/cose.ts';
import { encodeReading } from '../../firmware/src/protocol/reading.ts';
import {
  SealedEnvelopeError,
  decodeEnvelope,
  openEnvelope,
  sealEnvelope,
  type SealedEnvelopeFailure,
} from '../../firmware/src/protocol/sealed-reading.ts';
import { nodeAes128Ctr, nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';

const dsoSecret = p256.utils.randomSecretKey();
const dsoPublic = p256.getPublicKey(dsoSecret, false);

/** x of ECDH: noble returns the compressed shared point 02/03 || x. */
function sharedX(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return p256.getSharedSecret(secretKey, publicKey).slice(1);
}

/** What the meter does: a fresh ephemeral key (the SE's TempKey), ECDH with the DSO key, seal. */
function sealForDso(plaintext: Uint8Array) {
  const ephemeralSecret = p256.utils.randomSecretKey();
  const ephemeralPublic = p256.getPublicKey(ephemeralSecret, false);
  const meterShared = sharedX(ephemeralSecret, dsoPublic);
  return {
    envelope: sealEnvelope(nodeCryptoPrimitives, meterShared, ephemeralPublic, plaintext),
    ephemeralPublic,
    meterShared,
  };
}

/** What the DSO does: ECDH of its key with the envelope's ephemeral key, then open. */
function openAsDso(envelope: Uint8Array): Uint8Array {
  const ephemeral = decodeEnvelope(envelope).ephemeralPublicKey;
  return openEnvelope(nodeCryptoPrimitives, sharedX(dsoSecret, ephemeral), envelope);
}

function failure(fn: () => unknown): { reason: SealedEnvelopeFailure; message: string } {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SealedEnvelopeError);
    return { reason: (err as SealedEnvelopeError).reason, message: (err as Error).message };
  }
  throw new Error('expected a SealedEnvelopeError');
}

// A signed reading, as the meter seals it: COSE_Sign1 over the reading's CBOR.
const readingKey = p256.utils.randomSecretKey();
const signedReading = signSign1(
  nodeSha256,
  (d) => p256.sign(d, readingKey, { prehash: false }),
  new Uint8Array(8).fill(0xab),
  encodeReading({
    meterId: 'meter-0001',
    interval: 1_988_123,
    importWh: 412,
    exportWh: 0,
    importTotalWh: 1_234_567,
    exportTotalWh: 89_012,
    seq: 5_001,
    flags: 0,
  }),
);

test('sealed by the meter side, opened by the DSO side with noble ECDH on both', () => {
  const { envelope } = sealForDso(signedReading);
  assert.equal(openAsDso(envelope), signedReading);
  const empty = sealForDso(new Uint8Array(0));
  assert.equal(openAsDso(empty.envelope), new Uint8Array(0));
});

test('the envelope is [1, ephemeralPub, ciphertext, tag] and matches an independent node:crypto construction', () => {
  const plaintext = new Uint8Array(100).map((_, i) => i);
  const { envelope, ephemeralPublic, meterShared } = sealForDso(plaintext);
  const items = new Decoder({ mapsAsObjects: false }).decode(Buffer.from(envelope)) as [number, Buffer, Buffer, Buffer];
  assert.is(items.length, 4);
  assert.is(items[0], 1);
  assert.equal(new Uint8Array(items[1]), ephemeralPublic);
  assert.is(items[2].length, 100);
  assert.is(items[3].length, 32);
  assert.is(envelope.length, 205, '100-byte plaintext: 105 bytes of overhead');
  // The same keys, ciphertext and tag computed by node:crypto from the format's description.
  const okm = Buffer.from(
    hkdfSync(
      'sha256',
      meterShared,
      Buffer.alloc(0),
      Buffer.concat([Buffer.from('veilgrid sealed v1'), ephemeralPublic]),
      48,
    ),
  );
  const cipher = createCipheriv('aes-128-ctr', okm.subarray(0, 16), Buffer.alloc(16));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  assert.equal(new Uint8Array(items[2]), new Uint8Array(ciphertext));
  const tag = createHmac('sha256', okm.subarray(16)).update(ephemeralPublic).update(ciphertext).digest();
  assert.equal(new Uint8Array(items[3]), new Uint8Array(tag));
  assert.equal(nodeAes128Ctr(okm.subarray(0, 16), ciphertext), plaintext, 'CTR is its own inverse');
});

test('tampered ciphertext, tag or ephemeral key, and a wrong shared secret, fail with bad-mac', () => {
  const { envelope, meterShared } = sealForDso(signedReading);
  const parts = decodeEnvelope(envelope);
  const flip = (bytes: Uint8Array, at: number) => {
    const copy = bytes.slice();
    copy[at] ^= 0x01;
    return copy;
  };
  const rebuild = (ephemeral: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array) =>
    encode([1, ephemeral, ciphertext, tag]);
  const tampered = [
    rebuild(parts.ephemeralPublicKey, flip(parts.ciphertext, 0), parts.tag),
    rebuild(parts.ephemeralPublicKey, flip(parts.ciphertext, parts.ciphertext.length - 1), parts.tag),
    rebuild(parts.ephemeralPublicKey, parts.ciphertext.subarray(1), parts.tag),
    rebuild(parts.ephemeralPublicKey, parts.ciphertext, flip(parts.tag, 31)),
    rebuild(flip(parts.ephemeralPublicKey, 64), parts.ciphertext, parts.tag),
  ];
  // Opened with the true shared secret: the MAC covers the ephemeral key (and HKDF info binds it).
  for (const bad of tampered) {
    const f = failure(() => openEnvelope(nodeCryptoPrimitives, meterShared, bad));
    assert.is(f.reason, 'bad-mac');
    assert.match(f.message, 'MAC does not match');
  }
  assert.is(failure(() => openEnvelope(nodeCryptoPrimitives, flip(meterShared, 0), envelope)).reason, 'bad-mac');
  // Sealed to another DSO key: the real DSO's ECDH gives another secret.
  const other = p256.getPublicKey(p256.utils.randomSecretKey(), false);
  const ephemeralSecret = p256.utils.randomSecretKey();
  const foreign = sealEnvelope(
    nodeCryptoPrimitives,
    sharedX(ephemeralSecret, other),
    p256.getPublicKey(ephemeralSecret, false),
    signedReading,
  );
  assert.is(failure(() => openAsDso(foreign)).reason, 'bad-mac');
});

test('malformed envelopes fail with bad-envelope, saying what is wrong', () => {
  const { envelope } = sealForDso(signedReading);
  const parts = decodeEnvelope(envelope);
  const cases: Array<[Uint8Array, string]> = [
    [new Uint8Array([0x84, 0x01]), 'not deterministic CBOR'],
    [encode({ v: 1 }), 'a CBOR array [version, ephemeralPub, ciphertext, tag]'],
    [encode([1, parts.ephemeralPublicKey, parts.ciphertext]), 'a CBOR array [version, ephemeralPub, ciphertext, tag]'],
    [encode([2, parts.ephemeralPublicKey, parts.ciphertext, parts.tag]), 'version 2 is not supported'],
    [
      encode([1, parts.ephemeralPublicKey.subarray(1), parts.ciphertext, parts.tag]),
      'ephemeral key must be a 65-byte bstr',
    ],
    [encode([1, parts.ephemeralPublicKey, 'text', parts.tag]), 'ciphertext must be a bstr'],
    [encode([1, parts.ephemeralPublicKey, parts.ciphertext, parts.tag.subarray(0, 16)]), 'tag must be a 32-byte bstr'],
  ];
  for (const [bytes, expected] of cases) {
    const f = failure(() => openEnvelope(nodeCryptoPrimitives, new Uint8Array(32), bytes));
    assert.is(f.reason, 'bad-envelope', expected);
    assert.match(f.message, expected);
  }
});

test('each envelope has its own keys: the same reading sealed twice gives unrelated ciphertexts', () => {
  const a = decodeEnvelope(sealForDso(signedReading).envelope);
  const b = decodeEnvelope(sealForDso(signedReading).envelope);
  let same = 0;
  for (let i = 0; i < a.ciphertext.length; i++) if (a.ciphertext[i] === b.ciphertext[i]) same++;
  assert.ok(same < a.ciphertext.length / 4, `${same} equal bytes of ${a.ciphertext.length}`);
});

test('caller errors: shared secret and ephemeral key of the wrong size', () => {
  const eph = p256.getPublicKey(p256.utils.randomSecretKey(), false);
  assert.throws(
    () => sealEnvelope(nodeCryptoPrimitives, new Uint8Array(33), eph, signedReading),
    /shared secret must be the 32-byte x coordinate \(got 33 bytes\)/,
  );
  assert.throws(
    () => sealEnvelope(nodeCryptoPrimitives, new Uint8Array(32), eph.subarray(1), signedReading),
    /ephemeral public key must be 65 bytes 04\|\|x\|\|y \(got 64 bytes\)/,
  );
  assert.throws(
    () => openEnvelope(nodeCryptoPrimitives, new Uint8Array(31), new Uint8Array(1)),
    /32-byte x coordinate/,
  );
});

test('cost: 8 SHA-256 calls and 1 AES call to seal, the same to open, for a 100-byte reading', () => {
  let sha = 0;
  let aes = 0;
  const counting = {
    sha256: (d: Uint8Array) => {
      sha++;
      return nodeSha256(d);
    },
    aes128Ctr: (k: Uint8Array, d: Uint8Array) => {
      aes++;
      return nodeAes128Ctr(k, d);
    },
  };
  const eph = p256.getPublicKey(p256.utils.randomSecretKey(), false);
  const envelope = sealEnvelope(counting, new Uint8Array(32).fill(5), eph, new Uint8Array(100));
  assert.equal([sha, aes], [8, 1]);
  sha = aes = 0;
  openEnvelope(counting, new Uint8Array(32).fill(5), envelope);
  assert.equal([sha, aes], [8, 1]);
});

test.run();
