// Values as Espruino turns them into text, in one place for the whole emulator.
//
// Espruino has one printer, jsfGetJSONWithCallback (src/jswrap_json.c), run with different flags:
//   - the REPL's `=value`  (src/jsinteractive.c): JSON_LIMIT | JSON_SOME_NEWLINES | JSON_PRETTY |
//     JSON_SHOW_DEVICES | JSON_SHOW_OBJECT_NAMES | JSON_DROP_QUOTES;
//   - print()/console.log() (src/jswrap_interactive.c jswrap_interface_print): strings as they are,
//     anything else with JSON_PRETTY | JSON_SOME_NEWLINES | JSON_SHOW_OBJECT_NAMES — so no shortening,
//     keys always quoted, functions with their code, devices as objects;
// and `%v` (cbprintf → jsvAsString) for `Uncaught …` and `Unhandled promise rejection: …`.
// Number text is ftoa_bounded_extra and string escapes are escapeCharacter (src/jsutils.c).
//
// Values are the board realm's objects, so nothing here uses `instanceof` or host prototypes.

import { types } from 'node:util';

interface JsonFlags {
  /** JSON_LIMIT: arrays over 15 items and strings over 40 chars shortened, function bodies elided. */
  limit: boolean;
  /** JSON_DROP_QUOTES: identifier and integer keys unquoted. */
  dropQuotes: boolean;
  /** JSON_SHOW_DEVICES: built-in device objects (I2C1 …) by name. */
  showDevices: boolean;
}

const REPL_FLAGS: JsonFlags = { limit: true, dropQuotes: true, showDevices: true };
const PRINT_FLAGS: JsonFlags = { limit: false, dropQuotes: false, showDevices: false };

const LIMIT_AMOUNT = 15; // arrays longer than this are shortened …
const LIMITED_AMOUNT = 5; // … to this many items at each end
const LIMIT_STRING_AMOUNT = 40;
const LIMITED_STRING_AMOUNT = 17;
const ITEMS_ON_LINE_OBJECT = 4;
const LIMIT_TEXT = ' ... ';
const INDENT = '  ';

/** The REPL's `=value` text (without the `=`). */
export function formatReplValue(value: unknown): string {
  return formatJson(value, REPL_FLAGS, 0, new Set());
}

/** One print()/console.log() line (without the newline): arguments separated by spaces. */
export function formatPrintArguments(args: readonly unknown[]): string {
  return args.map((a) => (typeof a === 'string' ? a : formatJson(a, PRINT_FLAGS, 0, new Set()))).join(' ');
}

/** `%v`: the value as a string (jsvAsString), as in `Uncaught %v`. */
export function formatAsString(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return formatEspruinoNumber(value);
  if (typeof value !== 'object' && typeof value !== 'function') return String(value);
  if (typeof value === 'function') return 'function ' + functionText(value, PRINT_FLAGS);
  const toString = customToString(value);
  return toString ? formatAsString(toString.call(value)) : '[object Object]';
}

const devices = new WeakMap<object, string>();

/** Marks a realm object as a built-in device (printed by name at the REPL, as `I2C1`). */
export function markDevice(object: object, name: string): void {
  devices.set(object, name);
}

function formatJson(value: unknown, flags: JsonFlags, depth: number, seen: Set<object>): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      return formatEspruinoNumber(value);
    case 'boolean':
      return String(value);
    case 'string':
      return flags.limit && value.length > LIMIT_STRING_AMOUNT
        ? quoteString(value.slice(0, LIMITED_STRING_AMOUNT)) +
            LIMIT_TEXT +
            quoteString(value.slice(-LIMITED_STRING_AMOUNT))
        : quoteString(value);
    case 'function':
      return 'function ' + functionText(value, flags);
    case 'object':
      break;
    default:
      return String(value);
  }
  const object = value as object;
  if (seen.has(object)) return LIMIT_TEXT; // JSV_IS_RECURSING
  seen.add(object);
  try {
    if (isPin(object)) return String(object); // a pin is a basic value on Espruino: `D5`
    if (Array.isArray(object)) return formatArray(object, flags, depth, seen);
    const tag = Object.prototype.toString.call(object).slice(8, -1);
    if (tag === 'ArrayBuffer' || (ArrayBuffer.isView(object) && tag !== 'DataView'))
      return formatArrayBuffer(object, tag, flags);
    return formatObject(object, flags, depth, seen);
  } finally {
    seen.delete(object);
  }
}

/** jsonNeedsNewLine: everything but undefined, null and numerics (numbers, booleans, pins) starts a line. */
function needsNewLine(value: unknown): boolean {
  if (value === undefined || value === null || typeof value === 'number' || typeof value === 'boolean') return false;
  return !(typeof value === 'object' && isPin(value));
}

function newLine(depth: number): string {
  return '\n' + INDENT.repeat(depth);
}

function isIndex(key: string): boolean {
  return /^(0|[1-9]\d*)$/.test(key);
}

function formatArray(array: unknown[], flags: JsonFlags, depth: number, seen: Set<object>): string {
  const length = array.length;
  const limited = flags.limit && length > LIMIT_AMOUNT;
  let out = '[ ';
  let needNewLine = false;
  for (let i = 0; i < length; i++) {
    if (limited && i >= LIMITED_AMOUNT && i < length - LIMITED_AMOUNT) continue;
    if (i > 0) out += ', ';
    if (limited && i === length - LIMITED_AMOUNT) out += LIMIT_TEXT;
    const item = array[i];
    const itemNeedsNewLine = needsNewLine(item);
    if (needNewLine || itemNeedsNewLine) out += newLine(depth + 1);
    out += formatJson(item, flags, depth + 1, seen);
    needNewLine = itemNeedsNewLine;
  }
  // JSON_PRETTY also lists an array's non-index keys, after its items
  const extraKeys = Object.keys(array).filter((k) => !isIndex(k));
  if (extraKeys.length > 0) out += formatKeys(array, extraKeys, flags, depth, seen, length === 0).text;
  if (needNewLine) out += newLine(depth);
  return out + ' ]';
}

function formatArrayBuffer(view: object, tag: string, flags: JsonFlags): string {
  const isPlainBuffer = tag === 'ArrayBuffer';
  const items = isPlainBuffer ? new Uint8Array(view as ArrayBuffer) : (view as ArrayLike<number>);
  const length = items.length;
  let allZero = true;
  for (let i = 0; i < length; i++) if (items[i] !== 0) allZero = false;
  if (allZero) return `new ${tag}(${length})`;
  const limited = flags.limit && length > LIMIT_AMOUNT;
  let text = '';
  for (let i = 0; i < length; i++) {
    if (limited && i >= LIMITED_AMOUNT && i < length - LIMITED_AMOUNT) continue;
    if (i > 0) text += ', ';
    if (limited && i === length - LIMITED_AMOUNT) text += LIMIT_TEXT;
    text += formatEspruinoNumber(Number(items[i]));
  }
  // `new ArrayBuffer([1,2])` is not valid JS, so Espruino writes the bytes through a Uint8Array
  return isPlainBuffer ? `new Uint8Array([${text}]).buffer` : `new ${tag}([${text}])`;
}

function formatObject(object: object, flags: JsonFlags, depth: number, seen: Set<object>): string {
  if (flags.showDevices && devices.has(object)) return devices.get(object)!;
  let prefix = '';
  // JSON_SHOW_OBJECT_NAMES: an object made by `new C` where C is a global prints as `C: …`, and as
  // `C: <toString()>` when it has its own toString. Object literals have no constructor link on Espruino.
  const constructorName = globalConstructorName(object);
  if (constructorName !== undefined) {
    prefix = constructorName + ': ';
    const toString = customToString(object);
    if (toString) return prefix + formatAsString(toString.call(object));
  }
  // Host objects behind Espruino APIs (Storage, sockets …) keep their state in C on the device,
  // under hidden keys: nothing of theirs is listed.
  const keys = types.isProxy(object) ? [] : Object.keys(object);
  const { text, needNewLine } = formatKeys(object, keys, flags, depth, seen, true);
  return prefix + '{ ' + text + (needNewLine ? newLine(depth) : '') + ' }';
}

/** jsfGetJSONForObjectItWithCallback: `key: value` pairs, at most four on a line. */
function formatKeys(
  object: object,
  keys: string[],
  flags: JsonFlags,
  depth: number,
  seen: Set<object>,
  first: boolean,
): { text: string; needNewLine: boolean } {
  let text = '';
  let needNewLine = false;
  let sinceNewLine = 0;
  for (const key of keys) {
    const descriptor = Object.getOwnPropertyDescriptor(object, key);
    if (!descriptor || descriptor.get || descriptor.set) continue; // getters and setters are hidden
    const item = descriptor.value;
    sinceNewLine++;
    if (!first) text += ', ';
    const itemNeedsNewLine = needsNewLine(item);
    if (sinceNewLine > ITEMS_ON_LINE_OBJECT) needNewLine = true;
    if (needNewLine || itemNeedsNewLine) {
      text += newLine(depth + 1);
      sinceNewLine = 0;
    }
    const bareKey = flags.dropQuotes && (isIndex(key) || (key.length < 63 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)));
    text += (bareKey ? key : quoteString(key)) + ': ';
    first = false;
    text += formatJson(item, flags, depth + 1, seen);
    needNewLine = itemNeedsNewLine;
  }
  return { text, needNewLine };
}

/**
 * The global name of the constructor that made `object`, if it has one (jsvGetIndexOf(execInfo.root,
 * constructor)). Looked up in the global object of the realm the constructor belongs to.
 */
function globalConstructorName(object: object): string | undefined {
  const proto = Object.getPrototypeOf(object) as object | null;
  if (proto === null || Object.getPrototypeOf(proto) === null) return undefined; // literal or Object.create(null)
  const constructor = valueOf(proto, 'constructor'); // the prototype's own link, as jsvObjectGetChild
  if (typeof constructor !== 'function') return undefined;
  const global = realmGlobalOf(constructor);
  if (!global) return undefined;
  if (constructor.name && valueOf(global, constructor.name) === constructor) return constructor.name;
  for (const name of Object.getOwnPropertyNames(global)) if (valueOf(global, name) === constructor) return name;
  return undefined;
}

/** A function's realm global: its realm's Function constructor evaluates `return this` there. */
function realmGlobalOf(fn: Function): object | undefined {
  try {
    const RealmFunction = (Object.getPrototypeOf(fn) as { constructor?: FunctionConstructor } | null)?.constructor;
    if (typeof RealmFunction !== 'function') return undefined;
    const global: unknown = RealmFunction('return this')();
    return typeof global === 'object' && global !== null ? global : undefined;
  } catch {
    return undefined;
  }
}

function valueOf(object: object, key: string): unknown {
  const descriptor = Object.getOwnPropertyDescriptor(object, key);
  return descriptor && 'value' in descriptor ? descriptor.value : undefined;
}

/** The object's toString if it is not the default Object.prototype.toString of its realm. */
function customToString(object: object): Function | undefined {
  let toString: unknown;
  try {
    toString = (object as { toString?: unknown }).toString;
  } catch {
    return undefined;
  }
  if (typeof toString !== 'function') return undefined;
  let root: object = object;
  for (let p = Object.getPrototypeOf(root); p !== null; p = Object.getPrototypeOf(p)) root = p;
  return toString === valueOf(root, 'toString') ? undefined : toString;
}

function isPin(object: object): boolean {
  const constructor = (Object.getPrototypeOf(object) as { constructor?: { name?: string } } | null)?.constructor;
  return constructor?.name === 'Pin' && typeof valueOf(object, 'n') === 'number';
}

/**
 * jsfGetJSONForFunctionWithCallback: `(a,b) {…}` — the body elided with JSON_LIMIT, else its code
 * (Espruino reprints its tokenised copy; here the source text, trimmed).
 */
function functionText(fn: Function, flags: JsonFlags): string {
  const source = Function.prototype.toString.call(fn);
  const native = /\{\s*\[native code\]\s*\}$/.test(source);
  const params = native ? '' : functionParameters(source);
  if (native) return `(${params}) { [native code] }`;
  if (flags.limit) return `(${params}) {${LIMIT_TEXT}}`;
  const arrow = /^(?:async\s*)?(?:\([^)]*\)|[A-Za-z_$][\w$]*)\s*=>\s*/.exec(source);
  let body: string;
  if (arrow && !source.slice(arrow[0].length).startsWith('{')) body = 'return ' + source.slice(arrow[0].length).trim();
  else body = source.slice(source.indexOf('{', source.indexOf(')')) + 1, source.lastIndexOf('}')).trim();
  return body.includes('\n') ? `(${params}) {\n  ${body}\n}` : `(${params}) {${body}}`;
}

function functionParameters(source: string): string {
  const match = /^[^(=]*\(([^)]*)\)/.exec(source) ?? /^\s*([A-Za-z_$][\w$]*)\s*=>/.exec(source);
  return match
    ? match[1]
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)
        .join(',')
    : '';
}

/** `%q`: double quotes, C-style escapes, \xHH for other control and high bytes. */
function quoteString(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\v') out += '\\v';
    else if (code < 8 && code >= 0) out += '\\' + code;
    else if (code < 32 || code === 127 || (code > 127 && code <= 255))
      out += '\\x' + code.toString(16).padStart(2, '0');
    else if (code > 255) out += '\\u' + code.toString(16).padStart(4, '0');
    else out += ch;
  }
  return out + '"';
}

/**
 * Numbers as Espruino prints them (ftoa_bounded_extra in src/jsutils.c): integers in full, fractions
 * only until the remainder drops below 1e-7 and at most 11 digits — so 0.1+0.2 prints 0.3.
 */
export function formatEspruinoNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n < 0 ? '-Infinity' : 'Infinity';
  if (Object.is(n, -0)) return '0';
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  const stopAtError = 0.0000001;
  let sign = '';
  let val = n;
  if (val < 0) {
    sign = '-';
    val = -val;
  }
  if (Math.floor(val + stopAtError) === Math.floor(val) + 1) val = Math.floor(val) + 1;
  const whole = Math.floor(val);
  let digits = whole >= 1e21 ? whole.toLocaleString('en-US', { useGrouping: false }) : String(whole);
  let fraction = val - whole;
  if (fraction <= 0) return sign + digits;
  digits += '.';
  fraction *= 10;
  for (let count = 0; count < 11 && fraction > stopAtError; count++) {
    const digit = Math.min(9, Math.floor(fraction + 0.00000001));
    fraction = (fraction - digit) * 10;
    digits += String(digit);
  }
  return sign + digits;
}
