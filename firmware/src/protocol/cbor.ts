// Deterministic CBOR (RFC 8949 section 4.2.1), written once for the meter (Espruino 2v29) and the host tools.
//
// Data model, JS value <-> CBOR item:
//   number        integer-valued and within +-2^53 -> major type 0/1 (shortest head); any other number
//                 (fractions, NaN, +-Infinity, |n| > 2^53) -> the shortest float of 16/32/64 bits that
//                 holds it exactly; NaN is always f9 7e00. Negative zero is written as the integer 0 and
//                 refused when decoding: Espruino has no negative zero, so the device could not keep it.
//   string        text string of the characters U+0000..U+00FF (UTF-8: one or two bytes each). Espruino's
//                 strings are 8-bit, so the device cannot hold any other character: encode() and decode()
//                 refuse text beyond U+00FF on both sides, so that device and host never differ.
//   Uint8Array    byte string
//   Array         array
//   plain object  map with text-string keys (own enumerable keys)
//   CborMap       map with keys of any type (e.g. integer keys): an ordered list of [key, value] pairs
//   Tagged        tag {tag, value}
//   true/false/null/undefined, and CborSimple for the other simple values
// Decoding a map gives a plain object when every key is a text string and a CborMap otherwise.
//
// encode() always writes the deterministic form: shortest heads, definite lengths, map keys sorted by
// the bytes of their encoding, no duplicate keys. decode() accepts only well-formed, definite-length
// input and, in strict mode (the default), only the exact bytes encode() would have written, so that
// decode(bytes) then encode() gives the same bytes back. Every refusal is a CborError naming the offset.
//
// Device-safe: no big-integer type, no text encoder, no ES2015 collections, no spread; 64-bit heads are split into two 32-bit
// words with division; no Math.pow (inexact on Espruino): floats are built from their bits; copies of byte
// ranges are copyBytes(), never a typed array's slice() (a plain Array on Espruino).

import { copyBytes } from './crypto/bytes.ts';
import { quote } from './field-problems.ts';
import { VeilgridError } from './veilgrid-error.ts';

/** Largest magnitude an integer may have to survive as a JS number (2^53). */
const MAX_INTEGER = 9007199254740992;
const TWO_POW_32 = 4294967296;
export const DEFAULT_MAX_DEPTH = 16;

export class CborError extends VeilgridError {
  /** Byte offset in the input where the problem is, or -1 for an encoding error. */
  declare readonly offset: number;
  constructor(message: string, offset: number) {
    super('CborError', 'cbor', message);
    this.offset = offset;
  }
}

/** A tagged item, e.g. tag 1 (epoch time) around a number. */
export class Tagged {
  declare readonly tag: number;
  declare readonly value: CborValue;
  constructor(tag: number, value: CborValue) {
    this.tag = tag;
    this.value = value;
  }
}

/** A simple value other than false/true/null/undefined: 0..19 or 32..255. */
export class CborSimple {
  declare readonly value: number;
  constructor(value: number) {
    this.value = value;
  }
}

/** A map whose keys need not be text strings. Entry order does not matter: encode() sorts the keys. */
export class CborMap {
  declare readonly entries: Array<[CborValue, CborValue]>;
  constructor(entries: Array<[CborValue, CborValue]>) {
    this.entries = entries;
  }
  /** The value stored under a key that is a number or a string, or undefined. */
  get(key: number | string): CborValue {
    for (let i = 0; i < this.entries.length; i++) {
      if (this.entries[i][0] === key) return this.entries[i][1];
    }
    return undefined;
  }
}

export type CborValue =
  | number
  | string
  | boolean
  | null
  | undefined
  | Uint8Array
  | CborValue[]
  | CborObject
  | CborMap
  | Tagged
  | CborSimple;

export interface CborObject {
  [key: string]: CborValue;
}

export interface CborOptions {
  /** Deepest nesting of arrays, maps and tags accepted (default 16): bounds recursion on the device. */
  maxDepth?: number;
}

export interface DecodeOptions extends CborOptions {
  /**
   * true (default): accept only the deterministic encoding (shortest integers, lengths and floats,
   * integer-valued numbers as integers, sorted map keys). false: also accept other well-formed definite-
   * length encodings, e.g. from encoders that write float64 or keep map keys in insertion order.
   */
  strict?: boolean;
}

// ---------------------------------------------------------------------------------------------------
// UTF-8

/** The highest character an Espruino string holds: its strings are 8-bit. */
const MAX_DEVICE_CHAR = 0xff;

/**
 * UTF-8 bytes of a string of characters U+0000..U+00FF; throws CborError naming the first other one
 * (Espruino would have cut it to its low 8 bits, so the device could not write what the host does).
 */
export function encodeUtf8(text: string): Uint8Array {
  let size = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > MAX_DEVICE_CHAR) {
      throw new CborError(
        'text has the character U+' +
          hex4(c) +
          ' at index ' +
          i +
          ": the meter's strings are 8-bit, so CBOR text is limited to U+0000..U+00FF (send other text as UTF-8 in a byte string)",
        -1,
      );
    }
    size += c < 0x80 ? 1 : 2;
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      out[o++] = c;
    } else {
      out[o++] = 0xc0 | (c >> 6);
      out[o++] = 0x80 | (c & 0x3f);
    }
  }
  return out;
}

/**
 * The string held as strict UTF-8 in bytes[start..end): no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequences, and (see encodeUtf8) no character above U+00FF. Throws CborError
 * with the offset of the first bad byte.
 */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): string {
  let out = '';
  let i = start;
  while (i < end) {
    const b0 = bytes[i];
    if (b0 < 0x80) {
      out += String.fromCharCode(b0);
      i++;
      continue;
    }
    let extra: number;
    let low = 0x80;
    let high = 0xbf;
    let cp: number;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      extra = 1;
      cp = b0 & 0x1f;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      extra = 2;
      cp = b0 & 0x0f;
      if (b0 === 0xe0) low = 0xa0; // overlong below U+0800
      if (b0 === 0xed) high = 0x9f; // U+D800..DFFF are surrogates
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      extra = 3;
      cp = b0 & 0x07;
      if (b0 === 0xf0) low = 0x90; // overlong below U+10000
      if (b0 === 0xf4) high = 0x8f; // above U+10FFFF
    } else {
      throw new CborError(
        'invalid UTF-8 in text string at offset ' + i + ': byte 0x' + hex2(b0) + ' cannot start a character',
        i,
      );
    }
    if (i + extra >= end) {
      throw new CborError(
        'invalid UTF-8 in text string at offset ' + i + ': the character is cut off by the end of the string',
        i,
      );
    }
    for (let k = 1; k <= extra; k++) {
      const b = bytes[i + k];
      if (b < (k === 1 ? low : 0x80) || b > (k === 1 ? high : 0xbf)) {
        throw new CborError(
          'invalid UTF-8 in text string at offset ' +
            (i + k) +
            ': byte 0x' +
            hex2(b) +
            ' is not a valid continuation (overlong form, surrogate or beyond U+10FFFF)',
          i + k,
        );
      }
      cp = (cp << 6) | (b & 0x3f);
    }
    if (cp > MAX_DEVICE_CHAR) {
      throw new CborError(
        'text string has the character U+' +
          (cp > 0xffff ? hex2(cp >> 16) : '') +
          hex4(cp & 0xffff) +
          ' at offset ' +
          i +
          ": the meter's strings are 8-bit and hold only U+0000..U+00FF (send other text as UTF-8 in a byte string)",
        i,
      );
    }
    out += String.fromCharCode(cp);
    i += extra + 1;
  }
  return out;
}

function hex2(b: number): string {
  return (b < 16 ? '0' : '') + b.toString(16);
}

function hex4(n: number): string {
  return hex2(n >> 8) + hex2(n & 0xff);
}

// ---------------------------------------------------------------------------------------------------
// Floats

const floatView = new DataView(new ArrayBuffer(8));
const float32 = new Float32Array(1);

/**
 * The IEEE half-precision bits of the float32 held in floatView bytes 0..3, or -1 if half precision
 * cannot hold it exactly. Reads bytes rather than a Uint32 so no intermediate exceeds 31 bits.
 */
function halfFromSingle(): number {
  const b0 = floatView.getUint8(0);
  const b1 = floatView.getUint8(1);
  const sign = (b0 & 0x80) << 8;
  const exponent = ((b0 & 0x7f) << 1) | (b1 >> 7);
  const mantissa = ((b1 & 0x7f) << 16) | (floatView.getUint8(2) << 8) | floatView.getUint8(3);
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : -1;
  // Zero fits; float32 subnormals are far below the smallest half subnormal.
  if (exponent === 0) return mantissa === 0 ? sign : -1;
  const e = exponent - 127;
  if (e > 15) return -1;
  if (e >= -14) return (mantissa & 0x1fff) !== 0 ? -1 : sign | ((e + 15) << 10) | (mantissa >> 13);
  if (e < -24) return -1;
  // Half subnormal: value = m * 2^-24 with m = (1.mantissa) * 2^(e+24), i.e. the 24-bit significand >> (-e-1).
  const shift = -e - 1;
  const significand = mantissa | 0x800000;
  return (significand & ((1 << shift) - 1)) !== 0 ? -1 : sign | (significand >> shift);
}

/**
 * The value of IEEE half-precision bits, widened exactly to the float32 with the same value and read
 * back through floatView: Espruino's Math.pow(2, n) is off in the last bits for most n, so no powers of
 * two are computed.
 */
function halfToNumber(half: number): number {
  let exponent = (half >> 10) & 0x1f;
  let mantissa = half & 0x3ff;
  let exponent32: number;
  if (exponent === 31) exponent32 = 0xff;
  else if (exponent !== 0)
    exponent32 = exponent + 112; // rebias 15 -> 127
  else if (mantissa === 0) exponent32 = 0;
  else {
    // Half subnormal m * 2^-24: shift the leading 1 up to the hidden-bit position of a normal number.
    exponent = 1;
    while ((mantissa & 0x400) === 0) {
      mantissa <<= 1;
      exponent--;
    }
    mantissa &= 0x3ff;
    exponent32 = exponent + 112;
  }
  floatView.setUint8(0, ((half >> 8) & 0x80) | (exponent32 >> 1));
  floatView.setUint8(1, ((exponent32 & 1) << 7) | (mantissa >> 3));
  floatView.setUint8(2, (mantissa & 7) << 5);
  floatView.setUint8(3, 0);
  return floatView.getFloat32(0);
}

/** True for negative zero, which Espruino does not have (on the device this is never true). */
function isNegativeZero(n: number): boolean {
  return n === 0 && 1 / n < 0;
}

/** True when a number is written as a CBOR integer rather than a float (negative zero included: as 0). */
function isCborInteger(n: number): boolean {
  return n === Math.floor(n) && n <= MAX_INTEGER && n >= -MAX_INTEGER;
}

/** Byte width (2, 4 or 8) of the shortest float that holds n exactly. */
function shortestFloatWidth(n: number): number {
  // biome-ignore lint/suspicious/noSelfCompare: only NaN is unequal to itself
  if (n !== n) return 2;
  float32[0] = n;
  if (float32[0] !== n) return 8;
  floatView.setFloat32(0, n);
  return halfFromSingle() >= 0 ? 2 : 4;
}

// ---------------------------------------------------------------------------------------------------
// Encoder

/** A growable byte buffer. */
class ByteWriter {
  declare buf: Uint8Array;
  declare length: number;
  constructor() {
    this.buf = new Uint8Array(64);
    this.length = 0;
  }
  reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf);
    this.buf = next;
  }
  byte(b: number): void {
    this.reserve(1);
    this.buf[this.length++] = b;
  }
  bytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.buf.set(data, this.length);
    this.length += data.length;
  }
  uint32(n: number): void {
    // Division instead of shifts: n may be >= 2^31, where Espruino's int32 shifts are not safe to rely on.
    const top = Math.floor(n / 16777216);
    const rest = n - top * 16777216;
    this.reserve(4);
    this.buf[this.length++] = top;
    this.buf[this.length++] = rest >> 16;
    this.buf[this.length++] = (rest >> 8) & 0xff;
    this.buf[this.length++] = rest & 0xff;
  }
  result(): Uint8Array {
    return copyBytes(this.buf, 0, this.length);
  }
}

/** Writes the initial byte and argument n (0 <= n <= 2^53) of a major type in the shortest form. */
function writeHead(w: ByteWriter, major: number, n: number): void {
  const mt = major << 5;
  if (n < 24) {
    w.byte(mt | n);
  } else if (n < 0x100) {
    w.byte(mt | 24);
    w.byte(n);
  } else if (n < 0x10000) {
    w.byte(mt | 25);
    w.byte(n >> 8);
    w.byte(n & 0xff);
  } else if (n < TWO_POW_32) {
    w.byte(mt | 26);
    w.uint32(n);
  } else {
    const hi = Math.floor(n / TWO_POW_32);
    w.byte(mt | 27);
    w.uint32(hi);
    w.uint32(n - hi * TWO_POW_32);
  }
}

function writeFloat(w: ByteWriter, n: number): void {
  const width = shortestFloatWidth(n);
  // biome-ignore lint/suspicious/noSelfCompare: only NaN is unequal to itself
  if (n !== n) {
    w.byte(0xf9);
    w.byte(0x7e);
    w.byte(0x00);
  } else if (width === 2) {
    floatView.setFloat32(0, n);
    const half = halfFromSingle();
    w.byte(0xf9);
    w.byte(half >> 8);
    w.byte(half & 0xff);
  } else if (width === 4) {
    floatView.setFloat32(0, n);
    w.byte(0xfa);
    for (let i = 0; i < 4; i++) w.byte(floatView.getUint8(i));
  } else {
    floatView.setFloat64(0, n);
    w.byte(0xfb);
    for (let i = 0; i < 8; i++) w.byte(floatView.getUint8(i));
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

interface EncodedEntry {
  key: Uint8Array;
  value: CborValue;
}

function describeKey(key: CborValue): string {
  return typeof key === 'string' ? quote(key.length > 40 ? key.substring(0, 40) + '...' : key) : String(key);
}

function writeMap(w: ByteWriter, entries: Array<[CborValue, CborValue]>, depth: number, maxDepth: number): void {
  const sorted: EncodedEntry[] = [];
  for (let i = 0; i < entries.length; i++) {
    const keyWriter = new ByteWriter();
    writeItem(keyWriter, entries[i][0], depth + 1, maxDepth);
    sorted.push({ key: keyWriter.result(), value: entries[i][1] });
  }
  sorted.sort((a, b) => compareBytes(a.key, b.key));
  for (let i = 1; i < sorted.length; i++) {
    if (compareBytes(sorted[i - 1].key, sorted[i].key) === 0) {
      throw new CborError(
        'cannot encode a map with the key ' +
          describeKey(decode(sorted[i].key)) +
          ' twice: CBOR map keys must be unique',
        -1,
      );
    }
  }
  writeHead(w, 5, sorted.length);
  for (let i = 0; i < sorted.length; i++) {
    w.bytes(sorted[i].key);
    writeItem(w, sorted[i].value, depth + 1, maxDepth);
  }
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function writeItem(w: ByteWriter, value: CborValue, depth: number, maxDepth: number): void {
  if (depth > maxDepth) {
    throw new CborError(
      'cannot encode: nesting deeper than ' + maxDepth + ' levels (a cyclic structure, or raise maxDepth)',
      -1,
    );
  }
  if (typeof value === 'number') {
    if (isCborInteger(value)) {
      if (value >= 0) writeHead(w, 0, value);
      else writeHead(w, 1, -1 - value);
    } else {
      writeFloat(w, value);
    }
  } else if (typeof value === 'string') {
    const utf8 = encodeUtf8(value);
    writeHead(w, 3, utf8.length);
    w.bytes(utf8);
  } else if (value === false) {
    w.byte(0xf4);
  } else if (value === true) {
    w.byte(0xf5);
  } else if (value === null) {
    w.byte(0xf6);
  } else if (value === undefined) {
    w.byte(0xf7);
  } else if (value instanceof Uint8Array) {
    writeHead(w, 2, value.length);
    w.bytes(value);
  } else if (Array.isArray(value)) {
    writeHead(w, 4, value.length);
    for (let i = 0; i < value.length; i++) writeItem(w, value[i], depth + 1, maxDepth);
  } else if (value instanceof CborMap) {
    writeMap(w, value.entries, depth, maxDepth);
  } else if (value instanceof Tagged) {
    if (!isCborInteger(value.tag) || value.tag < 0) {
      throw new CborError('cannot encode tag ' + value.tag + ': a tag number must be an integer from 0 to 2^53', -1);
    }
    writeHead(w, 6, value.tag);
    writeItem(w, value.value, depth + 1, maxDepth);
  } else if (value instanceof CborSimple) {
    const v = value.value;
    if (!(v === Math.floor(v) && ((v >= 0 && v < 20) || (v >= 32 && v < 256)))) {
      throw new CborError(
        'cannot encode simple value ' +
          v +
          ': use 0..19 or 32..255 (20..23 are false/true/null/undefined, 24..31 are reserved)',
        -1,
      );
    }
    if (v < 24) w.byte(0xe0 | v);
    else {
      w.byte(0xf8);
      w.byte(v);
    }
  } else if (typeof value === 'object' && isPlainObject(value)) {
    const keys = Object.keys(value);
    const entries: Array<[CborValue, CborValue]> = [];
    for (let i = 0; i < keys.length; i++) entries.push([keys[i], (value as CborObject)[keys[i]]]);
    writeMap(w, entries, depth, maxDepth);
  } else {
    // Not the class's name: Espruino's functions have no name property.
    const kind = typeof value === 'object' ? 'an instance of a class' : 'a ' + typeof value;
    throw new CborError(
      'cannot encode ' +
        kind +
        ': CBOR values are numbers, strings, booleans, null, undefined, Uint8Array, arrays, plain objects, CborMap, Tagged and CborSimple',
      -1,
    );
  }
}

/** The deterministic CBOR encoding of value (RFC 8949 section 4.2.1). Throws CborError on what it cannot encode. */
export function encode(value: CborValue, options?: CborOptions): Uint8Array {
  const w = new ByteWriter();
  writeItem(w, value, 0, (options && options.maxDepth) ?? DEFAULT_MAX_DEPTH);
  return w.result();
}

// ---------------------------------------------------------------------------------------------------
// Decoder

function withArticle(name: string): string {
  return (name.charAt(0) === 'u' ? 'an ' : 'a ') + name;
}

const MAJOR_NAMES = [
  'unsigned integer',
  'negative integer',
  'byte string',
  'text string',
  'array',
  'map',
  'tag',
  'simple value or float',
];

class Decoder {
  declare readonly bytes: Uint8Array;
  declare readonly strict: boolean;
  declare readonly maxDepth: number;
  declare pos: number;
  constructor(bytes: Uint8Array, strict: boolean, maxDepth: number) {
    this.bytes = bytes;
    this.strict = strict;
    this.maxDepth = maxDepth;
    this.pos = 0;
  }

  fail(message: string, offset: number): never {
    throw new CborError(message + ' at offset ' + offset, offset);
  }

  /** Ensures n more bytes exist for the item that starts at offset start. */
  need(n: number, what: string, start: number): void {
    const left = this.bytes.length - this.pos;
    if (n > left)
      this.fail(
        'truncated input: ' + n + ' more byte(s) needed for ' + what + ', ' + left + ' left, in the item',
        start,
      );
  }

  readUint(size: number): number {
    let n = 0;
    for (let i = 0; i < size; i++) n = n * 256 + this.bytes[this.pos++];
    return n;
  }

  nonShortest(what: string, value: number, size: number, start: number): never {
    return this.fail(
      'non-shortest encoding: ' +
        what +
        ' ' +
        value +
        ' written with ' +
        size +
        ' extra byte(s) (deterministic CBOR uses the shortest form; decode with strict: false to accept it)',
      start,
    );
  }

  /** The argument of a head with additional information ai (major types 0..6). */
  argument(major: number, ai: number, start: number): number {
    if (ai < 24) return ai;
    const what = MAJOR_NAMES[major];
    if (ai === 24 || ai === 25 || ai === 26) {
      const size = ai === 24 ? 1 : ai === 25 ? 2 : 4;
      this.need(size, 'the ' + size + '-byte argument of ' + withArticle(what), start);
      const n = this.readUint(size);
      const floor = ai === 24 ? 24 : ai === 25 ? 0x100 : 0x10000;
      if (this.strict && n < floor) this.nonShortest(what, n, size, start);
      return n;
    }
    if (ai === 27) {
      this.need(8, 'the 8-byte argument of ' + withArticle(what), start);
      const hi = this.readUint(4);
      const lo = this.readUint(4);
      if (hi >= 0x200000 && !(hi === 0x200000 && lo === 0)) {
        this.fail(
          'argument 0x' +
            hex8(hi) +
            hex8(lo) +
            ' of ' +
            withArticle(what) +
            ' is beyond 2^53, which a JS number cannot hold exactly',
          start,
        );
      }
      const n = hi * TWO_POW_32 + lo;
      if (this.strict && hi === 0) this.nonShortest(what, n, 8, start);
      return n;
    }
    if (ai === 31) {
      if (major >= 2 && major <= 5) {
        this.fail('indefinite-length ' + what + ' is not allowed (deterministic CBOR uses definite lengths)', start);
      }
      this.fail('additional information 31 is not valid for ' + withArticle(what) + ' (not well-formed)', start);
    }
    return this.fail(
      'reserved additional information ' +
        ai +
        ' in initial byte 0x' +
        hex2(this.bytes[start]) +
        ' (values 28..30 are not well-formed)',
      start,
    );
  }

  item(depth: number): CborValue {
    const start = this.pos;
    if (depth > this.maxDepth) this.fail('nesting deeper than ' + this.maxDepth + ' levels', start);
    this.need(1, 'an initial byte', start);
    const initial = this.bytes[this.pos++];
    const major = initial >> 5;
    const ai = initial & 31;
    if (major === 7) return this.simpleOrFloat(ai, start);
    const n = this.argument(major, ai, start);
    if (major === 0) return n;
    if (major === 1) {
      if (n >= MAX_INTEGER)
        this.fail('negative integer -1-' + n + ' is beyond -2^53, which a JS number cannot hold exactly', start);
      return -1 - n;
    }
    if (major === 2 || major === 3) {
      const left = this.bytes.length - this.pos;
      if (n > left)
        this.fail(
          MAJOR_NAMES[major] + ' of length ' + n + ' runs past the end of the input (' + left + ' byte(s) left)',
          start,
        );
      const from = this.pos;
      this.pos += n;
      return major === 2 ? copyBytes(this.bytes, from, from + n) : decodeUtf8(this.bytes, from, from + n);
    }
    if (major === 4) {
      // Every item takes at least one byte: refuse impossible counts before allocating anything.
      if (n > this.bytes.length - this.pos)
        this.fail(
          'array of ' +
            n +
            ' items runs past the end of the input (' +
            (this.bytes.length - this.pos) +
            ' byte(s) left)',
          start,
        );
      const out: CborValue[] = [];
      for (let i = 0; i < n; i++) out.push(this.item(depth + 1));
      return out;
    }
    if (major === 5) return this.map(n, depth, start);
    return new Tagged(n, this.item(depth + 1));
  }

  map(count: number, depth: number, start: number): CborValue {
    if (count * 2 > this.bytes.length - this.pos)
      this.fail(
        'map of ' +
          count +
          ' pairs runs past the end of the input (' +
          (this.bytes.length - this.pos) +
          ' byte(s) left)',
        start,
      );
    const entries: Array<[CborValue, CborValue]> = [];
    const seen: { [encodedKey: string]: boolean } = {};
    let previousKey: Uint8Array | undefined;
    let textKeysOnly = true;
    for (let i = 0; i < count; i++) {
      const keyStart = this.pos;
      const key = this.item(depth + 1);
      // In strict mode the key's bytes are already canonical; otherwise compare canonical re-encodings,
      // so that 0x01 and 0x1801 count as the same key.
      const keyBytes = this.strict ? this.bytes.subarray(keyStart, this.pos) : encode(key);
      if (this.strict) {
        if (previousKey) {
          const order = compareBytes(previousKey, keyBytes);
          if (order === 0) this.fail('duplicate map key ' + describeKey(key), keyStart);
          if (order > 0)
            this.fail(
              'map key ' +
                describeKey(key) +
                ' is out of order (deterministic CBOR sorts keys by their encoded bytes; decode with strict: false to accept it)',
              keyStart,
            );
        }
        previousKey = keyBytes;
      } else {
        const id = 'k' + bytesToLatin1(keyBytes);
        if (seen[id]) this.fail('duplicate map key ' + describeKey(key), keyStart);
        seen[id] = true;
      }
      if (typeof key !== 'string') textKeysOnly = false;
      entries.push([key, this.item(depth + 1)]);
    }
    if (!textKeysOnly) return new CborMap(entries);
    const object: CborObject = {};
    for (let i = 0; i < entries.length; i++) {
      const key = entries[i][0] as string;
      // Assigning "__proto__" would change the prototype instead of adding a key.
      if (key === '__proto__')
        Object.defineProperty(object, key, {
          value: entries[i][1],
          enumerable: true,
          writable: true,
          configurable: true,
        });
      else object[key] = entries[i][1];
    }
    return object;
  }

  simpleOrFloat(ai: number, start: number): CborValue {
    if (ai < 20) return new CborSimple(ai);
    if (ai === 20) return false;
    if (ai === 21) return true;
    if (ai === 22) return null;
    if (ai === 23) return undefined;
    if (ai === 24) {
      this.need(1, 'the simple value byte', start);
      const v = this.bytes[this.pos++];
      if (v < 32)
        this.fail('simple value ' + v + ' in two bytes is not well-formed (values below 32 take one byte)', start);
      return new CborSimple(v);
    }
    if (ai === 25 || ai === 26 || ai === 27) {
      const size = ai === 25 ? 2 : ai === 26 ? 4 : 8;
      this.need(size, 'a ' + size * 8 + '-bit float', start);
      let value: number;
      let isCanonicalNaN = false;
      if (size === 2) {
        const half = this.readUint(2);
        value = halfToNumber(half);
        isCanonicalNaN = half === 0x7e00;
      } else {
        for (let i = 0; i < size; i++) floatView.setUint8(i, this.bytes[this.pos++]);
        value = size === 4 ? floatView.getFloat32(0) : floatView.getFloat64(0);
      }
      if (isNegativeZero(value))
        this.fail(
          'negative zero (a ' +
            size * 8 +
            '-bit float): the meter has no negative zero and would read it as 0, so it is refused',
          start,
        );
      if (this.strict) this.checkCanonicalFloat(value, size, isCanonicalNaN, start);
      return value;
    }
    if (ai === 31) this.fail('unexpected break code 0xff (indefinite-length items are not allowed)', start);
    return this.fail(
      'reserved additional information ' +
        ai +
        ' in initial byte 0x' +
        hex2(this.bytes[start]) +
        ' (values 28..30 are not well-formed)',
      start,
    );
  }

  checkCanonicalFloat(value: number, size: number, isCanonicalNaN: boolean, start: number): void {
    // biome-ignore lint/suspicious/noSelfCompare: only NaN is unequal to itself
    if (value !== value) {
      if (!isCanonicalNaN)
        this.fail(
          'non-deterministic NaN: deterministic CBOR writes NaN as f9 7e00 (decode with strict: false to accept it)',
          start,
        );
    } else if (isCborInteger(value)) {
      this.fail(
        'integer-valued float ' +
          value +
          ': deterministic encoding writes it as an integer (decode with strict: false to accept it)',
        start,
      );
    } else if (shortestFloatWidth(value) < size) {
      this.fail(
        'non-shortest encoding: float ' +
          value +
          ' written in ' +
          size +
          ' bytes fits in ' +
          shortestFloatWidth(value) +
          ' (decode with strict: false to accept it)',
        start,
      );
    }
  }
}

function hex8(n: number): string {
  let s = n.toString(16);
  while (s.length < 8) s = '0' + s;
  return s;
}

function bytesToLatin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/**
 * Decodes exactly one CBOR item filling all of bytes. Throws CborError (with the offset) on truncated
 * input, trailing bytes, indefinite lengths, reserved or malformed heads, lengths beyond the input,
 * invalid UTF-8, duplicate map keys, nesting beyond maxDepth, integers beyond +-2^53 and, when strict
 * (the default), anything encode() would not have written.
 */
export function decode(bytes: Uint8Array, options?: DecodeOptions): CborValue {
  if (!bytes || typeof bytes.length !== 'number') throw new CborError('decode expects a Uint8Array of CBOR bytes', 0);
  const decoder = new Decoder(
    bytes,
    !(options && options.strict === false),
    (options && options.maxDepth) ?? DEFAULT_MAX_DEPTH,
  );
  const value = decoder.item(0);
  if (decoder.pos !== bytes.length) {
    decoder.fail(bytes.length - decoder.pos + ' trailing byte(s) after the item that ends', decoder.pos);
  }
  return value;
}
