// The deterministic CBOR codec: RFC 8949 Appendix A vectors, round-trips against cbor-x in both
// directions, and every class of malformed input refused with a message naming what and where.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as cborx from 'cbor-x';
import {
  CborError,
  CborMap,
  CborSimple,
  Tagged,
  decode,
  encode,
  type CborValue,
  type DecodeOptions,
} from '../../firmware/src/protocol/cbor.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const unhex = (text: string) => new Uint8Array(Buffer.from(text.replace(/ /g, ''), 'hex'));
const bytes = (...b: number[]) => new Uint8Array(b);

// ---------------------------------------------------------------------------------------------------
// RFC 8949 Appendix A. 'both': encode(value) gives exactly the vector and strict decoding accepts it.
// 'decode': a valid but not deterministic encoding of a JS value (e.g. 1.0 as a float, which encode()
// writes as the integer 1): decoded with strict: false, refused by strict mode.
const appendixA: Array<[string, CborValue, 'both' | 'decode']> = [
  ['00', 0, 'both'],
  ['01', 1, 'both'],
  ['0a', 10, 'both'],
  ['17', 23, 'both'],
  ['1818', 24, 'both'],
  ['1819', 25, 'both'],
  ['1864', 100, 'both'],
  ['1903e8', 1000, 'both'],
  ['1a000f4240', 1000000, 'both'],
  ['1b000000e8d4a51000', 1000000000000, 'both'],
  // Bignums are tags 2/3 around byte strings: they decode as generic tags.
  ['c249010000000000000000', new Tagged(2, unhex('010000000000000000')), 'both'],
  ['c349010000000000000000', new Tagged(3, unhex('010000000000000000')), 'both'],
  ['20', -1, 'both'],
  ['29', -10, 'both'],
  ['3863', -100, 'both'],
  ['3903e7', -1000, 'both'],
  ['f90000', 0, 'decode'],
  ['f93c00', 1, 'decode'],
  ['fb3ff199999999999a', 1.1, 'both'],
  ['f93e00', 1.5, 'both'],
  ['f97bff', 65504, 'decode'],
  ['fa47c35000', 100000, 'decode'],
  ['fa7f7fffff', 3.4028234663852886e38, 'both'],
  ['fb7e37e43c8800759c', 1.0e300, 'both'],
  // biome-ignore lint/correctness/noPrecisionLoss: RFC 8949 Appendix A writes 2^-24 this way; it reads back exactly
  ['f90001', 5.960464477539063e-8, 'both'],
  ['f90400', 0.00006103515625, 'both'],
  ['f9c400', -4, 'decode'],
  ['fbc010666666666666', -4.1, 'both'],
  ['f97c00', Infinity, 'both'],
  ['f97e00', NaN, 'both'],
  ['f9fc00', -Infinity, 'both'],
  ['fa7f800000', Infinity, 'decode'],
  ['fa7fc00000', NaN, 'decode'],
  ['faff800000', -Infinity, 'decode'],
  ['fb7ff0000000000000', Infinity, 'decode'],
  ['fb7ff8000000000000', NaN, 'decode'],
  ['fbfff0000000000000', -Infinity, 'decode'],
  ['f4', false, 'both'],
  ['f5', true, 'both'],
  ['f6', null, 'both'],
  ['f7', undefined, 'both'],
  ['f0', new CborSimple(16), 'both'],
  ['f8ff', new CborSimple(255), 'both'],
  ['c074323031332d30332d32315432303a30343a30305a', new Tagged(0, '2013-03-21T20:04:00Z'), 'both'],
  ['c11a514b67b0', new Tagged(1, 1363896240), 'both'],
  ['c1fb41d452d9ec200000', new Tagged(1, 1363896240.5), 'both'],
  ['d74401020304', new Tagged(23, bytes(1, 2, 3, 4)), 'both'],
  ['d818456449455446', new Tagged(24, unhex('6449455446')), 'both'],
  ['d82076687474703a2f2f7777772e6578616d706c652e636f6d', new Tagged(32, 'http://www.example.com'), 'both'],
  ['40', bytes(), 'both'],
  ['4401020304', bytes(1, 2, 3, 4), 'both'],
  ['60', '', 'both'],
  ['6161', 'a', 'both'],
  ['6449455446', 'IETF', 'both'],
  ['62225c', '"\\', 'both'],
  ['62c3bc', '\u00fc', 'both'],
  ['80', [], 'both'],
  ['83010203', [1, 2, 3], 'both'],
  ['8301820203820405', [1, [2, 3], [4, 5]], 'both'],
  ['98190102030405060708090a0b0c0d0e0f101112131415161718181819', Array.from({ length: 25 }, (_, i) => i + 1), 'both'],
  ['a0', {}, 'both'],
  [
    'a201020304',
    new CborMap([
      [1, 2],
      [3, 4],
    ]),
    'both',
  ],
  ['a26161016162820203', { a: 1, b: [2, 3] }, 'both'],
  ['826161a161626163', ['a', { b: 'c' }], 'both'],
  ['a56161614161626142616361436164614461656145', { a: 'A', b: 'B', c: 'C', d: 'D', e: 'E' }, 'both'],
];

// The Appendix A vectors this codec refuses on purpose: integers a JS number cannot hold exactly, every
// indefinite-length form (deterministic CBOR has definite lengths only), and what the meter's Espruino
// cannot hold: negative zero, and text above U+00FF (its strings are 8-bit).
const appendixARefused: Array<[string, string, number]> = [
  ['f98000', 'negative zero (a 16-bit float)', 0],
  ['63e6b0b4', 'text string has the character U+6c34', 1],
  ['64f0908591', 'text string has the character U+010151', 1],
  ['1bffffffffffffffff', 'beyond 2^53', 0],
  ['3bffffffffffffffff', 'beyond 2^53', 0],
  ['5f42010243030405ff', 'indefinite-length byte string', 0],
  ['7f657374726561646d696e67ff', 'indefinite-length text string', 0],
  ['9fff', 'indefinite-length array', 0],
  ['9f018202039f0405ffff', 'indefinite-length array', 0],
  ['9f01820203820405ff', 'indefinite-length array', 0],
  ['83018202039f0405ff', 'indefinite-length array', 5],
  ['83019f0203ff820405', 'indefinite-length array', 2],
  ['9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff', 'indefinite-length array', 0],
  ['bf61610161629f0203ffff', 'indefinite-length map', 0],
  ['826161bf61626163ff', 'indefinite-length map', 3],
  ['bf6346756ef563416d7421ff', 'indefinite-length map', 0],
];

/** Equality in the data model: canonical encodings are equal (tells -0 from 0, NaN equals NaN). */
function assertSameValue(actual: CborValue, expected: CborValue, context: string) {
  assert.is(hex(encode(actual)), hex(encode(expected)), context);
}

function rejects(input: Uint8Array | string, messagePart: string, offset: number, options?: DecodeOptions) {
  const data = typeof input === 'string' ? unhex(input) : input;
  try {
    decode(data, options);
  } catch (err) {
    assert.instance(err, CborError, `${hex(data)}: ${err}`);
    const e = err as CborError;
    assert.ok(e.message.includes(messagePart), `${hex(data)}: expected "${messagePart}" in "${e.message}"`);
    assert.is(e.offset, offset, `${hex(data)}: offset in "${e.message}"`);
    assert.ok(e.message.includes(`offset ${offset}`), `${hex(data)}: message names the offset: "${e.message}"`);
    return;
  }
  assert.unreachable(`${hex(data)} should be refused (${messagePart})`);
}

const vectors = suite('cbor: RFC 8949 Appendix A');

vectors('deterministic vectors encode to exactly the listed bytes and decode strictly', () => {
  for (const [vector, value, mode] of appendixA) {
    if (mode !== 'both') continue;
    assert.is(hex(encode(value)), vector, `encode ${vector}`);
    const decoded = decode(unhex(vector));
    assertSameValue(decoded, value, `decode ${vector}`);
    if (typeof value !== 'number') assert.equal(decoded, value, `decode ${vector}`);
  }
});

vectors('non-deterministic vectors decode with strict: false and are refused by strict mode', () => {
  for (const [vector, value, mode] of appendixA) {
    if (mode !== 'decode') continue;
    assertSameValue(decode(unhex(vector), { strict: false }), value, `decode ${vector}`);
    assert.throws(
      () => decode(unhex(vector)),
      (err: Error) => err instanceof CborError && /strict: false/.test(err.message),
      `strict ${vector}`,
    );
    // What encode() writes instead is accepted strictly.
    assertSameValue(decode(encode(value)), value, `re-encoded ${vector}`);
  }
});

vectors('integer and indefinite-length vectors the codec refuses say why', () => {
  for (const [vector, message, offset] of appendixARefused) rejects(vector, message, offset, { strict: false });
});

vectors('the limits of exact integers: +-2^53', () => {
  assert.is(hex(encode(2 ** 53)), '1b0020000000000000');
  assert.is(decode(unhex('1b0020000000000000')), 2 ** 53);
  assert.is(hex(encode(-(2 ** 53))), '3b001fffffffffffff');
  assert.is(decode(unhex('3b001fffffffffffff')), -(2 ** 53));
  rejects('1b0020000000000001', 'beyond 2^53', 0);
  rejects('3b0020000000000000', 'beyond -2^53', 0);
  // Beyond 2^53 a number is not an exact integer any more: it is written as a float.
  assert.is(hex(encode(2 ** 60)), 'fa5d800000');
  assert.is(hex(encode(2 ** 32)), '1b0000000100000000');
  assert.is(hex(encode(2 ** 32 - 1)), '1affffffff');
  assert.is(decode(unhex('1affffffff')), 2 ** 32 - 1);
});

vectors('map keys are sorted by their encoded bytes, whatever the insertion order', () => {
  // Shorter encodings sort first: 10 (0x0a), 100 (0x1864), -1 (0x20), "z" (0x617a), "aa" (0x626161).
  const forward = new CborMap([
    [10, 1],
    [100, 2],
    [-1, 3],
    ['z', 4],
    ['aa', 5],
    [false, 6],
  ]);
  const backward = new CborMap(forward.entries.slice().reverse());
  assert.is(hex(encode(forward)), 'a6' + '0a01' + '186402' + '2003' + '617a04' + '62616105' + 'f406');
  assert.is(hex(encode(backward)), hex(encode(forward)));
  assert.is(hex(encode({ b: 1, a: 2, aa: 3 })), hex(encode({ aa: 3, a: 2, b: 1 })));
  assert.is(hex(encode({ b: 1, a: 2, aa: 3 })), 'a3' + '616102' + '616201' + '62616103');
});

vectors('a decoded "__proto__" key is an own key, not a prototype change', () => {
  const decoded = decode(unhex('a1 69 5f5f70726f746f5f5f a1 6161 01')) as { [k: string]: CborValue };
  assert.is(Object.getPrototypeOf(decoded), Object.prototype);
  assert.equal(Object.keys(decoded), ['__proto__']);
  assert.equal(Object.getOwnPropertyDescriptor(decoded, '__proto__')?.value, { a: 1 });
  assert.is((decoded as { a?: unknown }).a, undefined);
});

vectors('maps decode to plain objects when every key is text and to CborMap otherwise', () => {
  assert.equal(decode(unhex('a1 6161 01')), { a: 1 });
  const mixed = decode(unhex('a2 01 02 6161 03'));
  assert.instance(mixed, CborMap);
  assert.is((mixed as CborMap).get(1), 2);
  assert.is((mixed as CborMap).get('a'), 3);
  assert.is((mixed as CborMap).get(7), undefined);
});

vectors('text of U+0000..U+00FF round-trips through UTF-8', () => {
  for (const text of ['', 'ascii', 'caf\u00e9', 'a\u0000b', '\u0080\u00ff']) {
    assert.is(decode(encode(text)), text);
  }
  assert.is(hex(encode('\u00ff')), '62c3bf');
});

vectors('negative zero is written as 0 and refused when decoded: Espruino has none', () => {
  assert.is(hex(encode(-0)), '00');
  for (const input of ['f9 8000', 'fa 80000000', 'fb 8000000000000000']) {
    rejects(input, 'negative zero', 0);
    rejects(input, 'negative zero', 0, { strict: false });
  }
  rejects('82 01 f9 8000', 'the meter has no negative zero', 2);
});

// ---------------------------------------------------------------------------------------------------
// Round-trips against cbor-x over a generated set of values.

/** A small deterministic PRNG (mulberry32), so a failure reproduces. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generator(seed: number) {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: T[]) => items[int(items.length)];
  const float32 = new Float32Array(1);
  const numbers: Array<() => number> = [
    () => int(24),
    () => int(256),
    () => int(65536),
    () => int(2 ** 32),
    () => int(2 ** 53),
    () => -1 - int(2 ** 32),
    () => -int(2 ** 53),
    () => pick([2 ** 53, -(2 ** 53), 2 ** 32, 2 ** 32 - 1, 65535, 65536, 255, 256, 23, 24, -24, -25]),
    () => (random() - 0.5) * 10 ** int(20),
    () => ((float32[0] = (random() - 0.5) * 1000), float32[0]),
    () => int(2048) / pick([2, 4, 8, 1024]) + 0.5, // exact in half precision when small
    () => pick([-0, Infinity, -Infinity, NaN, 1.1, 2 ** -24, 65504.5, 1e300, -1e-300]),
    () => ((int(2) ? -1 : 1) * (1 + int(1024) / 1024)) / 2 ** int(24), // every half-precision significand, normal and subnormal
  ];
  const text = () => {
    const alphabet = ['a', 'Z', '0', ' ', '"', '\u00e9', '\u00ff', '\u0080', '\u0000'];
    let s = '';
    for (let i = int(12); i > 0; i--) s += pick(alphabet);
    return s;
  };
  const value = (depth: number): CborValue => {
    const kind = int(depth > 3 ? 6 : 10);
    switch (kind) {
      case 0:
      case 1:
        return pick(numbers)();
      case 2:
        return text();
      case 3:
        return new Uint8Array(Array.from({ length: int(20) }, () => int(256)));
      case 4:
        return pick([true, false, null, undefined]);
      case 5:
        return pick(numbers)();
      case 6:
        return Array.from({ length: int(5) }, () => value(depth + 1));
      case 7: {
        const object: { [k: string]: CborValue } = {};
        for (let i = int(5); i > 0; i--) object[text()] = value(depth + 1);
        return object;
      }
      case 8: {
        const entries: Array<[CborValue, CborValue]> = [];
        const used = new Set<number>();
        for (let i = int(5); i > 0; i--) {
          const key = int(2) ? int(1000) : -1 - int(1000);
          if (used.has(key)) continue;
          used.add(key);
          entries.push([key, value(depth + 1)]);
        }
        // An empty map decodes as {}, so give the integer-keyed map at least one key.
        if (entries.length === 0) entries.push([int(1000), value(depth + 1)]);
        return new CborMap(entries);
      }
      default:
        // Tags cbor-x gives no meaning to (it interprets dates, bignums, typed arrays, records, packed
        // references 216..255 and 27647..32767 ...).
        return new Tagged(1000 + int(26000), value(depth + 1));
    }
  };
  return () => value(0);
}

/** Our data model -> what cbor-x encodes the same way. */
function toCborX(value: CborValue): unknown {
  if (Array.isArray(value)) return value.map(toCborX);
  if (value instanceof CborMap) return new Map(value.entries.map(([k, v]) => [toCborX(k), toCborX(v)]));
  if (value instanceof Tagged) return new cborx.Tag(toCborX(value.value), value.tag);
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCborX(v as CborValue)]));
  return value;
}

/** cbor-x writes -0 as the integer 0: its data model has no negative zero. */
function withoutNegativeZero(value: CborValue): CborValue {
  if (value === 0) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (value instanceof CborMap)
    return new CborMap(value.entries.map(([k, v]) => [withoutNegativeZero(k), withoutNegativeZero(v)]));
  if (value instanceof Tagged) return new Tagged(value.tag, withoutNegativeZero(value.value));
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array) && !(value instanceof CborSimple)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutNegativeZero(v as CborValue)]));
  }
  return value;
}

/** What cbor-x decoded (maps as Map, tags as Tag) -> our data model. */
function fromCborX(value: unknown): CborValue {
  if (Array.isArray(value)) return value.map(fromCborX);
  if (value instanceof Map) {
    const entries = [...value.entries()].map(([k, v]) => [fromCborX(k), fromCborX(v)] as [CborValue, CborValue]);
    if (entries.length > 0 && entries.some(([k]) => typeof k !== 'string')) return new CborMap(entries);
    return Object.fromEntries(entries);
  }
  if (value instanceof cborx.Tag) return new Tagged(value.tag, fromCborX(value.value));
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (typeof value === 'bigint') throw new Error(`cbor-x gave a bigint ${value}`);
  return value as CborValue;
}

const roundTrip = suite('cbor: round-trips with cbor-x');
const COUNT = 3000;

roundTrip('cbor-x encodes, we decode (strict: false: cbor-x writes float64 and insertion-ordered keys)', () => {
  const next = generator(1);
  const encoder = new cborx.Encoder({
    tagUint8Array: false,
    useRecords: false,
    pack: false,
    useTag259ForMaps: false,
  } as cborx.Options);
  for (let i = 0; i < COUNT; i++) {
    const value = next();
    const theirs = encoder.encode(toCborX(value));
    const ours = decode(new Uint8Array(theirs), { strict: false });
    assertSameValue(ours, withoutNegativeZero(value), `value #${i}: cbor-x bytes ${theirs.toString('hex')}`);
  }
});

roundTrip('we encode, cbor-x decodes, and strict decoding takes our bytes back', () => {
  const next = generator(2);
  const decoder = new cborx.Decoder({ mapsAsObjects: false, int64AsNumber: true } as cborx.Options);
  for (let i = 0; i < COUNT; i++) {
    const value = next();
    const ours = encode(value);
    const theirs = fromCborX(decoder.decode(Buffer.from(ours)));
    assertSameValue(theirs, value, `value #${i}: our bytes ${hex(ours)}`);
    assertSameValue(decode(ours), value, `value #${i}: strict decode of ${hex(ours)}`);
    assert.is(hex(encode(decode(ours))), hex(ours), `value #${i}: decode then encode is the identity`);
  }
});

// ---------------------------------------------------------------------------------------------------
// Malformed input: every class refused with CborError, its offset and what was wrong.

const malformed = suite('cbor: malformed input');

malformed('truncated input', () => {
  rejects('', 'truncated input: 1 more byte(s) needed for an initial byte, 0 left, in the item at offset 0', 0);
  rejects('19 01', 'truncated input: 2 more byte(s) needed for the 2-byte argument of an unsigned integer, 1 left', 0);
  rejects('1b 00 00 00', '8 more byte(s) needed for the 8-byte argument', 0);
  rejects('82 01 19 01', 'truncated input', 2);
  rejects('f9 7e', 'needed for a 16-bit float, 1 left', 0);
  rejects('fb 3f f1 99', 'needed for a 64-bit float', 0);
  rejects('f8', 'needed for the simple value byte', 0);
  rejects('c1', 'needed for an initial byte', 1);
});

malformed('lengths beyond the input', () => {
  rejects('62 61', 'text string of length 2 runs past the end of the input (1 byte(s) left)', 0);
  rejects('5a ffffffff 00', 'byte string of length 4294967295 runs past the end', 0);
  rejects('82 01', 'array of 2 items runs past the end', 0);
  rejects('9b 0000000100000000 00', 'array of 4294967296 items runs past the end', 0);
  rejects('ba 00010000 0000', 'map of 65536 pairs runs past the end', 0);
  rejects('a1 01', 'map of 1 pairs runs past the end', 0);
});

malformed('trailing bytes', () => {
  rejects('01 02', '1 trailing byte(s) after the item that ends at offset 1', 1);
  rejects('8100 0000', '2 trailing byte(s)', 2);
});

malformed('indefinite lengths and stray break codes', () => {
  rejects('5f ff', 'indefinite-length byte string is not allowed', 0);
  rejects('7f ff', 'indefinite-length text string', 0);
  rejects('9f ff', 'indefinite-length array', 0);
  rejects('bf ff', 'indefinite-length map', 0);
  rejects('ff', 'unexpected break code 0xff', 0);
  rejects('82 01 ff', 'unexpected break code 0xff', 2);
  rejects('1f', 'additional information 31 is not valid for an unsigned integer', 0);
  rejects('3f', 'additional information 31 is not valid for a negative integer', 0);
  rejects('df 00', 'additional information 31 is not valid for a tag', 0);
});

malformed('reserved additional information 28..30', () => {
  for (const initial of ['1c', '3d', '5e', '7c', '9d', 'be', 'dc', 'fc', 'fd', 'fe']) {
    rejects(initial, `reserved additional information ${parseInt(initial, 16) & 31} in initial byte 0x${initial}`, 0, {
      strict: false,
    });
  }
  rejects('82 01 1d', 'reserved additional information 29', 2);
});

malformed('non-shortest encodings are refused in strict mode and accepted otherwise', () => {
  const cases: Array<[string, string, CborValue, number?]> = [
    ['18 17', 'non-shortest encoding: unsigned integer 23 written with 1 extra byte(s)', 23],
    ['19 00ff', 'unsigned integer 255 written with 2', 255],
    ['1a 0000ffff', 'unsigned integer 65535 written with 4', 65535],
    ['1b 00000000ffffffff', 'unsigned integer 4294967295 written with 8', 4294967295],
    ['38 00', 'negative integer 0 written with 1', -1],
    ['58 01 00', 'byte string 1 written with 1', bytes(0)],
    ['79 0001 61', 'text string 1 written with 2', 'a'],
    ['99 0001 01', 'array 1 written with 2', [1]],
    ['b9 0001 6161 01', 'map 1 written with 2', { a: 1 }],
    ['d8 01 00', 'tag 1 written with 1', new Tagged(1, 0)],
    ['fa 3fc00000', 'float 1.5 written in 4 bytes fits in 2', 1.5],
    ['fb 3ff8000000000000', 'float 1.5 written in 8 bytes fits in 2', 1.5],
    ['fb 40f86a0800000000', 'float 100000.5 written in 8 bytes fits in 4', 100000.5],
    ['f9 3c00', 'integer-valued float 1', 1],
    ['fb 4340000000000000', 'integer-valued float 9007199254740992', 2 ** 53],
    ['f9 7e01', 'non-deterministic NaN', NaN],
    ['fa 7fc00000', 'non-deterministic NaN', NaN],
    [
      'a2 02 00 01 00',
      'map key 1 is out of order',
      new CborMap([
        [2, 0],
        [1, 0],
      ]),
      3,
    ],
    ['a2 6162 00 6161 00', 'map key "a" is out of order', { b: 0, a: 0 }, 4],
    // Length-first: the 1-char key "b" sorts before the 2-char key "aa".
    ['a2 626161 00 6162 00', 'map key "b" is out of order', { aa: 0, b: 0 }, 5],
  ];
  for (const [input, message, value, offset = 0] of cases) {
    rejects(input, message, offset);
    assertSameValue(decode(unhex(input), { strict: false }), value, `${input} with strict: false`);
  }
});

malformed('nesting deeper than the limit', () => {
  const nested = (levels: number) => unhex('81'.repeat(levels) + '00');
  assert.equal(decode(nested(16)), JSON.parse('['.repeat(16) + '0' + ']'.repeat(16)));
  rejects(nested(17), 'nesting deeper than 16 levels', 17);
  rejects(nested(4), 'nesting deeper than 3 levels', 4, { maxDepth: 3 });
  rejects(unhex('a1 01'.repeat(20) + '00'), 'nesting deeper than 16 levels', 33); // the 17th map's key
  rejects(unhex('c1'.repeat(20) + '00'), 'nesting deeper than 16 levels', 17);
  // A hostile input cannot make the decoder recurse without bound.
  rejects(unhex('81'.repeat(100000) + '00'), 'nesting deeper than 16 levels', 17);
});

malformed('text above U+00FF, which the meter cannot hold', () => {
  rejects('62 c4 80', 'text string has the character U+0100 at offset 1', 1);
  rejects('82 61 61 63 e2 82 ac', "the character U+20ac at offset 4: the meter's strings are 8-bit", 4);
  rejects('64 f0 9f 98 80', 'U+01f600', 1, { strict: false });
});

malformed('invalid UTF-8 in text strings', () => {
  rejects('61 ff', 'invalid UTF-8 in text string at offset 1: byte 0xff cannot start a character', 1);
  rejects('61 80', 'byte 0x80 cannot start a character', 1);
  rejects('62 c0 80', 'byte 0xc0 cannot start a character', 1); // overlong NUL
  rejects('63 e0 80 80', 'byte 0x80 is not a valid continuation', 2); // overlong
  rejects('63 ed a0 80', 'byte 0xa0 is not a valid continuation', 2); // surrogate U+D800
  rejects('64 f4 90 80 80', 'byte 0x90 is not a valid continuation', 2); // beyond U+10FFFF
  rejects('62 c3 41', 'byte 0x41 is not a valid continuation', 2);
  rejects('61 c3', 'the character is cut off by the end of the string', 1);
  rejects('82 61 61 62 e6 b0', 'the character is cut off', 4);
});

malformed('duplicate map keys, in strict and non-strict mode', () => {
  rejects('a2 01 00 01 00', 'duplicate map key 1', 3);
  rejects('a2 6161 00 6161 01', 'duplicate map key "a"', 4);
  rejects('a2 01 00 01 00', 'duplicate map key 1', 3, { strict: false });
  rejects('a2 6162 00 6162 01', 'duplicate map key "b"', 4, { strict: false });
  // The same key written two ways is still the same key.
  rejects('a2 01 00 1801 00', 'duplicate map key 1', 3, { strict: false });
  rejects('a2 f93e00 00 fb3ff8000000000000 00', 'duplicate map key 1.5', 5, { strict: false });
});

malformed('two-byte simple values below 32 are not well-formed', () => {
  rejects('f8 10', 'simple value 16 in two bytes is not well-formed', 0);
  rejects('f8 1f', 'simple value 31 in two bytes', 0, { strict: false });
});

malformed('decode refuses a non-byte input', () => {
  assert.throws(() => decode(undefined as unknown as Uint8Array), /expects a Uint8Array/);
});

const encodeErrors = suite('cbor: values encode() refuses');

encodeErrors('what has no CBOR form', () => {
  const refuses = (value: unknown, pattern: RegExp) =>
    assert.throws(
      () => encode(value as CborValue),
      (err: Error) => err instanceof CborError && err.offset === -1 && pattern.test(err.message),
      String(value),
    );
  refuses(() => 1, /cannot encode a function/);
  refuses(new Date(0), /cannot encode an instance of a class/);
  refuses(Symbol('s'), /cannot encode a symbol/);
  refuses(10n, /cannot encode a bigint/);
  refuses('a\u0100b', /character U\+0100 at index 1: the meter's strings are 8-bit/);
  refuses('\u20ac', /character U\+20ac at index 0/);
  refuses('a\ud800b', /character U\+d800 at index 1/);
  refuses(
    new CborMap([
      [1, 'a'],
      [1, 'b'],
    ]),
    /the key 1 twice/,
  );
  refuses(
    new CborMap([
      ['k', 1],
      ['k', 2],
    ]),
    /the key "k" twice/,
  );
  const cyclic: CborValue[] = [];
  cyclic.push(cyclic);
  refuses(cyclic, /nesting deeper than 16 levels \(a cyclic structure/);
  refuses(new CborSimple(21), /cannot encode simple value 21/);
  refuses(new CborSimple(24), /cannot encode simple value 24/);
  refuses(new Tagged(-1, 0), /cannot encode tag -1/);
  refuses(new Tagged(1.5, 0), /cannot encode tag 1.5/);
});

encodeErrors('maxDepth can be raised for deeper data', () => {
  let deep: CborValue = 0;
  for (let i = 0; i < 20; i++) deep = [deep];
  assert.throws(() => encode(deep), /nesting deeper than 16/);
  const bytesOut = encode(deep, { maxDepth: 20 });
  assert.equal(decode(bytesOut, { maxDepth: 20 }), deep);
});

vectors.run();
roundTrip.run();
malformed.run();
encodeErrors.run();
