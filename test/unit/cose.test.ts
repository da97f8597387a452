import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { p256 } from '@noble/curves/nist.js';
import { Decoder } from 'cbor-x';
import { CborMap, Tagged, encode } from '../../firmware/src/protocol/cbor.ts';
import {
  ALG_ES256,
  COSE_SIGN1_TAG,
  CoseError,
  HEADER_ALG,
  HEADER_KID,
  decodeSign1,
  encodeSign1,
  es256ProtectedHeader,
  sign1ToBeSigned,
  signSign1,
} from '../../firmware/src/protocol/cose.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { bytesToHex, hexToBytes } from '../fixtures/crypto/rfc-vectors.ts';

// cose-wg/Examples sign1-tests (ES256, key "11"). The signatures are randomized ECDSA, so they are
// checked by verifying, but the ToBeSigned (Sig_structure) bytes are deterministic and compared exactly.
const EXAMPLE_KEY = p256.Point.fromAffine({
  x: BigInt('0x' + Buffer.from('usWxHK2PmfnHKwXPS54m0kTcGJ90UiglWiGahtagnv8', 'base64url').toString('hex')),
  y: BigInt('0x' + Buffer.from('IBOL-C3BttVivg-lSreASjpkttcsz-1rb7btKLv8EX4', 'base64url').toString('hex')),
}).toBytes(false);
const PAYLOAD = new TextEncoder().encode('This is the content.');
const SIG_A = 'EAE868ECC176883766C5DC5BA5B8DCA25DAB3C2E56A551CE5705B793914348E1';
const PAYLOAD_HEX = '54546869732069732074686520636F6E74656E742E';
const EXAMPLES = {
  // sign-pass-02: tagged, external AAD 11aa22bb33cc44dd55006699
  pass02: {
    cbor:
      'D28443A10126A104423131' +
      PAYLOAD_HEX +
      '5840' +
      SIG_A +
      '55388B10C4F1B59A6733EAB416870A945111A4B2FBDBEF33A77234B1DEFF2F9B',
    external: '11aa22bb33cc44dd55006699',
    toBeSigned: '846A5369676E61747572653143A101264C11AA22BB33CC44DD55006699' + PAYLOAD_HEX,
  },
  // sign-pass-03: untagged
  pass03: {
    cbor:
      '8443A10126A104423131' +
      PAYLOAD_HEX +
      '5840' +
      SIG_A +
      '9F43D6C6BA654472DA301B645B293C9BA939295B97C4BDB847782BFF384C5794',
    toBeSigned: '846A5369676E61747572653143A1012640' + PAYLOAD_HEX,
  },
};
const SIG_03 = '5840' + SIG_A + '9F43D6C6BA654472DA301B645B293C9BA939295B97C4BDB847782BFF384C5794';

/** ES256 verification as the DSO does it: the digest of the Sig_structure as received. */
function verifies(bytes: Uint8Array, publicKey: Uint8Array, externalAad?: Uint8Array): boolean {
  const message = decodeSign1(bytes);
  // The examples' signatures are not normalized to low S; our signers' are (noble, the SE model).
  return p256.verify(
    message.signature,
    nodeSha256(sign1ToBeSigned(message.protectedBytes, message.payload, externalAad)),
    publicKey,
    { prehash: false, lowS: false },
  );
}

function coseError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.instance(err, CoseError);
    return (err as Error).message;
  }
  throw new Error('expected a CoseError');
}

test('Sig_structure bytes equal the cose-wg examples (with and without external AAD)', () => {
  const protectedHeader = new CborMap([[HEADER_ALG, ALG_ES256]]);
  assert.is(
    bytesToHex(sign1ToBeSigned(protectedHeader, PAYLOAD, hexToBytes(EXAMPLES.pass02.external))).toUpperCase(),
    EXAMPLES.pass02.toBeSigned,
  );
  assert.is(bytesToHex(sign1ToBeSigned(protectedHeader, PAYLOAD)).toUpperCase(), EXAMPLES.pass03.toBeSigned);
  assert.is(
    bytesToHex(sign1ToBeSigned(hexToBytes('a10126'), PAYLOAD)).toUpperCase(),
    EXAMPLES.pass03.toBeSigned,
    'protected header given as bytes',
  );
});

test('cose-wg sign-pass-02 (unprotected kid) and sign-pass-03 (untagged): valid COSE that this profile refuses', () => {
  // Both signatures are good over their Sig_structure: the refusal is the profile's, not a broken message.
  assert.ok(
    p256.verify(
      hexToBytes(EXAMPLES.pass02.cbor.slice(-128)),
      nodeSha256(hexToBytes(EXAMPLES.pass02.toBeSigned)),
      EXAMPLE_KEY,
      { prehash: false, lowS: false },
    ),
  );
  assert.ok(
    p256.verify(
      hexToBytes(EXAMPLES.pass03.cbor.slice(-128)),
      nodeSha256(hexToBytes(EXAMPLES.pass03.toBeSigned)),
      EXAMPLE_KEY,
      { prehash: false, lowS: false },
    ),
  );
  assert.match(
    coseError(() => decodeSign1(hexToBytes(EXAMPLES.pass02.cbor))),
    'unprotected header holds label 4',
  );
  assert.match(
    coseError(() => decodeSign1(hexToBytes(EXAMPLES.pass03.cbor))),
    'COSE_Sign1 must carry tag 18 (got an array without a tag)',
  );
  assert.match(
    coseError(() => decodeSign1(hexToBytes('D2' + EXAMPLES.pass03.cbor))),
    'unprotected header holds label 4',
    'tagged, it is still refused for its unprotected kid',
  );
});

test('cose-wg sign-fail examples are refused by the decoder', () => {
  // sign-fail-01: tag 998
  assert.match(
    coseError(() => decodeSign1(hexToBytes('D903E6' + EXAMPLES.pass03.cbor))),
    'tag 998 is not COSE_Sign1 (tag 18)',
  );
  // sign-fail-03 / -04: alg -999 / "unknown"
  assert.match(
    coseError(() => decodeSign1(hexToBytes('D28445A1013903E6A104423131' + PAYLOAD_HEX + SIG_03))),
    'alg (label 1) is -999, but only ES256 (-7) is accepted here',
  );
  assert.match(
    coseError(() => decodeSign1(hexToBytes('D2844AA10167756E6B6E6F776EA104423131' + PAYLOAD_HEX + SIG_03))),
    'alg (label 1) is text "unknown"',
  );
  // sign-pass-01 is valid COSE but puts alg into the unprotected header, which this profile refuses.
  assert.match(
    coseError(() =>
      decodeSign1(
        hexToBytes(
          'D28441A0A2012604423131' +
            PAYLOAD_HEX +
            '5840' +
            SIG_A +
            '1A02E5F0344BF2D4EE5C7FD75A68A9F5E0B3CC1F1FC1409C189566586FF9D610',
        ),
      ),
    ),
    'alg (label 1) is in the unprotected header',
  );
  // sign-fail-02: payload changed; sign-fail-06: protected attribute added; sign-fail-07: removed. All
  // carry kid in the unprotected header, refused before any signature check.
  for (const hex of [
    'D28443A10126A10442313154546869732069732074686520636F6E74656E742F' + SIG_03,
    'D28445A201260300A104423131' + PAYLOAD_HEX + SIG_03,
    'D28443A10126A104423131' +
      PAYLOAD_HEX +
      '5840' +
      SIG_A +
      '72727F48461FABBBA2E343492DDECAC3983686250BC68E9F1A7A07D41225B59F',
  ])
    assert.match(
      coseError(() => decodeSign1(hexToBytes(hex))),
      'unprotected header holds label 4',
    );
});

test('signSign1: a tagged message that noble verifies, kid in the protected header, read the same by cbor-x', () => {
  const secretKey = p256.utils.randomSecretKey();
  const publicKey = p256.getPublicKey(secretKey, false);
  const kid = nodeSha256(publicKey).slice(0, 8);
  const payload = encode(
    new CborMap([
      [1, 'meter-1'],
      [2, 42],
    ]),
  );
  const aad = new Uint8Array([9, 9]);
  let digestSeen: Uint8Array | undefined;
  const bytes = signSign1(
    nodeSha256,
    (digest) => {
      digestSeen = digest;
      return p256.sign(digest, secretKey, { prehash: false });
    },
    kid,
    payload,
    aad,
  );
  assert.is(bytes[0], 0xd2, 'tag 18');
  const message = decodeSign1(bytes);
  assert.equal(message.protectedBytes, encode(es256ProtectedHeader(kid)));
  assert.equal(message.protectedHeader.get(HEADER_KID), kid);
  assert.is(message.unprotectedHeader.entries.length, 0);
  assert.equal(message.payload, payload);
  assert.equal(digestSeen, nodeSha256(sign1ToBeSigned(message.protectedBytes, message.payload, aad)));
  assert.ok(verifies(bytes, publicKey, aad));
  assert.not.ok(verifies(bytes, publicKey), 'the AAD is bound');
  assert.not.ok(verifies(bytes, p256.getPublicKey(p256.utils.randomSecretKey(), false)), 'another key does not verify');
  // The same signature checked by node:crypto (IEEE P1363 r||s format) as a second verifier.
  const nodeKey = createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: Buffer.from(publicKey.subarray(1, 33)).toString('base64url'),
      y: Buffer.from(publicKey.subarray(33)).toString('base64url'),
    },
    format: 'jwk',
  });
  assert.ok(
    cryptoVerify(
      'sha256',
      sign1ToBeSigned(message.protectedBytes, message.payload, aad),
      { key: nodeKey, dsaEncoding: 'ieee-p1363' },
      message.signature,
    ),
  );
  // Independent decoder: cbor-x sees tag 18 around [bstr, {}, bstr, bstr(64)].
  const other = new Decoder({ mapsAsObjects: false }).decode(Buffer.from(bytes));
  assert.is(other.tag, COSE_SIGN1_TAG);
  assert.is(other.value.length, 4);
  assert.equal(new Uint8Array(other.value[0]), message.protectedBytes);
  const protectedMap = new Decoder({ mapsAsObjects: false }).decode(Buffer.from(other.value[0])) as Map<
    number,
    unknown
  >;
  assert.is(protectedMap.get(1), -7);
  assert.equal(new Uint8Array(protectedMap.get(4) as Uint8Array), kid);
  assert.is((other.value[1] as Map<number, unknown>).size, 0);
  assert.equal(new Uint8Array(other.value[2]), payload);
  assert.is(other.value[3].length, 64);
  // Round trip: decoding and re-encoding gives the same bytes.
  assert.equal(encodeSign1(message), bytes);
});

test('malformed messages are refused with a message saying what is wrong', () => {
  const sig = new Uint8Array(64).fill(1);
  const good = new Uint8Array([0xa1, 0x01, 0x26]);
  const payload = new Uint8Array([1, 2, 3]);
  const build = (items: unknown[], tag = true) => encode((tag ? new Tagged(18, items as never) : items) as never);
  const cases: Array<[Uint8Array, string]> = [
    [new Uint8Array([0xff]), 'not deterministic CBOR'],
    [new Uint8Array([...build([good, new CborMap([]), payload, sig]), 0]), 'trailing byte'],
    [build([good, new CborMap([]), payload]), 'array of 4 items'],
    [encode(new Tagged(18, 'x')), 'array of 4 items'],
    [build([new CborMap([[1, -7]]), new CborMap([]), payload, sig]), 'protected header must be a bstr'],
    [build([new Uint8Array(0), new CborMap([]), payload, sig]), 'protected header is empty'],
    [build([encode([1]), new CborMap([]), payload, sig]), 'protected header must be a map'],
    [
      build([new Uint8Array([0xa1, 0x18, 0x01, 0x26]), new CborMap([]), payload, sig]),
      'protected header bstr is not deterministic CBOR',
    ],
    [
      build([encode(new CborMap([[4, new Uint8Array(1)]])), new CborMap([]), payload, sig]),
      'protected header has no alg',
    ],
    [
      build([
        encode(
          new CborMap([
            [1, -7],
            [2, [4]],
          ]),
        ),
        new CborMap([]),
        payload,
        sig,
      ]),
      'crit (label 2)',
    ],
    [build([good, new CborMap([[4, 'kid']]), payload, sig]), 'kid (label 4) in the unprotected header must be a bstr'],
    [
      build([encode(new CborMap([[4, new Uint8Array(1)]])), new CborMap([[1, -7]]), payload, sig]),
      'alg (label 1) is in the unprotected header',
    ],
    [build([good, new CborMap([[1, -7]]), payload, sig]), 'header label 1 appears in both'],
    [
      build([
        encode(
          new CborMap([
            [1, -7],
            [4, new Uint8Array(1)],
          ]),
        ),
        new CborMap([[4, new Uint8Array(1)]]),
        payload,
        sig,
      ]),
      'header label 4 appears in both',
    ],
    [build([good, new CborMap([[1.5, 0]]), payload, sig]), 'COSE header labels are integers or text'],
    [build([good, [], payload, sig]), 'unprotected header must be a map'],
    [build([good, new CborMap([]), null, sig]), 'detached payloads are not supported'],
    [build([good, new CborMap([]), 'text', sig]), 'payload must be a bstr'],
    [build([good, new CborMap([]), payload, sig.subarray(0, 63)]), 'signature must be a 64-byte bstr'],
    [build([good, new CborMap([]), payload, 'sig']), 'signature must be a 64-byte bstr'],
  ];
  for (const [bytes, expected] of cases)
    assert.match(
      coseError(() => decodeSign1(bytes)),
      expected,
      expected,
    );
  assert.match(
    coseError(() => decodeSign1(build([good, new CborMap([]), payload, sig], false))),
    'must carry tag 18',
  );
  assert.match(
    coseError(() => decodeSign1(build([good, new CborMap([['x', 1]]), payload, sig]))),
    'unprotected header holds label x',
  );
  assert.equal(
    decodeSign1(build([good, new CborMap([]), payload, sig])).payload,
    payload,
    'tagged with an empty unprotected header it decodes',
  );
});

test('encodeSign1 refuses to write what decodeSign1 would refuse', () => {
  const base = { unprotectedHeader: new CborMap([]), payload: new Uint8Array(1), signature: new Uint8Array(64) };
  assert.match(
    coseError(() => encodeSign1({ ...base, protectedHeader: new CborMap([]) })),
    'protected header has no alg',
  );
  assert.match(
    coseError(() => encodeSign1({ ...base, protectedHeader: new CborMap([[1, -35]]) })),
    'only ES256 (-7)',
  );
  assert.match(
    coseError(() => encodeSign1({ ...base, protectedHeader: new CborMap([[1, -7]]), signature: new Uint8Array(72) })),
    '64-byte',
  );
  assert.match(
    coseError(() => encodeSign1({ ...base, protectedHeader: new Uint8Array([0xa1, 0x18, 0x01, 0x26]) })),
    'not deterministic CBOR',
  );
  assert.match(
    coseError(() =>
      encodeSign1({
        ...base,
        protectedHeader: new CborMap([[1, -7]]),
        unprotectedHeader: new CborMap([[HEADER_KID, 7]]),
      }),
    ),
    'must be a bstr',
  );
  assert.match(
    coseError(() =>
      encodeSign1({
        ...base,
        protectedHeader: new CborMap([[1, -7]]),
        unprotectedHeader: new CborMap([[HEADER_KID, new Uint8Array(8)]]),
      }),
    ),
    'unprotected header must be empty',
  );
});

test.run();
