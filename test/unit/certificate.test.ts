import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { p256 } from '@noble/curves/nist.js';
import { Decoder } from 'cbor-x';
import { CborMap, Tagged, encode } from '../../firmware/src/protocol/cbor.ts';
import { encodeSign1, es256ProtectedHeader, signSign1 } from '../../firmware/src/protocol/cose.ts';
import {
  CERT_KIND_DEVICE,
  CertificateFormatError,
  certificateToBeSigned,
  ASSET_REQUEST_BYTES,
  decodeAssetRequest,
  decodeDeviceCertificate,
  decodeKeyCertificate,
  decodeOperatorCertificate,
  encodeAssetRequest,
  encodeDeviceCertificate,
  encodeKeyCertificate,
  encodeOperatorCertificate,
  kidOf,
  openSignedCertificate,
  signedCertificate,
  type AssetRequest,
  type DeviceCertificate,
  type KeyCertificate,
  type OperatorCertificate,
} from '../../firmware/src/protocol/certificate.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';

function keyPair() {
  const secretKey = p256.utils.randomSecretKey();
  return {
    publicKey: p256.getPublicKey(secretKey, false),
    sign: (digest: Uint8Array) => p256.sign(digest, secretKey, { prehash: false }),
  };
}

const operatorKey = keyPair();
const identityKey = keyPair();
const mixKey = keyPair();
const readingKey = keyPair();

const operatorCert: OperatorCertificate = {
  operatorId: 'dso-north',
  publicKey: operatorKey.publicKey,
  notBefore: 1_790_000_000,
  notAfter: 1_900_000_000,
};
const deviceCert: DeviceCertificate = {
  operatorId: 'dso-north',
  meterId: 'meter-0001',
  feeder: 'feeder-7',
  identityKey: identityKey.publicKey,
  mixKey: mixKey.publicKey,
  limits: { maxImportW: 11_000, maxExportW: 7_000 },
  issuedAt: 1_790_000_100,
};
const tradingKey = keyPair();
const assetRequest: AssetRequest = {
  meterId: 'meter-0001',
  tradingKey: tradingKey.publicKey,
  slot: 9,
  interval: 1_988_010,
  productionWh: 450,
  consumptionWh: 0,
};
const keyCert: KeyCertificate = {
  meterId: 'meter-0001',
  publicKey: readingKey.publicKey,
  validFromInterval: 1_988_000,
  validToInterval: 1_988_096,
  rotation: 3,
};

function formatError(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.instance(err, CertificateFormatError);
    return (err as CertificateFormatError).problems;
  }
  throw new Error('expected a CertificateFormatError');
}

test('each kind round-trips, and the payload is a CBOR map with the documented integer keys', () => {
  assert.equal(decodeOperatorCertificate(encodeOperatorCertificate(operatorCert)), operatorCert);
  assert.equal(decodeDeviceCertificate(encodeDeviceCertificate(deviceCert)), deviceCert);
  assert.equal(decodeKeyCertificate(encodeKeyCertificate(keyCert)), keyCert);

  const read = (bytes: Uint8Array) =>
    new Decoder({ mapsAsObjects: false }).decode(Buffer.from(bytes)) as Map<number, unknown>;
  const op = read(encodeOperatorCertificate(operatorCert));
  assert.equal([...op.keys()], [0, 1, 2, 3, 4]);
  assert.equal([op.get(0), op.get(1), op.get(3), op.get(4)], [1, 'dso-north', 1_790_000_000, 1_900_000_000]);
  const dev = read(encodeDeviceCertificate(deviceCert));
  assert.equal([...dev.keys()], [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(
    [dev.get(0), dev.get(1), dev.get(2), dev.get(3), dev.get(7)],
    [2, 'dso-north', 'meter-0001', 'feeder-7', 1_790_000_100],
  );
  assert.equal(new Uint8Array(dev.get(5) as Buffer), mixKey.publicKey);
  assert.equal(
    [...(dev.get(6) as Map<number, number>).entries()],
    [
      [1, 11_000],
      [2, 7_000],
    ],
  );
  const key = read(encodeKeyCertificate(keyCert));
  assert.equal([...key.keys()], [0, 1, 2, 3, 4, 5]);
  assert.equal(
    [key.get(0), key.get(1), key.get(3), key.get(4), key.get(5)],
    [3, 'meter-0001', 1_988_000, 1_988_096, 3],
  );
  assert.equal(new Uint8Array(key.get(2) as Buffer), readingKey.publicKey);
  assert.equal(decodeAssetRequest(encodeAssetRequest(assetRequest)), assetRequest);
  const request = read(encodeAssetRequest(assetRequest));
  assert.equal([...request.keys()], [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(
    [request.get(0), request.get(1), request.get(3), request.get(4), request.get(5), request.get(6)],
    [4, 'meter-0001', 9, 1_988_010, 450, 0],
  );
  assert.equal(new Uint8Array(request.get(2) as Buffer), tradingKey.publicKey);
});

test('encoding names every bad field', () => {
  const more = formatError(() =>
    encodeDeviceCertificate({
      ...deviceCert,
      operatorId: '',
      meterId: 'a/b',
      identityKey: identityKey.publicKey.subarray(1),
      mixKey: new Uint8Array(65).fill(2),
      limits: { maxImportW: -1, maxExportW: 1.5 },
      issuedAt: undefined as unknown as number,
    }),
  );
  assert.is(more.length, 7, more.join('\n'));
  assert.match(more[0], /^operatorId must be 1 to 64 characters long/);
  assert.match(more[1], /^meterId may contain only/);
  assert.match(more[2], /^identityKey must be a 65-byte uncompressed P-256 public key .*got a 64-byte string/);
  assert.match(more[3], /^mixKey must be .*starting 0x2/);
  assert.match(more[4], /^limits\.maxImportW \(W\) must be an integer/);
  assert.match(more[5], /^limits\.maxExportW \(W\) must be an integer/);
  assert.is(more[6], 'issuedAt (key 7) is missing');
  assert.equal(
    formatError(() => encodeOperatorCertificate({ ...operatorCert, notAfter: operatorCert.notBefore })),
    ['notBefore 1790000000 must be before notAfter 1790000000'],
  );
  assert.equal(
    formatError(() => encodeKeyCertificate({ ...keyCert, validFromInterval: 5, validToInterval: 4 })),
    ['validFromInterval 5 must not be after validToInterval 4'],
  );
  assert.match(
    formatError(() => encodeKeyCertificate({ ...keyCert, rotation: 2 ** 53 }))[0],
    'rotation must be an integer from 0 to 2^53-1',
  );
  assert.match(
    formatError(() => encodeOperatorCertificate({ ...operatorCert, operatorId: 'a'.repeat(65) }))[0],
    'operatorId must be 1 to 64 characters long (got 65)',
  );
  assert.equal(
    formatError(() => encodeAssetRequest({ ...assetRequest, slot: 1 })),
    ['slot 1 is not a trading-key slot (4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15)'],
    'a reading-key slot cannot hold a trading key',
  );
});

test('every asset request has the same length, whatever it asks for: its size does not tell who trades', () => {
  const variants: AssetRequest[] = [
    { ...assetRequest, productionWh: 0, consumptionWh: 0 },
    { ...assetRequest, productionWh: 23, consumptionWh: 0 },
    { ...assetRequest, productionWh: 0, consumptionWh: 1_000_000 },
    { ...assetRequest, productionWh: 2 ** 40, consumptionWh: 2 ** 53 - 1, interval: 2 ** 53 - 1, slot: 15 },
    { ...assetRequest, meterId: 'm' },
    {
      ...assetRequest,
      meterId: 'x'.repeat(64),
      productionWh: 2 ** 53 - 1,
      consumptionWh: 2 ** 53 - 1,
      interval: 2 ** 53 - 1,
    },
  ];
  for (const v of variants) {
    const bytes = encodeAssetRequest(v);
    assert.is(bytes.length, ASSET_REQUEST_BYTES, JSON.stringify({ ...v, tradingKey: undefined }));
    assert.equal(decodeAssetRequest(bytes), v);
  }
  const padded = encode(
    new CborMap([
      [0, 4],
      [1, 'meter-0001'],
      [2, tradingKey.publicKey],
      [3, 9],
      [4, 1],
      [5, 0],
      [6, 0],
      [7, new Uint8Array(3).fill(1)],
    ]),
  );
  assert.match(formatError(() => decodeAssetRequest(padded)).join(' '), /padding must be a byte string of zeros/);
  const short = encode(
    new CborMap([
      [0, 4],
      [1, 'meter-0001'],
      [2, tradingKey.publicKey],
      [3, 9],
      [4, 1],
      [5, 0],
      [6, 0],
      [7, new Uint8Array(3)],
    ]),
  );
  assert.match(formatError(() => decodeAssetRequest(short))[0], /padded to 200 bytes/);
});

test('decoding refuses another kind, unknown and missing keys, and non-canonical CBOR', () => {
  assert.equal(
    formatError(() => decodeDeviceCertificate(encodeKeyCertificate(keyCert))),
    ['expected a device certificate (key 0 = 2) but this is a key certificate'],
  );
  assert.equal(
    formatError(() => decodeKeyCertificate(encode(new CborMap([[0, 9]])))),
    ['expected a key certificate (key 0 = 3) but this is kind 9'],
  );
  assert.equal(
    formatError(() => decodeKeyCertificate(encodeAssetRequest(assetRequest))),
    ['expected a key certificate (key 0 = 3) but this is an asset request'],
  );
  assert.match(
    formatError(() => decodeKeyCertificate(encode([3])))[0],
    'is a CBOR map with integer keys (got an array)',
  );
  assert.match(formatError(() => decodeKeyCertificate(new Uint8Array([0xa1, 0x00])))[0], 'not deterministic CBOR');
  const entries: Array<[number, unknown]> = [
    [0, 3],
    [1, 'meter-0001'],
    [2, readingKey.publicKey],
    [3, 1],
    [4, 2],
    [9, 'x'],
  ];
  assert.equal(
    formatError(() => decodeKeyCertificate(encode(new CborMap(entries as never)))),
    ['unknown key 9 (a key certificate has keys 0..5)', 'rotation (key 5) is missing'],
  );
  const limits = new CborMap([
    [1, 10],
    [3, 1],
  ]);
  const device = encode(
    new CborMap([
      [0, CERT_KIND_DEVICE],
      [1, 'o'],
      [2, 'm'],
      [3, 'f'],
      [4, identityKey.publicKey],
      [5, mixKey.publicKey],
      [6, limits],
      [7, 1],
    ]),
  );
  assert.equal(
    formatError(() => decodeDeviceCertificate(device)),
    [
      'limits has unknown key 3 (it has keys 1 maxImportW and 2 maxExportW)',
      'limits.maxExportW (W) must be an integer from 0 to 2^53-1 (got undefined)',
    ],
  );
});

test("kidOf: first 8 bytes of SHA-256 of the uncompressed key, the same from the SE's 64-byte x||y", () => {
  const kid = kidOf(nodeSha256, identityKey.publicKey);
  assert.equal(kid, nodeSha256(identityKey.publicKey).slice(0, 8));
  assert.equal(kidOf(nodeSha256, identityKey.publicKey.slice(1)), kid);
  assert.throws(
    () => kidOf(nodeSha256, new Uint8Array(33)),
    /64 bytes x\|\|y or 65 bytes 04\|\|x\|\|y \(got 33 bytes\)/,
  );
});

test('the chain signs and verifies: operator self-signed, device by operator, key by identity', () => {
  const chain: Array<[Uint8Array, ReturnType<typeof keyPair>, string]> = [
    [encodeOperatorCertificate(operatorCert), operatorKey, 'operator'],
    [encodeDeviceCertificate(deviceCert), operatorKey, 'device'],
    [encodeKeyCertificate(keyCert), identityKey, 'key'],
  ];
  for (const [payload, signer, name] of chain) {
    let signedDigest: Uint8Array | undefined;
    const signed = signedCertificate(
      {
        sha256: nodeSha256,
        sign: (d) => {
          signedDigest = d;
          return signer.sign(d);
        },
      },
      signer.publicKey.slice(1),
      payload,
    );
    const opened = openSignedCertificate(signed);
    assert.equal(opened.kid, kidOf(nodeSha256, signer.publicKey), name);
    assert.equal(opened.payload, payload, name);
    assert.equal(
      opened.toBeSigned,
      certificateToBeSigned(nodeSha256, signer.publicKey, payload),
      `${name}: signer and verifier hash the same bytes`,
    );
    assert.equal(signedDigest, nodeSha256(opened.toBeSigned), name);
    assert.ok(p256.verify(opened.signature, nodeSha256(opened.toBeSigned), signer.publicKey, { prehash: false }), name);
    assert.not.ok(
      p256.verify(opened.signature, nodeSha256(opened.toBeSigned), readingKey.publicKey, { prehash: false }),
      `${name}: not with another key`,
    );
  }
  const device = openSignedCertificate(
    signedCertificate(
      { sha256: nodeSha256, sign: operatorKey.sign },
      operatorKey.publicKey,
      encodeDeviceCertificate(deviceCert),
    ),
  );
  assert.equal(decodeDeviceCertificate(device.payload), deviceCert);
});

test('openSignedCertificate needs an 8-byte kid in the protected header and a valid COSE_Sign1', () => {
  const payload = encodeKeyCertificate(keyCert);
  const sig = new Uint8Array(64);
  const noKid = encodeSign1({
    protectedHeader: new CborMap([[1, -7]]),
    unprotectedHeader: new CborMap([]),
    payload,
    signature: sig,
  });
  assert.equal(
    formatError(() => openSignedCertificate(noKid)),
    ['a signed certificate needs kid (label 4) in its protected header as 8 bytes (got undefined)'],
  );
  const unprotectedKid = encode(
    new Tagged(18, [encode(new CborMap([[1, -7]])), new CborMap([[4, new Uint8Array(8)]]), payload, sig]),
  );
  assert.match(
    formatError(() => openSignedCertificate(unprotectedKid))[0],
    'not a valid COSE_Sign1: unprotected header holds label 4',
  );
  const shortKid = signSign1(nodeSha256, () => sig, new Uint8Array(4), payload);
  assert.match(formatError(() => openSignedCertificate(shortKid))[0], 'as 8 bytes (got a 4-byte string)');
  assert.match(
    formatError(() => openSignedCertificate(payload))[0],
    /^not a valid COSE_Sign1: COSE_Sign1 must carry tag 18/,
  );
  assert.equal(
    encode(es256ProtectedHeader(new Uint8Array(8))).length,
    13,
    'protected header { 1: -7, 4: kid } is 13 bytes',
  );
});

test.run();
