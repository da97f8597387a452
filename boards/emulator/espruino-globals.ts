// Espruino's own globals, installed into a Realm for one interpreter session (one boot).
//
// Each function follows the wrapper of the same name in espruino/Espruino src/jswrap_*.c:
// timers and watches (ids, errors, debounce), pins, I2C1 and software I2C, E, crypto, btoa/atob,
// print/console.log, load/reset, require of built-in modules, process.env, Promise (callbacks run as events
// of the idle loop, not as V8 microtasks) and the EventEmitter methods every Espruino object has.
// What cannot be reproduced honestly is left out (process.memory, E.getSizeOf: JsVar figures).

import nodeCrypto from 'node:crypto';
import type { SimClock, TimerTable } from './clock.ts';
import { formatAsString, formatPrintArguments, markDevice } from './espruino-format.ts';
import type { I2CBus, I2CMaster, Level, PinBank, PinMode, WatchTable } from './pins.ts';
import { PIN_COUNT } from './pins.ts';
import type { Realm } from './realm.ts';
import { bytesToString } from './storage.ts';

export const ESPRUINO_VERSION = '2v29';

/** What the interpreter session gives the globals. Implemented by the Board. */
export interface InterpreterHost {
  readonly realm: Realm;
  readonly clock: SimClock;
  readonly timers: TimerTable;
  readonly watches: WatchTable;
  readonly pins: PinBank;
  readonly i2c1: I2CBus;
  readonly rand: EspruinoRand;
  /** Writes console output exactly as given. */
  print(text: string): void;
  /** getTime(): seconds on the board's clock. */
  boardTime(): number;
  setBoardTime(seconds: number): void;
  /** Runs a firmware function as an event (uncaught errors are printed, the board keeps running). */
  callFirmware(fn: Function, args: unknown[]): void;
  /** Calls a firmware function right now, inside the running task (uncaught errors are printed). */
  callNow(fn: Function, args: unknown[]): void;
  /** Queues work for the idle loop, after the code running now. */
  queueEvent(run: () => void): void;
  requestLoad(file: string | undefined): void;
  requestReset(): void;
  setBootCode(code: string, alwaysExec: boolean): void;
  /** E.setPassword: the console password, kept in RAM for this session (undefined removes it). */
  setConsolePassword(password: string | undefined): void;
  /** E.lockConsole: locks the console if a password is set. */
  lockConsole(): void;
  /** require("TelnetServer").setOptions({mode}): the network console on or off. */
  setNetworkConsole(on: boolean): void;
  /** Host objects behind require("Storage" | "net" | "Wifi"); undefined = not on this board. */
  builtInModule(name: string): object | undefined;
  /** Called when a host call fails because the board lost power (flash PowerLoss). */
  isPowerLoss(err: unknown): boolean;
  powerLost(): void;
  /** True once the session is over (power cut, load, reset): every API then throws. */
  readonly stopped: boolean;
}

export const BUILT_IN_MODULES = ['Storage', 'Flash', 'net', 'Wifi', 'crypto', 'TelnetServer'] as const;

/** Espruino's rand() (src/jsutils.c): a multiply-with-carry generator with fixed seeds. ESP32 never reseeds it. */
export class EspruinoRand {
  private w = 0xdeadbeef;
  private z = 0xcafebabe;

  next(): number {
    this.z = (Math.imul(36969, this.z & 65535) + (this.z >>> 16)) >>> 0;
    this.w = (Math.imul(18000, this.w & 65535) + (this.w >>> 16)) >>> 0;
    return (((this.z << 16) + this.w) >>> 0) & 0x7fffffff; // RAND_MAX on ESP32 (newlib) = 0x7FFFFFFF
  }

  seed(seed: number): void {
    const s = seed >>> 0;
    this.w = ((s & 0xffff) | (s << 16)) >>> 0;
    this.z = ((s & 0xffff0000) | (s >>> 16)) >>> 0;
  }
}

/** The session's handles the board needs after installation. */
export interface InstalledGlobals {
  /** E.emit(event) — 'init' at boot, 'kill' before load()/reset(). */
  emitOnE(event: string): void;
  /** The realm's `onInit` global, if firmware defined one. */
  onInit(): Function | undefined;
}

export function installEspruinoGlobals(host: InterpreterHost): InstalledGlobals {
  const { realm } = host;
  const g = realm.global;
  const api = new ApiGuard(host);

  const prelude = realm.run(PRELUDE_SOURCE, 'espruino-prelude') as (hooks: Record<string, Function>) => {
    emit: Function;
  };
  const helpers = prelude({
    queue: (fn: Function) => host.queueEvent(() => host.callFirmware(fn, [])),
    unhandled: (v: unknown) => host.print(`Uncaught Error: Unhandled promise rejection: ${formatAsString(v)}\n`),
    now: () => host.boardTime() * 1000,
  });

  installTime(host, api);
  installTimers(host, api);
  installPins(host, api);
  installOutput(host, api);
  installE(host, api);
  installMisc(host, api);
  // A fresh module object per session (require() returns the same one within it).
  const moduleCache = new Map<string, unknown>();
  realm.define(
    'require',
    api.fn((name: unknown) => {
      const key = String(name);
      if (moduleCache.has(key)) return moduleCache.get(key);
      let mod: unknown;
      if (key === 'crypto') mod = makeCrypto(host);
      else if (key === 'TelnetServer') mod = makeTelnetServer(host, api);
      else {
        const hostModule = BUILT_IN_MODULES.includes(key as any) ? host.builtInModule(key) : undefined;
        if (!hostModule) throw realm.error(`Module ${key} not found`);
        mod = exposeHostObject(host, api, hostModule);
      }
      moduleCache.set(key, mod);
      return mod;
    }),
  );

  return {
    emitOnE: (event) => {
      const E = g.E;
      if (E && hasListeners(E, event)) host.callNow(helpers.emit, [E, event]);
    },
    onInit: () => (typeof g.onInit === 'function' ? g.onInit : undefined),
  };
}

function hasListeners(obj: any, event: string): boolean {
  return Object.hasOwn(obj, '#on' + event);
}

// ---------------------------------------------------------------------------------------------
// Host functions exposed to firmware.

/** Wraps host functions so they refuse to run once the session stopped and report power loss. */
class ApiGuard {
  constructor(private readonly host: InterpreterHost) {}

  fn<A extends unknown[], R>(impl: (...args: A) => R): (...args: A) => R {
    return this.method((_self: unknown, ...args: A) => impl(...args));
  }

  /** A native method: `impl` gets the object it was called on first. */
  method<A extends unknown[], R>(impl: (self: unknown, ...args: A) => R): (...args: A) => R {
    const host = this.host;
    return function espruinoNative(this: unknown, ...args: A): R {
      if (host.stopped) throw host.realm.error('The board is off: nothing runs after a power cut');
      try {
        return impl(this, ...args);
      } catch (err) {
        if (host.isPowerLoss(err)) {
          host.powerLost();
          throw host.realm.error('The board is off: power was lost during this call');
        }
        throw toRealmError(host, err);
      }
    };
  }
}

function toRealmError(host: InterpreterHost, err: unknown): unknown {
  if (err instanceof Error) {
    const e = host.realm.error(err.message, err.name === 'TypeError' ? 'TypeError' : 'Error') as Error & {
      code?: unknown;
    };
    if ((err as any).code !== undefined) e.code = (err as any).code;
    return e;
  }
  return err; // already a realm value (thrown by firmware callbacks or built with realm.error)
}

function installTime(host: InterpreterHost, api: ApiGuard): void {
  host.realm.define(
    'getTime',
    api.fn(() => host.boardTime()),
  );
  host.realm.define(
    'setTime',
    api.fn((t: unknown) => host.setBoardTime(Number(t))),
  );
}

function installTimers(host: InterpreterHost, api: ApiGuard): void {
  const { realm, timers } = host;
  const add = (isInterval: boolean) =>
    api.fn((fn: unknown, ms: unknown, ...args: unknown[]) => {
      const callback = toCallback(host, fn);
      const delay = Number(ms) || 0;
      const entry = timers.add(() => callback(args), delay, isInterval ? { intervalMs: delay } : {});
      return entry.id;
    });
  const clear = (kind: 'Timeout' | 'Interval') =>
    api.fn((...a: unknown[]) => {
      if (a.length === 0 || a[0] === undefined) return timers.removeAllButWatches();
      const id = Number(a[0]);
      if (!timers.remove(id)) throw realm.error(`Unknown ${kind}`);
    });
  realm.define('setTimeout', add(false));
  realm.define('setInterval', add(true));
  realm.define('clearTimeout', clear('Timeout'));
  realm.define('clearInterval', clear('Interval'));
  realm.define(
    'changeInterval',
    api.fn((id: unknown, ms: unknown) => {
      if (!timers.changeInterval(Number(id), Number(ms) || 0)) throw realm.error('Unknown Interval');
    }),
  );
}

/** A firmware callback (function or code string) as a host function. */
function toCallback(host: InterpreterHost, fn: unknown): (args: unknown[]) => void {
  if (typeof fn === 'function') return (args) => host.callFirmware(fn, args);
  if (typeof fn === 'string')
    return () => host.callFirmware(host.realm.run(`(function(){${fn}\n})`, 'callback') as Function, []);
  throw host.realm.error('Function or String not supplied!');
}

function installPins(host: InterpreterHost, api: ApiGuard): void {
  const { realm, pins, watches } = host;
  const Pin = realm.run(PIN_CLASS_SOURCE, 'espruino-pin') as new (n: number) => object;
  const toPin = (p: unknown): number => {
    const n = typeof p === 'string' && /^D\d+$/.test(p) ? Number(p.slice(1)) : Number(p);
    if (!Number.isInteger(n) || n < 0 || n >= PIN_COUNT) throw realm.error('Invalid pin');
    return n;
  };
  for (let i = 0; i < PIN_COUNT; i++) realm.define(`D${i}`, new Pin(i));
  realm.define(
    'digitalRead',
    api.fn((p: unknown) => pins.read(toPin(p))),
  );
  realm.define(
    'digitalWrite',
    api.fn((p: unknown, v: unknown) => pins.write(toPin(p), (Number(v) & 1) as Level)),
  );
  realm.define(
    'pinMode',
    api.fn((p: unknown, mode: unknown) => {
      const modes = ['analog', 'input', 'input_pullup', 'input_pulldown', 'output', 'opendrain'];
      if (mode === undefined || mode === 'auto') return pins.setMode(toPin(p), undefined);
      if (!modes.includes(String(mode))) throw realm.error('Unknown pin mode');
      pins.setMode(toPin(p), mode as PinMode);
    }),
  );
  realm.define(
    'getPinMode',
    api.fn((p: unknown) => pins.getMode(toPin(p))),
  );
  realm.define(
    'setWatch',
    api.fn((fn: unknown, p: unknown, options: unknown) => {
      const pin = toPin(p);
      let repeat = false;
      let edge = 0;
      let debounceMs = 0;
      if (options !== null && typeof options === 'object') {
        const o = options as Record<string, unknown>;
        repeat = Boolean(o.repeat);
        debounceMs = Number(o.debounce);
        if (!Number.isFinite(debounceMs) || debounceMs < 0) debounceMs = 0;
        if (o.edge === undefined || o.edge === 'both') edge = 0;
        else if (o.edge === 'rising') edge = 1;
        else if (o.edge === 'falling') edge = -1;
        else
          throw realm.error(
            "'edge' in setWatch should be a string - either 'rising', 'falling' or 'both'",
            'TypeError',
          );
      } else {
        repeat = Boolean(options);
      }
      const callback = toCallback(host, fn);
      return watches.add(pin, { repeat, edge, debounceMs }, (data) => callback([realm.toRealm(data)]));
    }),
  );
  realm.define(
    'clearWatch',
    api.fn((...a: unknown[]) => {
      if (a.length === 0 || a[0] === undefined) return watches.removeAll();
      if (!watches.remove(Number(a[0]))) throw realm.error('Unknown Watch');
    }),
  );
  realm.define('I2C1', makeI2C(host, api, toPin));
  realm.define('I2C', makeSoftwareI2C(host, api, toPin));
}

/**
 * `new I2C()`: Espruino's software I2C (src/jswrap_spi_i2c.c with device EV_NONE, src/jsi2c.c), bit-banged on
 * any two pins. It never throws for a missing ACK (built without I2C_NACK_CHECK): a write nobody takes is lost,
 * and a read from nobody gives 0xFF bytes, SDA's pull-up. Before setup it has no pins: writes do nothing and
 * reads give zeros (Espruino returns its uninitialised buffer). Its transfers reach the board's I2C bus only
 * on the pins the bus's wires are on (I2CBus wiring).
 */
function makeSoftwareI2C(host: InterpreterHost, api: ApiGuard, toPin: (p: unknown) => number): Function {
  const { realm, i2c1 } = host;
  const I2C = realm.run('(function I2C() {})', 'espruino-i2c') as Function;
  const masters = new WeakMap<object, I2CMaster>();
  const proto = I2C.prototype;
  proto.setup = api.method((self: unknown, opts: any) => {
    const scl = opts?.scl === undefined ? undefined : toPin(opts.scl);
    const sda = opts?.sda === undefined ? undefined : toPin(opts.sda);
    if (scl === undefined || sda === undefined) masters.delete(self as object);
    else masters.set(self as object, { bitrate: Number(opts.bitrate) || 100000, software: true, scl, sda });
  });
  proto.writeTo = api.method((self: unknown, address: unknown, ...data: unknown[]) => {
    const master = masters.get(self as object);
    if (master) i2c1.write(i2cAddress(address), flattenBytes(data), master);
  });
  proto.readFrom = api.method((self: unknown, address: unknown, quantity: unknown) => {
    const n = Math.max(0, Number(quantity) | 0);
    const master = masters.get(self as object);
    const out = new Uint8Array(n);
    const got = master && i2c1.read(i2cAddress(address), n, master);
    if (got) out.set(got.subarray(0, n));
    else if (master) out.fill(0xff);
    return realm.bytes(out);
  });
  return I2C;
}

/** writeTo/readFrom's address: a number, or {address, stop}. */
function i2cAddress(address: unknown): number {
  return typeof address === 'object' && address !== null ? Number((address as any).address) : Number(address);
}

function makeI2C(host: InterpreterHost, api: ApiGuard, toPin: (p: unknown) => number): object {
  const { realm, i2c1 } = host;
  const bus = realm.toRealm({});
  markDevice(bus, 'I2C1');
  // A NACK throws, as targets/esp32/jshardwareI2c.c's checkError does (jsExceptionHere); without a
  // stack trace, since the SE driver's busy polls throw and catch hundreds per command.
  const nack = (caller: string) => {
    throw realm.errorWithoutStack(`${caller}: slave doesn't ACK the transfer`);
  };
  bus.setup = api.fn((opts: any) => {
    i2c1.configured = {
      scl: opts?.scl === undefined ? 21 : toPin(opts.scl),
      sda: opts?.sda === undefined ? 22 : toPin(opts.sda),
      bitrate: Number(opts?.bitrate) || 100000,
    };
  });
  bus.writeTo = api.fn((address: unknown, ...data: unknown[]) => {
    if (!i2c1.write(i2cAddress(address), flattenBytes(data))) nack('jshI2CWrite');
  });
  bus.readFrom = api.fn((address: unknown, quantity: unknown) => {
    const n = Math.max(0, Number(quantity) | 0);
    const got = i2c1.read(i2cAddress(address), n);
    if (!got) return nack('jshI2CRead');
    const out = new Uint8Array(n);
    out.set(got.subarray(0, n));
    return realm.bytes(out);
  });
  return bus;
}

function installOutput(host: InterpreterHost, api: ApiGuard): void {
  const print = api.fn((...args: unknown[]) => host.print(formatPrintArguments(args) + '\n'));
  host.realm.define('print', print);
  const consoleObj = host.realm.toRealm({});
  consoleObj.log = print;
  host.realm.define('console', consoleObj);
}

function installE(host: InterpreterHost, api: ApiGuard): void {
  const { realm } = host;
  const E = realm.toRealm({});
  E.toString = api.fn((...args: unknown[]) => bytesToString(flattenBytes(args)));
  E.toUint8Array = api.fn((...args: unknown[]) => realm.bytes(flattenBytes(args)));
  E.toArrayBuffer = api.fn((s: unknown) => realm.arrayBuffer(flattenBytes([s])));
  E.hwRand = api.fn(() => host.rand.next());
  E.srand = api.fn((seed: unknown) => host.rand.seed(Number(seed)));
  E.CRC32 = api.fn((data: unknown) => crc32(flattenBytes([data])));
  E.setBootCode = api.fn((code: unknown, alwaysExec: unknown) =>
    host.setBootCode(code === undefined ? '' : String(code), Boolean(alwaysExec)),
  );
  E.getErrorFlags = api.fn(() => realm.toRealm([]));
  E.reboot = api.fn(() => host.requestLoad(undefined));
  // src/jswrap_espruino.c: no argument (or undefined) removes the password; anything else is kept as its
  // string (jsvAsString), of any length, though the console accepts at most 20 typed characters.
  E.setPassword = api.fn((password: unknown) =>
    host.setConsolePassword(password === undefined ? undefined : formatAsString(password)),
  );
  E.lockConsole = api.fn(() => host.lockConsole());
  realm.define('E', E);
}

/** require("TelnetServer") (libs/network/telnet/jswrap_telnet.c jswrap_telnet_setOptions). */
function makeTelnetServer(host: InterpreterHost, api: ApiGuard): object {
  const { realm } = host;
  const telnet = realm.toRealm({});
  telnet.setOptions = api.fn((options: unknown) => {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw realm.error(`Expecting Object, got ${espruinoTypeName(options)}`);
    }
    const mode = (options as { mode?: unknown }).mode;
    if (typeof mode !== 'string') return; // not a string: the mode stays as it is
    if (mode === 'on') host.setNetworkConsole(true);
    else if (mode === 'off') host.setNetworkConsole(false);
    else throw realm.error('Unknown mode value');
  });
  return telnet;
}

/** What `%t` prints for a value (src/jsutils.c: "null", the basic class name, else jsvGetTypeOf). */
function espruinoTypeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'Array';
  switch (typeof value) {
    case 'string':
      return 'String';
    case 'number':
      return 'Number';
    case 'boolean':
      return 'Boolean';
    case 'function':
      return 'Function';
    default:
      return typeof value;
  }
}

function installMisc(host: InterpreterHost, api: ApiGuard): void {
  const { realm } = host;
  realm.define('global', realm.global);
  realm.define(
    'load',
    api.fn((file: unknown) => host.requestLoad(file === undefined ? undefined : String(file))),
  );
  realm.define(
    'reset',
    api.fn(() => host.requestReset()),
  );
  realm.define(
    'btoa',
    api.fn((s: unknown) => {
      const str = String(s);
      for (let i = 0; i < str.length; i++)
        if (str.charCodeAt(i) > 255) throw realm.error('btoa: character outside 0..255 (Espruino strings are 8-bit)');
      return Buffer.from(str, 'latin1').toString('base64');
    }),
  );
  realm.define(
    'atob',
    api.fn((s: unknown) => Buffer.from(String(s).replace(/[^A-Za-z0-9+/]/g, ''), 'base64').toString('latin1')),
  );
  const process = realm.toRealm({
    version: ESPRUINO_VERSION,
    env: { VERSION: ESPRUINO_VERSION, BOARD: 'ESP32', MODULES: BUILT_IN_MODULES.join(',') },
  });
  realm.define('process', process);
  const math = realm.global.Math;
  // Math.random uses the same rand() as E.hwRand (src/jswrap_math.c); the scaling to [0,1) is assumed.
  math.random = api.fn(() => host.rand.next() / 0x80000000);
  math.clip = api.fn((x: number, min: number, max: number) => (x < min ? min : x > max ? max : x));
  math.wrap = api.fn((x: number, max: number) => ((x % max) + max) % max);
}

// ---------------------------------------------------------------------------------------------
// crypto (libs/crypto/jswrap_crypto.c over mbedtls)

function makeCrypto(host: InterpreterHost): object {
  const { realm } = host;
  const api = new ApiGuard(host);
  const c = realm.toRealm({});
  const hash = (alg: string) =>
    api.fn((msg: unknown) =>
      realm.arrayBuffer(
        nodeCrypto
          .createHash(alg)
          .update(flattenBytes([msg]))
          .digest(),
      ),
    );
  c.SHA1 = hash('sha1');
  c.SHA224 = hash('sha224');
  c.SHA256 = hash('sha256');
  c.SHA384 = hash('sha384');
  c.SHA512 = hash('sha512');
  c.PBKDF2 = api.fn((pass: unknown, salt: unknown, opts: any) => {
    const words = Number(opts?.keySize) || 4;
    const iterations = Number(opts?.iterations) || 1;
    const hasher = String(opts?.hasher ?? 'SHA1').toLowerCase();
    return realm.arrayBuffer(
      nodeCrypto.pbkdf2Sync(flattenBytes([pass]), flattenBytes([salt]), iterations, words * 4, hasher),
    );
  });
  const aes = (decrypt: boolean) =>
    api.fn((msg: unknown, key: unknown, opts: any) => {
      const data = flattenBytes([msg]);
      const k = flattenBytes([key]);
      if (![16, 24, 32].includes(k.length)) throw realm.error('Invalid key length');
      const mode = String(opts?.mode ?? 'CBC').toUpperCase();
      const bits = k.length * 8;
      let input = data;
      let iv: Uint8Array | null = new Uint8Array(16);
      let cipher: string;
      if (mode === 'CBC') {
        if (data.length % 16) throw realm.error('Message length must be a multiple of 16 for CBC');
        if (opts?.iv !== undefined) iv = padIv(flattenBytes([opts.iv]));
        cipher = `aes-${bits}-cbc`;
      } else if (mode === 'CFB') {
        if (opts?.iv !== undefined) iv = padIv(flattenBytes([opts.iv]));
        cipher = `aes-${bits}-cfb8`;
      } else if (mode === 'CTR') {
        cipher = `aes-${bits}-ctr`; // the counter is a zeroed local in jswrap_crypto.c: the iv is ignored
      } else if (mode === 'ECB') {
        input = data.subarray(0, data.length - (data.length % 16));
        iv = null;
        cipher = `aes-${bits}-ecb`;
      } else {
        throw realm.error('Feature unavailable');
      }
      const op = decrypt ? nodeCrypto.createDecipheriv(cipher, k, iv) : nodeCrypto.createCipheriv(cipher, k, iv);
      op.setAutoPadding(false);
      return realm.arrayBuffer(Buffer.concat([op.update(input), op.final()]));
    });
  c.AES = realm.toRealm({});
  c.AES.encrypt = aes(false);
  c.AES.decrypt = aes(true);
  return c;
}

function padIv(iv: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out.set(iv.subarray(0, 16));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Host modules (Storage, net, Wifi) seen from firmware.

/**
 * A realm-facing view of a host object: methods run through the ApiGuard, firmware callbacks
 * passed to them run as board events, arguments are rebuilt with host constructors and results
 * with realm constructors; returned objects with methods (sockets, StorageFile) get the same view.
 */
function exposeHostObject(host: InterpreterHost, api: ApiGuard | undefined, target: object): object {
  const guard = api ?? new ApiGuard(host);
  const views = new WeakMap<object, object>();
  const toHostArg = (v: unknown): unknown => {
    if (typeof v === 'function') return (...args: unknown[]) => host.callFirmware(v, args.map(toRealmResult));
    return host.realm.toHost(v);
  };
  const toRealmResult = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    const proto = Object.getPrototypeOf(v);
    const plain =
      Array.isArray(v) ||
      proto === Object.prototype ||
      proto === null ||
      v instanceof ArrayBuffer ||
      ArrayBuffer.isView(v) ||
      v instanceof Error;
    return plain ? host.realm.toRealm(v) : view(v);
  };
  const view = (obj: object): object => {
    const existing = views.get(obj);
    if (existing) return existing;
    const methods = new Map<PropertyKey, Function>();
    const proxy = new Proxy(obj, {
      get(t, key) {
        const value = (t as any)[key];
        if (typeof value !== 'function') return toRealmResult(value);
        let m = methods.get(key);
        if (!m) {
          m = guard.fn((...args: unknown[]) => toRealmResult(value.apply(t, args.map(toHostArg))));
          methods.set(key, m);
        }
        return m;
      },
      set(t, key, value) {
        (t as any)[key] = toHostArg(value);
        return true;
      },
    });
    views.set(obj, proxy);
    return proxy;
  };
  return view(target);
}

// ---------------------------------------------------------------------------------------------
// Bytes and strings

/** Espruino's argument flattening for E.toString/E.toUint8Array/I2C writeTo (numbers, strings, arrays, typed arrays, {data,count}). */
export function flattenBytes(items: unknown[]): Uint8Array {
  const out: number[] = [];
  const add = (v: unknown): void => {
    if (typeof v === 'number' || typeof v === 'boolean') out.push(Number(v) & 0xff);
    else if (typeof v === 'string') {
      for (let i = 0; i < v.length; i++) out.push(v.charCodeAt(i) & 0xff);
    } else if (v !== null && typeof v === 'object') {
      if (Object.prototype.toString.call(v) === '[object ArrayBuffer]')
        for (const b of new Uint8Array(v as ArrayBuffer)) out.push(b);
      else if (ArrayBuffer.isView(v)) for (const b of new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) out.push(b);
      else if (Array.isArray(v)) for (const x of v) add(x);
      else if ('data' in (v as object)) {
        const count = Number((v as any).count ?? 1);
        for (let i = 0; i < count; i++) add((v as any).data);
      }
    }
  };
  for (const item of items) add(item);
  return Uint8Array.from(out);
}

let crcTable: Uint32Array | undefined;
/** Standard CRC-32 (as E.CRC32, src/jswrap_espruino.c). */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const b of bytes) crc = crcTable[(crc ^ b) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** How Espruino prints an exception nobody caught (jsiCheckErrors: `Uncaught %v`). */
export function formatUncaught(err: unknown): string {
  return `Uncaught ${formatAsString(err)}\n`;
}

// ---------------------------------------------------------------------------------------------
// Realm-side sources (run inside the realm, so objects get the realm's prototypes).

const PIN_CLASS_SOURCE = `(function () {
  function Pin(n) { Object.defineProperty(this, 'n', { value: n }); }
  Pin.prototype.toString = function () { return 'D' + this.n; };
  Pin.prototype.valueOf = function () { return this.n; };
  Pin.prototype.toJSON = function () { return 'D' + this.n; };
  Pin.prototype.read = function () { return digitalRead(this.n) === 1; };
  Pin.prototype.write = function (v) { digitalWrite(this.n, v ? 1 : 0); };
  Pin.prototype.set = function () { digitalWrite(this.n, 1); };
  Pin.prototype.reset = function () { digitalWrite(this.n, 0); };
  Pin.prototype.mode = function (m) { pinMode(this.n, m); };
  Pin.prototype.getMode = function () { return getPinMode(this.n); };
  return Pin;
})()`;

/**
 * EventEmitter methods on every object (Espruino stores listeners as "#on<event>"), a Promise whose
 * callbacks run as idle-loop events (src/jswrap_promise.c) and a Date on the board's clock.
 */
const PRELUDE_SOURCE = `(function (hooks) {
  var hidden = function (o, k, v) { Object.defineProperty(o, k, { value: v, writable: true, configurable: true, enumerable: false }); };
  var OP = Object.prototype;
  hidden(OP, 'on', function (ev, fn) {
    var k = '#on' + ev;
    if (!Object.prototype.hasOwnProperty.call(this, k)) hidden(this, k, []);
    this[k].push(fn);
    return this;
  });
  hidden(OP, 'addListener', OP.on);
  hidden(OP, 'prependListener', function (ev, fn) { this.on(ev, fn); this['#on' + ev].unshift(this['#on' + ev].pop()); return this; });
  hidden(OP, 'emit', function (ev) {
    var list = this['#on' + ev];
    if (!list) return;
    var args = [];
    for (var i = 1; i < arguments.length; i++) args.push(arguments[i]);
    var copy = list.slice();
    for (var j = 0; j < copy.length; j++) copy[j].apply(this, args);
  });
  hidden(OP, 'removeListener', function (ev, fn) {
    var list = this['#on' + ev];
    if (!list) return;
    var i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  });
  hidden(OP, 'removeAllListeners', function (ev) {
    if (ev === undefined) { var own = Object.getOwnPropertyNames(this); for (var n = 0; n < own.length; n++) if (own[n].charAt(0) === '#') delete this[own[n]]; }
    else delete this['#on' + ev];
  });

  var PENDING = 0, FULFILLED = 1, REJECTED = 2;
  function Promise(executor) {
    if (!(this instanceof Promise)) throw new TypeError('Promise must be called with new');
    hidden(this, '_s', PENDING); hidden(this, '_v', undefined); hidden(this, '_cbs', []); hidden(this, '_handled', false);
    var self = this, done = false;
    try {
      executor(function (v) { if (!done) { done = true; resolveWith(self, v); } },
               function (e) { if (!done) { done = true; settle(self, REJECTED, e); } });
    } catch (e) { if (!done) { done = true; settle(self, REJECTED, e); } }
  }
  function resolveWith(p, v) {
    if (v === p) return settle(p, REJECTED, new TypeError('Promise resolved with itself'));
    if (v !== null && (typeof v === 'object' || typeof v === 'function')) {
      var then;
      try { then = v.then; } catch (e) { return settle(p, REJECTED, e); }
      if (typeof then === 'function') {
        var called = false;
        try {
          then.call(v, function (x) { if (!called) { called = true; resolveWith(p, x); } },
                       function (e) { if (!called) { called = true; settle(p, REJECTED, e); } });
        } catch (e) { if (!called) { called = true; settle(p, REJECTED, e); } }
        return;
      }
    }
    settle(p, FULFILLED, v);
  }
  function settle(p, state, v) {
    if (p._s !== PENDING) return;
    p._s = state; p._v = v;
    if (state === REJECTED) hooks.queue(function () { if (!p._handled) hooks.unhandled(v); });
    flush(p);
  }
  function flush(p) {
    if (p._s === PENDING) return;
    var cbs = p._cbs; p._cbs = [];
    cbs.forEach(function (cb) {
      hooks.queue(function () {
        var handler = p._s === FULFILLED ? cb.ok : cb.fail;
        if (typeof handler !== 'function') {
          if (p._s === FULFILLED) resolveWith(cb.child, p._v); else settle(cb.child, REJECTED, p._v);
          return;
        }
        var r;
        try { r = handler(p._v); } catch (e) { settle(cb.child, REJECTED, e); return; }
        resolveWith(cb.child, r);
      });
    });
  }
  hidden(Promise.prototype, 'then', function (ok, fail) {
    var child = new Promise(function () {});
    this._handled = true;
    this._cbs.push({ ok: ok, fail: fail, child: child });
    flush(this);
    return child;
  });
  hidden(Promise.prototype, 'catch', function (fail) { return this.then(undefined, fail); });
  Promise.resolve = function (v) { return (v instanceof Promise) ? v : new Promise(function (res) { res(v); }); };
  Promise.reject = function (e) { return new Promise(function (res, rej) { rej(e); }); };
  Promise.all = function (items) {
    return new Promise(function (res, rej) {
      var results = [], left = items.length;
      if (left === 0) return res(results);
      items.forEach(function (item, i) {
        Promise.resolve(item).then(function (v) { results[i] = v; if (--left === 0) res(results); }, rej);
      });
    });
  };
  hidden(this, 'Promise', Promise);

  var HostDate = Date;
  function EDate(a, b, c, d, e, f, g) {
    var n = arguments.length;
    var dt = n === 0 ? new HostDate(hooks.now()) : n === 1 ? new HostDate(a) : new HostDate(a, b, c === undefined ? 1 : c, d || 0, e || 0, f || 0, g || 0);
    Object.setPrototypeOf(dt, EDate.prototype);
    return dt;
  }
  EDate.prototype = HostDate.prototype;
  hidden(EDate.prototype, 'constructor', EDate);
  EDate.now = function () { return hooks.now(); };
  EDate.parse = HostDate.parse;
  EDate.UTC = HostDate.UTC;
  hidden(this, 'Date', EDate);

  return { emit: function (obj, ev) { obj.emit(ev); } };
})`;
