// The differential corpus: the firmware's pure modules run on fixed inputs, one line of output per
// case ("C <name> <result>"). This one holds CBOR, COSE, readings, HMAC/HKDF, AES, sealing and
// certificates; transport-corpus.ts the 8-bit string formats (MQTT packets, journal records,
// configuration) and market-corpus.ts the market and mixnet formats: three bundles, because one holding
// them all would not leave the interpreter's 16,383 JsVars room to run the cases. The same code runs in Node (imported), in the vm emulator's realm and in
// the real Espruino interpreter (both as the firmware build of corpus-entry.ts); corpus.test.ts
// compares the lines. Device-safe: it is bundled and profile-checked like the firmware.
//
// Results are hex of bytes, or "ERR <name>: <message>" for a refusal. Numbers are shown as the hex of
// their float64 bits, never as decimal text (Espruino prints about 12 significant digits), and inputs
// that are floats are built from their bits (Espruino parses some decimal literals one ULP off).
// Inputs are the same bytes everywhere; the ECDH and ECDSA of the secure element are replaced by fixed
// shared secrets and a deterministic stand-in signature, because the chip, not JavaScript, does them.

import {
  CborError,
  CborMap,
  CborSimple,
  Tagged,
  decode,
  encode,
  type CborValue,
} from '../../firmware/src/protocol/cbor.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';
import { ALG_ATECC608_ATTESTED, decodeSign1, sign1ToBeSigned, signSign1 } from '../../firmware/src/protocol/cose.ts';
import { concatBytes } from '../../firmware/src/protocol/crypto/bytes.ts';
import { hkdfExpand, hkdfExtract, hkdfSha256 } from '../../firmware/src/protocol/crypto/hkdf.ts';
import { hmacSha256 } from '../../firmware/src/protocol/crypto/hmac.ts';
import type { Aes128Ctr } from '../../firmware/src/protocol/crypto/aes-ctr.ts';
import type { Sha256 } from '../../firmware/src/protocol/crypto/sha256.ts';
import {
  attestedCertificate,
  decodeDeviceCertificate,
  decodeKeyCertificate,
  decodeOperatorCertificate,
  encodeDeviceCertificate,
  encodeKeyCertificate,
  encodeOperatorCertificate,
  kidOf,
  openSignedCertificate,
  signedCertificate,
} from '../../firmware/src/protocol/certificate.ts';
import { bytesToHex, hexToBytes } from '../../firmware/src/protocol/hex.ts';
import { decodeReading, encodeReading, type Reading } from '../../firmware/src/protocol/reading.ts';
import { openEnvelope, sealEnvelope } from '../../firmware/src/protocol/sealed-reading.ts';
import { RFC4231_HMAC_SHA256, RFC5869_HKDF_SHA256 } from '../fixtures/crypto/rfc-vectors.ts';

export interface CorpusEnvironment {
  sha256: Sha256;
  aes128Ctr: Aes128Ctr;
  print(line: string): void;
}

/**
 * Cases whose input itself differs by nature between V8 and Espruino (text built from character codes
 * above 0xFF: Espruino keeps their low 8 bits). The realm must agree with the interpreter; Node must
 * refuse them (the firmware refuses what it cannot represent, where it can see it).
 */
export const NATURE_DIFFERS = ['cbor.encode.text-u20ac', 'mqtt.topic-u20ac'];

/** Marks the end of the corpus output. */
export const CORPUS_END = 'CORPUS-END';

const float64View = new DataView(new ArrayBuffer(8));

/** The number with these IEEE float64 bits (16 hex digits, big-endian). */
function f64(hex: string): number {
  const bytes = hexToBytes(hex) as Uint8Array;
  for (let i = 0; i < 8; i++) float64View.setUint8(i, bytes[i]);
  return float64View.getFloat64(0);
}

function numberBits(n: number): string {
  float64View.setFloat64(0, n);
  let out = '';
  for (let i = 0; i < 8; i++) {
    const b = float64View.getUint8(i);
    out += (b < 16 ? '0' : '') + b.toString(16);
  }
  return out;
}

export function charsHex(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out += (i > 0 ? '.' : '') + c.toString(16);
  }
  return out;
}

/** A decoded value as text that does not depend on the engine: types, bytes, float64 bits. */
export function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (value === true || value === false) return String(value);
  if (typeof value === 'number') return 'n' + numberBits(value);
  if (typeof value === 'string') return 's"' + charsHex(value) + '"';
  if (value instanceof Uint8Array) return 'b' + bytesToHex(value);
  if (Array.isArray(value)) {
    const items: string[] = [];
    for (let i = 0; i < value.length; i++) items.push(show(value[i]));
    return '[' + items.join(',') + ']';
  }
  if (value instanceof CborMap) {
    const entries: string[] = [];
    for (let i = 0; i < value.entries.length; i++)
      entries.push(show(value.entries[i][0]) + ':' + show(value.entries[i][1]));
    return 'M{' + entries.join(',') + '}';
  }
  if (value instanceof Tagged) return 'T' + value.tag + '(' + show(value.value) + ')';
  if (value instanceof CborSimple) return 'S' + value.value;
  if (typeof value === 'object') {
    // Sorted: V8 lists integer-like keys first, Espruino in insertion order (not a firmware concern).
    const keys = Object.keys(value as object).sort();
    const fields: string[] = [];
    for (let i = 0; i < keys.length; i++)
      fields.push(charsHex(keys[i]) + '=' + show((value as { [k: string]: unknown })[keys[i]]));
    return '{' + fields.join(',') + '}';
  }
  return typeof value;
}

export function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 73 + seed * 151 + ((i * i) >> 3)) & 0xff;
  return out;
}

/** A 65-byte "public key" 04||x||y: form is all the pure code checks. */
export function point(seed: number): Uint8Array {
  const p = bytesOf(65, seed);
  p[0] = 4;
  return p;
}

/** run(name, fn) prints one case's line: fn's result as hex or text, or "ERR <name>: <message>" when it throws. */
export function caseRunner(env: CorpusEnvironment): (name: string, fn: () => string | Uint8Array) => void {
  return function (name, fn) {
    let result: string;
    try {
      const out = fn();
      result = out instanceof Uint8Array ? bytesToHex(out) : out;
    } catch (err) {
      const e = err as Error;
      // A plain Error has no name on Espruino (nothing in the firmware reads it); its class does.
      result =
        'ERR ' +
        (e && e.name !== undefined ? e.name : 'Error') +
        ': ' +
        (e && e.message !== undefined ? e.message : String(err));
    }
    env.print('C ' + name + ' ' + result);
  };
}

export function runCorpus(env: CorpusEnvironment): void {
  const sha256 = env.sha256;
  const run = caseRunner(env);
  /** The secure element's ECDSA stands in as a deterministic 64-byte function of the digest. */
  function fakeSign(digest: Uint8Array): Uint8Array {
    return concatBytes([sha256(digest), sha256(concatBytes([digest, digest]))]);
  }

  // ---- CBOR: encoding ----
  const integers: number[] = [
    0,
    1,
    23,
    24,
    255,
    256,
    65535,
    65536,
    4294967295,
    4294967296,
    4294967296 * 2097152,
    -1,
    -24,
    -25,
    -256,
    -257,
    -65537,
    -4294967296 * 2097152,
  ];
  for (let i = 0; i < integers.length; i++)
    run('cbor.encode.int.' + i, function () {
      return encode(integers[i]);
    });
  const floats = [
    '3ff8000000000000',
    '3ff199999999999a',
    '40f86a0800000000',
    '3e70000000000000',
    '3f10000000000000',
    '3e88000000000000',
    '7fefffffffffffff',
    '0000000000000001',
    '47efffffe0000000',
    '7e37e43c8800759c',
    'c010666666666666',
    '7ff8000000000000',
    '7ff0000000000000',
    'fff0000000000000',
    '4340000000000001',
    '43c0000000000000',
    '3fd5555555555555',
    '40effc0000000000',
    '8000000000000000',
    'bf1ff80000000000',
    '3eb0000000000000',
    '38f0000000000000',
  ];
  for (let i = 0; i < floats.length; i++)
    run('cbor.encode.float.' + floats[i], function () {
      return encode(f64(floats[i]));
    });
  run('cbor.encode.text', function () {
    return encode([
      '',
      'a',
      'IETF',
      '"\\',
      'caf' + String.fromCharCode(0xe9),
      String.fromCharCode(0, 0x7f, 0x80, 0xff),
    ]);
  });
  run('cbor.encode.text-u20ac', function () {
    return encode(String.fromCharCode(0x20ac));
  });
  run('cbor.encode.bytes', function () {
    return encode([new Uint8Array(0), bytesOf(24, 1), bytesOf(300, 2)]);
  });
  run('cbor.encode.nested', function () {
    return encode([
      1,
      [2, 3],
      { b: [true, false, null, undefined], a: new Tagged(1, 1363896240) },
      new CborSimple(16),
      new CborSimple(255),
    ]);
  });
  run('cbor.encode.object-key-order', function () {
    const o: { [k: string]: CborValue } = {};
    o.b = 1;
    o.a = 2;
    o['10'] = 3;
    o['2'] = 4;
    o.aa = 5;
    return encode(o);
  });
  run('cbor.encode.intmap', function () {
    return encode(
      new CborMap([
        [100, 'x'],
        [-1, 'y'],
        [10, bytesOf(3, 3)],
        ['z', 0],
        [false, 1],
      ]),
    );
  });
  run('cbor.encode.duplicate-key', function () {
    return encode(
      new CborMap([
        [1, 'a'],
        [1, 'b'],
      ]),
    );
  });
  run('cbor.encode.deep', function () {
    let v: CborValue = 0;
    for (let i = 0; i < 20; i++) v = [v];
    return encode(v);
  });
  run('cbor.encode.function', function () {
    return encode(function () {} as unknown as CborValue);
  });
  run('cbor.encode.class-instance', function () {
    return encode(new CborError('not a value', 0) as unknown as CborValue);
  });
  run('cbor.error-as-text', function () {
    return String(new CborError('shown as text', 3));
  });

  // ---- CBOR: decoding (strict, and strict: false where the input is not deterministic) ----
  const decodable = [
    '00',
    '17',
    '1818',
    '1903e8',
    '1a000f4240',
    '1b000000e8d4a51000',
    '1b0020000000000000',
    '3b001fffffffffffff',
    '20',
    '3903e7',
    'fb3ff199999999999a',
    'f93e00',
    'fa7f7fffff',
    'fb7e37e43c8800759c',
    'f90001',
    'f90400',
    'fbc010666666666666',
    'f97c00',
    'f97e00',
    'f9fc00',
    'f97bff',
    'fa47c35000',
    'f4',
    'f5',
    'f6',
    'f7',
    'f0',
    'f8ff',
    'c11a514b67b0',
    'c1fb41d452d9ec200000',
    'd74401020304',
    '40',
    '4401020304',
    '60',
    '6449455446',
    '62c3bc',
    '80',
    '8301820203820405',
    'a0',
    'a201020304',
    'a26161016162820203',
    'a1626161f6',
    'a2613101616102',
    '826161a161626163',
    'c249010000000000000000',
    // Refused: negative zero, text above U+00FF, malformed, not deterministic.
    'f98000',
    'fa80000000',
    'fb8000000000000000',
    '63e6b0b4',
    '64f0908591',
    '62c480',
    '61ff',
    '63eda080',
    '6161',
    '1817',
    'fa3fc00000',
    'f93c00',
    'f97e01',
    'a202000100',
    'a2010001 00',
    '5f42010243030405ff',
    '9fff',
    '1bffffffffffffffff',
    '0102',
    'ff',
    '1c',
    'f810',
    '8181818181818181818181818181818181818100',
  ];
  for (let i = 0; i < decodable.length; i++) {
    const hex = decodable[i].split(' ').join('');
    run('cbor.decode.' + hex, function () {
      return show(decode(hexToBytes(hex) as Uint8Array));
    });
    run('cbor.decode-lenient.' + hex, function () {
      return show(decode(hexToBytes(hex) as Uint8Array, { strict: false }));
    });
  }
  run('errors.shape', function () {
    try {
      decode(hexToBytes('ff') as Uint8Array);
      return 'no error';
    } catch (e) {
      const err = e as CborError;
      return [
        err.name,
        err.code,
        err instanceof CborError,
        err instanceof VeilgridError,
        err instanceof Error,
        String(err).substring(0, 10),
      ].join(' ');
    }
  });
  run('cbor.decode.every-61st-half', function () {
    // Half-precision floats decoded leniently; each as its float64 bits, or "E" where refused.
    let all = '';
    for (let h = 0; h < 65536; h += 61) {
      try {
        all += numberBits(decode(new Uint8Array([0xf9, h >> 8, h & 0xff]), { strict: false }) as number);
      } catch (_err) {
        all += 'E';
      }
    }
    return bytesToHex(sha256(asciiBytes(all)));
  });
  run('cbor.roundtrip.bytes-are-uint8array', function () {
    const decoded = decode(
      encode(
        new CborMap([
          [4, bytesOf(8, 4)],
          [1, -7],
        ]),
      ),
    ) as CborMap;
    const kid = decoded.get(4);
    return (kid instanceof Uint8Array ? 'Uint8Array ' : 'not a Uint8Array ') + show(kid);
  });

  // ---- COSE and readings: signing a reading is the path the kid/bstr bug broke ----
  const reading: Reading = {
    meterId: 'meter-0042',
    interval: 1988123,
    importWh: 1234,
    exportWh: 56,
    importTotalWh: 987654321,
    exportTotalWh: 4294967296,
    seq: 77,
    flags: 3,
  };
  const readingKey = point(11);
  run('reading.encode', function () {
    return encodeReading(reading);
  });
  run('reading.decode', function () {
    return show(decodeReading(encodeReading(reading)));
  });
  run('reading.decode-bad', function () {
    return show(
      decodeReading(
        encode(
          new CborMap([
            [1, 'bad id!'],
            [2, -1],
            [9, 0],
          ]),
        ),
      ),
    );
  });
  run('reading.encode-bad', function () {
    return encodeReading({
      meterId: '',
      interval: 1.5,
      importWh: -1,
      exportWh: 0,
      importTotalWh: 0,
      exportTotalWh: 0,
      seq: 0,
      flags: 64,
    });
  });
  run('cose.kid', function () {
    return kidOf(sha256, readingKey);
  });
  run('cose.kid-of-xy', function () {
    return kidOf(sha256, readingKey.subarray(1));
  });
  run('cose.sign-reading', function () {
    return signSign1(sha256, fakeSign, kidOf(sha256, readingKey), encodeReading(reading));
  });
  run('cose.decode-signed-reading', function () {
    const message = decodeSign1(signSign1(sha256, fakeSign, kidOf(sha256, readingKey), encodeReading(reading)));
    return (
      show(message.protectedHeader) +
      ' ' +
      show(message.unprotectedHeader) +
      ' ' +
      bytesToHex(message.payload) +
      ' ' +
      bytesToHex(message.signature) +
      ' ' +
      bytesToHex(sign1ToBeSigned(message.protectedBytes, message.payload))
    );
  });
  run('cose.tobesigned-aad', function () {
    return sign1ToBeSigned(new CborMap([[1, -7]]), bytesOf(10, 5), bytesOf(4, 6));
  });
  run('cose.sign-short-signature', function () {
    return signSign1(
      sha256,
      function () {
        return new Uint8Array(10);
      },
      kidOf(sha256, readingKey),
      bytesOf(5, 1),
    );
  });
  run('cose.decode-garbage', function () {
    return show(decodeSign1(hexToBytes('d28443a10126a0') as Uint8Array));
  });

  // ---- HMAC, HKDF ----
  for (let i = 0; i < RFC4231_HMAC_SHA256.length; i++) {
    const v = RFC4231_HMAC_SHA256[i];
    run('hmac.rfc4231.' + i, function () {
      return hmacSha256(sha256, hexToBytes(v.key) as Uint8Array, hexToBytes(v.data) as Uint8Array);
    });
  }
  for (let i = 0; i < RFC5869_HKDF_SHA256.length; i++) {
    const v = RFC5869_HKDF_SHA256[i];
    run('hkdf.rfc5869.' + i, function () {
      const prk = hkdfExtract(sha256, hexToBytes(v.salt) as Uint8Array, hexToBytes(v.ikm) as Uint8Array);
      return bytesToHex(prk) + ' ' + bytesToHex(hkdfExpand(sha256, prk, hexToBytes(v.info) as Uint8Array, v.length));
    });
  }
  run('hmac.long-key', function () {
    return hmacSha256(sha256, bytesOf(200, 7), bytesOf(1000, 8));
  });
  run('hkdf.lengths', function () {
    return (
      bytesToHex(hkdfSha256(sha256, bytesOf(32, 9), new Uint8Array(0), bytesOf(10, 1), 0)) +
      '/' +
      bytesToHex(hkdfSha256(sha256, bytesOf(32, 9), bytesOf(5, 2), bytesOf(10, 1), 100))
    );
  });
  run('hkdf.too-long', function () {
    return hkdfSha256(sha256, bytesOf(32, 9), new Uint8Array(0), new Uint8Array(0), 8161);
  });

  // ---- AES-128-CTR (native on the device) ----
  const aesLengths = [0, 1, 15, 16, 17, 100, 1000];
  for (let i = 0; i < aesLengths.length; i++)
    run('aes-ctr.' + aesLengths[i], function () {
      return env.aes128Ctr(bytesOf(16, 12), bytesOf(aesLengths[i], 13));
    });

  // ---- Sealed envelope (the ECDH shared secret is an input: the SE computes it) ----
  const shared = bytesOf(32, 21);
  const ephemeral = point(22);
  run('seal.reading', function () {
    return sealEnvelope(
      { sha256: sha256, aes128Ctr: env.aes128Ctr },
      shared,
      ephemeral,
      signSign1(sha256, fakeSign, kidOf(sha256, readingKey), encodeReading(reading)),
    );
  });
  run('seal.empty', function () {
    return sealEnvelope({ sha256: sha256, aes128Ctr: env.aes128Ctr }, shared, ephemeral, new Uint8Array(0));
  });
  run('seal.open', function () {
    return openEnvelope(
      { sha256: sha256, aes128Ctr: env.aes128Ctr },
      shared,
      sealEnvelope({ sha256: sha256, aes128Ctr: env.aes128Ctr }, shared, ephemeral, bytesOf(300, 23)),
    );
  });
  run('seal.open-tampered', function () {
    const envelope = sealEnvelope({ sha256: sha256, aes128Ctr: env.aes128Ctr }, shared, ephemeral, bytesOf(40, 24));
    envelope[envelope.length - 40] ^= 1;
    return openEnvelope({ sha256: sha256, aes128Ctr: env.aes128Ctr }, shared, envelope);
  });
  run('seal.open-wrong-secret', function () {
    return openEnvelope(
      { sha256: sha256, aes128Ctr: env.aes128Ctr },
      bytesOf(32, 99),
      sealEnvelope({ sha256: sha256, aes128Ctr: env.aes128Ctr }, shared, ephemeral, bytesOf(40, 24)),
    );
  });
  run('seal.bad-secret', function () {
    return sealEnvelope({ sha256: sha256, aes128Ctr: env.aes128Ctr }, bytesOf(31, 1), ephemeral, bytesOf(4, 1));
  });
  run('seal.open-not-cbor', function () {
    return openEnvelope({ sha256: sha256, aes128Ctr: env.aes128Ctr }, shared, bytesOf(20, 3));
  });

  // ---- Certificates ----
  const operatorKey = point(31);
  const identityKey = point(32);
  const operatorCert = { operatorId: 'op-1', publicKey: operatorKey, notBefore: 1800000000, notAfter: 1900000000 };
  const deviceCert = {
    operatorId: 'op-1',
    meterId: 'meter-0042',
    feeder: 'F7',
    identityKey: identityKey,
    mixKey: point(33),
    limits: { maxImportW: 11000, maxExportW: 7000 },
    issuedAt: 1800000123,
  };
  const keyCert = {
    meterId: 'meter-0042',
    publicKey: readingKey,
    validFromInterval: 1988000,
    validToInterval: 1988096,
    rotation: 7,
  };
  run('cert.operator', function () {
    return encodeOperatorCertificate(operatorCert);
  });
  run('cert.device', function () {
    return encodeDeviceCertificate(deviceCert);
  });
  run('cert.key', function () {
    return encodeKeyCertificate(keyCert);
  });
  run('cert.decode', function () {
    return (
      show(decodeOperatorCertificate(encodeOperatorCertificate(operatorCert))) +
      ' ' +
      show(decodeDeviceCertificate(encodeDeviceCertificate(deviceCert))) +
      ' ' +
      show(decodeKeyCertificate(encodeKeyCertificate(keyCert)))
    );
  });
  run('cert.signed', function () {
    return signedCertificate({ sha256: sha256, sign: fakeSign }, identityKey, encodeKeyCertificate(keyCert));
  });
  run('cert.open', function () {
    const opened = openSignedCertificate(
      signedCertificate({ sha256: sha256, sign: fakeSign }, identityKey, encodeKeyCertificate(keyCert)),
    );
    return (
      bytesToHex(opened.kid) +
      ' ' +
      bytesToHex(opened.payload) +
      ' ' +
      bytesToHex(opened.toBeSigned) +
      ' ' +
      bytesToHex(opened.signature)
    );
  });
  run('cert.attested', function () {
    // On the meter the attestation is the SE's; only the certificate around it runs in device code.
    const attested = attestedCertificate(sha256, fakeSign, identityKey, encodeKeyCertificate(keyCert));
    const opened = openSignedCertificate(attested, ALG_ATECC608_ATTESTED);
    return bytesToHex(attested) + ' ' + bytesToHex(opened.toBeSigned);
  });
  run('cert.wrong-kind', function () {
    return show(decodeKeyCertificate(encodeDeviceCertificate(deviceCert)));
  });
  run('cert.bad-fields', function () {
    return encodeKeyCertificate({
      meterId: 'x y',
      publicKey: bytesOf(65, 1),
      validFromInterval: 5,
      validToInterval: 4,
      rotation: -1,
    });
  });
  run('cert.open-unsigned', function () {
    return show(
      openSignedCertificate(
        encode(new Tagged(18, [new Uint8Array(0), new CborMap([]), bytesOf(3, 1), bytesOf(64, 1)])),
      ),
    );
  });

  env.print(CORPUS_END);
}

/** The bytes of an ASCII string (to hash a long text result). */
function asciiBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
