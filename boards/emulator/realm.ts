// An isolated node:vm context that holds only what Espruino 2v29 (ESP32 build) has.
//
// V8 gives every new context the whole modern library; Espruino has far less (the /*JSON{…}*/ blocks
// of its src/jswrap_*.c; espruino-profile/forbidden-globals.ts). Whatever Espruino lacks is deleted
// here, so firmware that relies on it fails in the emulator as it would on the device, instead of
// passing tests and failing in the field. Built-ins that Espruino has but that behave differently there are replaced by Espruino's
// behaviour where that can be modelled faithfully (ESPRUINO_BEHAVIOUR_SOURCE; the list of differences,
// modelled or not, is docs/espruino-differences.md). Espruino's own globals are added by
// espruino-globals.ts.
//
// Values crossing the boundary: objects made by host code have the host's prototypes, so
// `x instanceof Uint8Array` would be false inside the realm. Everything handed to firmware is
// rebuilt with the realm's constructors (bytes(), arrayBuffer(), toRealm()), and everything the
// firmware hands to host code is rebuilt with the host's (toHost()).

import vm from 'node:vm';

/** Globals V8 has and Espruino 2v29 does not. */
export const ABSENT_GLOBALS = [
  'globalThis',
  'BigInt',
  'BigInt64Array',
  'BigUint64Array',
  'Map',
  'Set',
  'WeakMap',
  'WeakSet',
  'WeakRef',
  'FinalizationRegistry',
  'Symbol',
  'Proxy',
  'Reflect',
  'TextEncoder',
  'TextDecoder',
  'queueMicrotask',
  'structuredClone',
  'Intl',
  'SharedArrayBuffer',
  'Atomics',
  'WebAssembly',
  'AggregateError',
  'Iterator',
  'console',
  'escape',
  'unescape',
] as const;

/** Static members and prototype methods V8 has and Espruino 2v29 does not (path → names). */
export const ABSENT_MEMBERS: Record<string, readonly string[]> = {
  Math: [
    'imul',
    'trunc',
    'log2',
    'log10',
    'hypot',
    'cbrt',
    'fround',
    'clz32',
    'sinh',
    'cosh',
    'tanh',
    'asinh',
    'acosh',
    'atanh',
    'expm1',
    'log1p',
  ],
  Number: [
    'isInteger',
    'isFinite',
    'isNaN',
    'isSafeInteger',
    'EPSILON',
    'MAX_SAFE_INTEGER',
    'MIN_SAFE_INTEGER',
    'parseFloat',
    'parseInt',
  ],
  'Number.prototype': ['toPrecision', 'toExponential', 'toLocaleString'],
  Array: ['from', 'of', 'fromAsync'],
  'Array.prototype': [
    'lastIndexOf',
    'reduceRight',
    'flat',
    'flatMap',
    'at',
    'findLast',
    'findLastIndex',
    'copyWithin',
    'keys',
    'values',
    'entries',
    'toReversed',
    'toSorted',
    'toSpliced',
    'with',
    'toLocaleString',
  ],
  Object: [
    'freeze',
    'seal',
    'is',
    'isFrozen',
    'isSealed',
    'preventExtensions',
    'isExtensible',
    'getOwnPropertySymbols',
    'groupBy',
    'hasOwn',
  ],
  Promise: ['race', 'allSettled', 'any', 'withResolvers'],
  'Promise.prototype': ['finally'],
  'ArrayBuffer.prototype': ['slice', 'resize', 'transfer', 'transferToFixedLength'],
  String: ['fromCodePoint', 'raw'],
  'String.prototype': [
    'codePointAt',
    'normalize',
    'trimStart',
    'trimEnd',
    'trimLeft',
    'trimRight',
    'at',
    'localeCompare',
    'search',
    'matchAll',
    'isWellFormed',
    'toWellFormed',
    'anchor',
    'big',
    'blink',
    'bold',
    'fixed',
    'fontcolor',
    'fontsize',
    'italics',
    'link',
    'small',
    'strike',
    'sub',
    'sup',
  ],
  JSON: ['rawJSON', 'isRawJSON'],
};

/** Typed-array constructors whose prototypes lose the methods Espruino lacks. */
const TYPED_ARRAY_ABSENT = [
  'at',
  'findLast',
  'findLastIndex',
  'copyWithin',
  'keys',
  'values',
  'entries',
  'lastIndexOf',
  'reduceRight',
  'toReversed',
  'toSorted',
  'with',
  'toLocaleString',
];

export type RealmErrorType = 'Error' | 'TypeError' | 'SyntaxError' | 'ReferenceError' | 'InternalError';

export class Realm {
  readonly context: vm.Context;
  /** The realm's global object (firmware's `global`). */
  readonly global: Record<string, any>;
  private readonly ctors: {
    Uint8Array: Uint8ArrayConstructor;
    ArrayBuffer: ArrayBufferConstructor;
    Object: ObjectConstructor;
    Array: ArrayConstructor;
    Error: ErrorConstructor;
    RegExp: RegExpConstructor;
    JSON: JSON;
  };

  constructor() {
    this.context = vm.createContext({}, { name: 'espruino', codeGeneration: { strings: true, wasm: false } });
    this.global = vm.runInContext('this', this.context);
    const g = this.global;
    this.ctors = {
      Uint8Array: g.Uint8Array,
      ArrayBuffer: g.ArrayBuffer,
      Object: g.Object,
      Array: g.Array,
      Error: g.Error,
      RegExp: g.RegExp,
      JSON: g.JSON,
    };
    stripToEspruino(g, this.context);
  }

  /** Runs source text in the realm (firmware bundle, boot code, console line). */
  run(code: string, filename = 'espruino'): unknown {
    return vm.runInContext(code, this.context, { filename });
  }

  /** Defines a global that firmware sees (non-enumerable, as Espruino's built-ins). */
  define(name: string, value: unknown): void {
    Object.defineProperty(this.global, name, { value, writable: true, configurable: true, enumerable: false });
  }

  bytes(data: ArrayLike<number> | ArrayBufferView | ArrayBuffer): Uint8Array {
    const src = toHostBytes(data);
    const out = new this.ctors.Uint8Array(src.length);
    out.set(src);
    return out;
  }

  arrayBuffer(data: ArrayLike<number> | ArrayBufferView | ArrayBuffer): ArrayBuffer {
    return this.bytes(data).buffer as ArrayBuffer;
  }

  error(message: string, type: RealmErrorType = 'Error'): Error {
    const Ctor = (this.global[type] ?? this.ctors.Error) as ErrorConstructor;
    return new Ctor(message);
  }

  /**
   * The same error without a captured stack trace, for natives that throw on a hot path where firmware
   * may catch in a loop: a NACK on I2C1. Capturing V8's stack is most of an error's cost (about 5 of
   * 5.4 us), and Espruino's errors carry no V8 stack anyway.
   */
  errorWithoutStack(message: string, type: RealmErrorType = 'Error'): Error {
    const limits = this.ctors.Error as ErrorConstructor & { stackTraceLimit: number };
    const limit = limits.stackTraceLimit;
    limits.stackTraceLimit = 0;
    try {
      return this.error(message, type);
    } finally {
      limits.stackTraceLimit = limit;
    }
  }

  /** A host value rebuilt with the realm's constructors (plain data only; functions pass as they are). */
  toRealm(value: unknown): any {
    if (value === null || typeof value !== 'object') return value;
    if (value instanceof ArrayBuffer) return this.arrayBuffer(value);
    if (ArrayBuffer.isView(value)) {
      if (value instanceof Uint8Array) return this.bytes(value);
      const Ctor = this.global[value.constructor.name];
      const copy = this.arrayBuffer(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      return Ctor ? new Ctor(copy) : this.bytes(value as unknown as ArrayLike<number>);
    }
    if (value instanceof RegExp) return new this.ctors.RegExp(value.source, value.flags);
    if (value instanceof Error) return this.error(value.message);
    if (Array.isArray(value)) {
      const out = new this.ctors.Array();
      for (const item of value) out.push(this.toRealm(item));
      return out;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value; // class instance: caller wraps it
    const out = new this.ctors.Object();
    for (const [k, v] of Object.entries(value)) (out as any)[k] = this.toRealm(v);
    return out;
  }

  /** A realm value rebuilt with the host's constructors (bytes become host Uint8Array/ArrayBuffer). */
  toHost(value: unknown): any {
    if (value === null || typeof value !== 'object') return value;
    if (isArrayBuffer(value)) return new Uint8Array(value as ArrayBuffer).slice().buffer;
    if (ArrayBuffer.isView(value)) {
      const HostCtor = (globalThis as any)[value.constructor.name] ?? Uint8Array;
      const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice();
      return value.constructor.name === 'Uint8Array' || value.constructor.name === 'DataView'
        ? bytes
        : new HostCtor(bytes.buffer);
    }
    if (Object.prototype.toString.call(value) === '[object RegExp]') {
      const r = value as RegExp;
      return new RegExp(r.source, r.flags);
    }
    if (Array.isArray(value)) return value.map((v) => this.toHost(v));
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) out[k] = this.toHost((value as any)[k]);
    return out;
  }
}

function isArrayBuffer(v: object): boolean {
  return Object.prototype.toString.call(v) === '[object ArrayBuffer]';
}

function toHostBytes(data: ArrayLike<number> | ArrayBufferView | ArrayBuffer): Uint8Array {
  if (typeof data === 'object' && isArrayBuffer(data)) return new Uint8Array(data as ArrayBuffer);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return Uint8Array.from(data as ArrayLike<number>, (n) => n & 0xff);
}

/**
 * Number.EPSILON, MAX_SAFE_INTEGER and MIN_SAFE_INTEGER cannot be deleted (non-configurable), so
 * Number itself is replaced by a function with only Espruino's statics, sharing the prototype.
 */
const ESPRUINO_NUMBER_SOURCE = `(function (N) {
  function Number(v) {
    var n = arguments.length ? N(v) : 0;
    return (this instanceof Number) ? new N(n) : n;
  }
  Number.prototype = N.prototype;
  Object.defineProperty(N.prototype, 'constructor', { value: Number, writable: true, configurable: true, enumerable: false });
  ['NaN', 'MAX_VALUE', 'MIN_VALUE', 'NEGATIVE_INFINITY', 'POSITIVE_INFINITY'].forEach(function (k) {
    Object.defineProperty(Number, k, { value: N[k], enumerable: false });
  });
  return Number;
})`;

/**
 * Built-ins whose Espruino behaviour differs from V8's, replaced inside the realm (so results carry the
 * realm's prototypes):
 * - a typed array's slice() and filter() return a plain Array (src/jswrap_arraybuffer.c binds them to
 *   jswrap_array_slice/jswrap_array_filter, which build an Array); map() keeps the typed array's type;
 * - String.fromCharCode keeps the low 8 bits of each code (src/jswrap_string.c appends `(char)code`):
 *   Espruino's strings are 8-bit.
 * - Math.pow multiplies for integer exponents 0..9 and otherwise computes exp(log(x) * y)
 *   (src/jswrap_math.c jswrap_math_pow), so 2^-24 or 2^12 is not exact there: here the same formula,
 *   with V8's exp and log (which may differ from the ESP32's libm in the last bit).
 * - JSON.stringify escapes every char below 0x20 or from 0x7F as \u00XX with upper-case hex
 *   (src/jsutils.c escapeCharacter); V8 leaves 0x7F..0xFF as they are.
 */
const ESPRUINO_BEHAVIOUR_SOURCE = `(function (typedProto) {
  var hidden = function (o, k, v) { Object.defineProperty(o, k, { value: v, writable: true, configurable: true, enumerable: false }); };
  var arraySlice = Array.prototype.slice, arrayFilter = Array.prototype.filter;
  hidden(typedProto, 'slice', function slice(start, end) { return arraySlice.call(this, start, end); });
  hidden(typedProto, 'filter', function filter(fn, thisArg) { return arrayFilter.call(this, fn, thisArg); });
  var exp = Math.exp, log = Math.log;
  hidden(Math, 'pow', function pow(x, y) {
    x = +x; y = +y;
    var yi = y | 0;
    if (yi >= 0 && yi < 10 && yi === y) {
      if (yi === 0) return 1;
      var p = x;
      while (yi > 1) { p *= x; yi--; }
      return p;
    }
    if (x < 0 && y % 1 === 0) return y % 2 === 0 ? exp(log(-x) * y) : -exp(log(-x) * y);
    return x !== 0 || 0 >= y ? exp(log(x) * y) : 0;
  });
  var stringify = JSON.stringify;
  var hex = '0123456789ABCDEF';
  hidden(JSON, 'stringify', function (value, replacer, space) {
    var text = stringify.apply(JSON, arguments);
    if (typeof text !== 'string') return text;
    return text.replace(/\\\\\\\\|\\\\u00([0-9a-f]{2})|[\\u007f-\\uffff]/g, function (match, low) {
      if (match === '\\\\\\\\') return match;
      if (low !== undefined) return '\\\\u00' + low.toUpperCase();
      var c = match.charCodeAt(0);
      return '\\\\u' + hex.charAt(c >> 12) + hex.charAt((c >> 8) & 15) + hex.charAt((c >> 4) & 15) + hex.charAt(c & 15);
    });
  });
  var fromCharCode = String.fromCharCode;
  hidden(String, 'fromCharCode', function fromCharCode8(code) {
    var bytes = [];
    for (var i = 0; i < arguments.length; i++) bytes.push(arguments[i] & 255);
    return fromCharCode.apply(String, bytes);
  });
})`;

function stripToEspruino(g: Record<string, any>, context: vm.Context): void {
  for (const name of ABSENT_GLOBALS) delete g[name];
  for (const [path, names] of Object.entries(ABSENT_MEMBERS)) {
    if (path === 'Number') continue;
    const target = path.split('.').reduce((o, k) => o?.[k], g as any);
    if (!target) continue;
    for (const n of names) delete target[n];
  }
  const makeNumber = vm.runInContext(ESPRUINO_NUMBER_SOURCE, context);
  Object.defineProperty(g, 'Number', {
    value: makeNumber(g.Number),
    writable: true,
    configurable: true,
    enumerable: false,
  });
  // The shared %TypedArray% prototype (parent of Uint8Array.prototype …).
  const typedProto = Object.getPrototypeOf(g.Uint8Array.prototype);
  for (const n of TYPED_ARRAY_ABSENT) delete typedProto[n];
  vm.runInContext(ESPRUINO_BEHAVIOUR_SOURCE, context)(typedProto);
  const typedCtor = Object.getPrototypeOf(g.Uint8Array);
  delete typedCtor.from;
  delete typedCtor.of;
  // Iteration protocol hooks exist only through Symbol, which is gone; nothing else to remove.
}
