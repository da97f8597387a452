// The emulated ESP32 meter board: flash + Storage, GPIO, I2C1, Wi-Fi, net, and an Espruino
// interpreter session running in an isolated realm on the shared virtual clock.
//
// Life cycle as on the device: powerOn() boots from Storage (src/jsinteractive.c jsiSemiInit →
// jsiSoftInit: boot files, then E.on('init') handlers, then onInit()); load()/reset() called by the
// firmware take effect when the current code returns to the idle loop; powerCut() stops everything
// at once, leaving the flash holding whatever reached it. A flash PowerLoss thrown inside firmware
// code is a power cut too: the session stops and every Espruino API throws from then on, so a
// firmware catch block cannot carry on doing anything observable.
//
// Only code that passes the Espruino profile check runs (the emulator cannot model Espruino's
// parser; the check is the gate) — boot files and console lines alike. Failing code is refused and
// reported as Espruino reports a parse error.

import { createHash } from 'node:crypto';
import { checkEspruinoProfile, type Violation } from '../../espruino-profile/profile-check.ts';
import type { BoardDefinition } from '../board-definition.ts';
import { TimerTable, type SimClock } from './clock.ts';
import {
  EspruinoRand,
  formatUncaught,
  installEspruinoGlobals,
  type InstalledGlobals,
  type InterpreterHost,
} from './espruino-globals.ts';
import type { Atecc608 } from './devices/atecc608/atecc608.ts';
import { attachAtecc608 } from './devices/atecc608/persistence.ts';
import { Flash, PowerLoss } from './flash.ts';
import { EspruinoFlashModule } from './flash-module.ts';
import { createNetModule, type EmulatedNetModule } from './net.ts';
import { I2CBus, PinBank, WatchTable } from './pins.ts';
import { Realm } from './realm.ts';
import { EspruinoStorage, type StorageRegion } from './storage.ts';
import { WifiStation } from './wifi.ts';

export interface BoardOptions {
  definition: BoardDefinition;
  clock: SimClock;
  /** File persisting the flash (one per board); in memory when absent. */
  flashPath?: string;
  /** Shown in diagnostics; also makes the MAC/IP distinct between boards. */
  name?: string;
}

export interface EvaluateResult {
  value?: unknown;
  /** What went wrong, formatted as Espruino prints it after "Uncaught " (not printed by the board). */
  error?: string;
}

/** Storage methods firmware may call (the StorageModule interface); C's class has internals too. */
const STORAGE_API = [
  'eraseAll',
  'erase',
  'read',
  'readJSON',
  'readArrayBuffer',
  'write',
  'writeJSON',
  'list',
  'compact',
  'getFree',
  'getStats',
  'open',
] as const;
const FLASH_API = ['getPage', 'getFree', 'erasePage', 'read', 'write'] as const;
const WIFI_API = ['connect', 'disconnect', 'getStatus', 'getIP', 'setSNTP', 'on', 'removeAllListeners'] as const;
/** Seconds one getTime() call takes (a loop spinning on it runs at about this pace on an ESP32). */
const GET_TIME_CALL_SECONDS = 10e-6;

type BootKind = 'powerOn' | 'load' | 'reset';

let boardCount = 0;

export class Board {
  readonly definition: BoardDefinition;
  readonly clock: SimClock;
  readonly name: string;
  readonly flash: Flash;
  readonly storage: EspruinoStorage;
  /** require("Flash"): raw access to the same flash (the raw partition beside Storage). */
  readonly flashModule: EspruinoFlashModule;
  readonly pins: PinBank;
  readonly i2c1: I2CBus;
  /** The ATECC608 on I2C1 at 0x60; its EEPROM persists in `<flashPath>.atecc608.json`. */
  readonly secureElement: Atecc608;
  readonly wifi: WifiStation;
  private readonly net: EmulatedNetModule;
  private readonly outputListeners = new Set<(text: string) => void>();
  private rand = new EspruinoRand();
  /** getTime() − SimClock time, in seconds (setTime / SNTP change it). */
  private timeOffset = 0;
  /**
   * The firmware's own time within a turn, when it is ahead of the shared clock: firmware runs in zero
   * virtual time except for what takes time on a board — bus transfers (I2CBus) and getTime() calls,
   * so that a driver spinning on getTime() sees time pass (docs/emulator.md).
   */
  private busyUntil = 0;
  private session: Session | undefined;
  private closed = false;
  /**
   * JSIS_PASSWORD_PROTECTED: set by E.lockConsole(), cleared by the right password. It is in
   * JSIS_SOFTINIT_MASK, so load() and reset() keep it; power-on starts without it (jsiInit).
   */
  private consoleLockFlag = false;
  /** The password E.setPassword keeps in the interpreter's hidden root: gone at every load/reset/power-on (jsvReset). */
  private consolePassword: string | undefined;
  /** tnSrvMode: on at every boot (jswrap_telnet_init, ESP32: "hardcoded for now"), off by setOptions or power off. */
  private networkConsoleMode = false;
  private readonly networkConsoleListeners = new Set<() => void>();

  constructor(opts: BoardOptions) {
    const index = ++boardCount;
    this.definition = opts.definition;
    this.i2c1 = new I2CBus(() => Math.max(this.clock.now(), this.busyUntil), {
      scl: opts.definition.pins.i2cScl,
      sda: opts.definition.pins.i2cSda,
    });
    this.clock = opts.clock;
    this.name = opts.name ?? `${opts.definition.id}-${index}`;
    const layout = flashLayout(opts.definition);
    this.flash = new Flash({
      sizeBytes: layout.bytes,
      pageBytes: opts.definition.storage.pageBytes,
      path: opts.flashPath,
    });
    this.storage = new EspruinoStorage(this.flash, layout.storage);
    this.flashModule = new EspruinoFlashModule(this.flash, layout.address);
    this.secureElement = attachAtecc608({ bus: this.i2c1, clock: this.clock, flashPath: opts.flashPath });
    this.pins = new PinBank(() => this.clock.now());
    this.pins.onEdge((edge) =>
      this.session?.post(() => this.session?.watches.handleEdge(edge.pin, edge.level, edge.clockTime)),
    );
    const octet = (index % 250) + 2;
    const mac = `24:0a:c4:00:${(index >> 8).toString(16).padStart(2, '0')}:${(index & 0xff).toString(16).padStart(2, '0')}`;
    this.wifi = new WifiStation(this.clock, `192.168.4.${octet}`, mac, () => {
      this.timeOffset = 0;
    });
    this.net = createNetModule({ onError: (message) => this.print(message.endsWith('\n') ? message : message + '\n') });
  }

  /** True while the board has power and an interpreter. */
  get running(): boolean {
    return this.session !== undefined && !this.session.stopped;
  }

  /** Seconds as the firmware's getTime() sees them. */
  getTime(): number {
    return Math.max(this.clock.now(), this.i2c1.time, this.busyUntil) + this.timeOffset;
  }

  /** getTime() called by the firmware: the call itself takes time. */
  private firmwareGetTime(): number {
    this.busyUntil = Math.max(this.clock.now(), this.i2c1.time, this.busyUntil) + GET_TIME_CALL_SECONDS;
    return this.busyUntil + this.timeOffset;
  }

  /** The console is locked (E.lockConsole): every line typed at any of its consoles is a password attempt. */
  get consoleLocked(): boolean {
    return this.running && this.consoleLockFlag;
  }

  /** One password attempt typed at a console (src/jsinteractive.c jsiHandleConsoleChar); true once unlocked. */
  consolePasswordAttempt(attempt: string): boolean {
    if (this.consolePassword !== undefined && attempt === this.consolePassword) this.consoleLockFlag = false;
    return !this.consoleLockFlag;
  }

  /** The network console (Espruino's TelnetServer) is on: from every boot until the firmware turns it off. */
  get networkConsoleOn(): boolean {
    return this.running && this.networkConsoleMode;
  }

  onNetworkConsoleChange(listener: () => void): () => void {
    this.networkConsoleListeners.add(listener);
    return () => this.networkConsoleListeners.delete(listener);
  }

  private setNetworkConsoleMode(on: boolean): void {
    if (this.networkConsoleMode === on) return;
    this.networkConsoleMode = on;
    for (const listener of [...this.networkConsoleListeners]) listener();
  }

  /** Boots from Storage as Espruino does after power-on. */
  powerOn(): void {
    if (this.closed) throw new Error(`board ${this.name} is closed`);
    if (this.running) throw new Error(`board ${this.name} is already on: powerCut() it first`);
    this.consoleLockFlag = false; // jsiInit: jsiStatus starts afresh
    this.flash.restorePower();
    this.rand = new EspruinoRand(); // rand()'s static state starts from its constants at power-on
    this.timeOffset = 0;
    this.pins.resetFirmwareState();
    const notice = this.storage.checkAtPowerOn();
    if (notice) this.print(notice);
    this.boot('powerOn');
  }

  /** Power gone at this instant: timers, watches, sockets, Wi-Fi die; the flash keeps what it holds. */
  powerCut(): void {
    if (!this.session) return;
    this.endSession();
    this.setNetworkConsoleMode(false);
    this.wifi.powerOff();
    this.secureElement.powerOff();
    this.pins.resetFirmwareState();
  }

  /**
   * The test harness's back door: runs code in the realm (global scope) as a console line would, then lets
   * the idle loop run, WITHOUT going through a console, so the console lock does not apply. A board has no
   * such door: tools and attack tests use a console (startConsole, attachConsole; boards/console/
   * meter-console.ts inProcessConsole), whose lines go through runConsoleLine.
   */
  evaluate(code: string): EvaluateResult {
    const session = this.session;
    if (!session || session.stopped) return { error: 'Error: the board is off' };
    const refusal = profileRefusal(code, 'console');
    if (refusal) return { error: refusal.replace(/^Uncaught /, '').replace(/\n$/, '') };
    let result: EvaluateResult = {};
    session.runTask(() => {
      try {
        result = { value: session.realm.run(code, 'console') };
      } catch (err) {
        if (!session.stopped)
          result = {
            error: formatUncaught(err)
              .replace(/^Uncaught /, '')
              .replace(/\n$/, ''),
          };
        else result = { error: 'Error: the board lost power' };
      }
    });
    return result;
  }

  /** A line typed at a console (console.ts): runs as evaluate() does, never while the console is locked. */
  runConsoleLine(code: string): EvaluateResult {
    if (this.consoleLocked) return { error: 'Error: the console is locked' }; // console.ts never gets here
    return this.evaluate(code);
  }

  onOutput(listener: (text: string) => void): () => void {
    this.outputListeners.add(listener);
    return () => this.outputListeners.delete(listener);
  }

  /** Frees everything (sockets, timers, flash file); the board cannot be used afterwards. */
  close(): void {
    if (this.closed) return;
    this.powerCut();
    this.net.closeAll();
    this.flash.close();
    this.outputListeners.clear();
    this.networkConsoleListeners.clear();
    this.closed = true;
  }

  // ------------------------------------------------------------------------------------------

  private print(text: string): void {
    for (const l of [...this.outputListeners]) l(text);
  }

  private endSession(): void {
    const s = this.session;
    if (!s) return;
    s.stop();
    this.session = undefined;
    this.net.closeAll();
    this.wifi.sessionEnded();
  }

  private boot(kind: BootKind, file?: string): void {
    const session = new Session(this, (k, f) => this.reboot(k, f));
    this.session = session;
    // jsvReset wipes the hidden root (the password); jswInit runs the libraries' init before the boot code.
    this.consolePassword = undefined;
    this.setNetworkConsoleMode(true);
    const files = bootFiles(kind, file);
    session.runTask(() => {
      for (const name of files) {
        if (session.stopped) return;
        const fileName =
          name === BOOT_CODE ? (this.storage.read('.bootrst') !== undefined ? '.bootrst' : '.bootcde') : name;
        const code = this.storage.read(fileName);
        if (code === undefined) continue;
        session.runCode(code, fileName);
      }
      if (session.stopped) return;
      session.globals.emitOnE('init');
      const onInit = session.globals.onInit();
      if (onInit && !session.stopped) {
        this.print('Running onInit()...\n');
        session.callNow(onInit, []);
      }
    });
  }

  /** load()/reset() requested by firmware, performed when its code has returned to the idle loop. */
  private reboot(kind: 'load' | 'reset', file: string | undefined): void {
    const s = this.session;
    if (!s) return;
    s.globals.emitOnE('kill');
    this.endSession();
    this.pins.resetFirmwareState();
    this.boot(kind, file);
  }

  /** @internal used by Session */
  hostServices(): BoardServices {
    return {
      clock: this.clock,
      pins: this.pins,
      i2c1: this.i2c1,
      rand: () => this.rand,
      print: (t) => this.print(t),
      boardTime: () => this.firmwareGetTime(),
      boardTimeOffset: () => this.timeOffset,
      setBoardTime: (t) => {
        this.timeOffset = t - this.clock.now();
      },
      setConsolePassword: (password) => {
        this.consolePassword = password;
      },
      lockConsole: () => {
        if (this.consolePassword !== undefined) this.consoleLockFlag = true;
      },
      setNetworkConsole: (on) => this.setNetworkConsoleMode(on),
      setBootCode: (code, alwaysExec) => {
        for (const f of ['.bootcde', '.bootrst', '.varimg']) this.storage.erase(f);
        if (code.length > 0) this.storage.write(alwaysExec ? '.bootrst' : '.bootcde', code);
      },
      builtInModule: (name) => {
        if (name === 'Storage') return facade(this.storage, STORAGE_API);
        if (name === 'Flash') return facade(this.flashModule, FLASH_API);
        if (name === 'net') return facade(this.net, ['connect', 'createServer']);
        if (name === 'Wifi') return facade(this.wifi, WIFI_API);
        return undefined;
      },
      powerLost: () => this.powerCut(),
    };
  }
}

/**
 * The emulated chip: one flash from the lowest raw partition the board's own chip has (the ones not inside
 * Storage) to the end of Storage, so both live in the one flash file and share the power-cut model.
 */
function flashLayout(def: BoardDefinition): { address: number; bytes: number; storage: StorageRegion } {
  const storageEnd = def.storage.addr + def.storage.bytes;
  let address = def.storage.addr;
  for (const p of def.rawFlash) {
    if (p.storageAddr !== undefined) continue;
    if (p.addr + p.bytes > def.storage.addr && p.addr < storageEnd)
      throw new Error(`board ${def.id}: raw flash partition ${p.addr} overlaps Storage`);
    if (p.addr + p.bytes > storageEnd)
      throw new Error(`board ${def.id}: raw flash partition ${p.addr} must lie below Storage (${def.storage.addr})`);
    address = Math.min(address, p.addr);
  }
  return {
    address,
    bytes: storageEnd - address,
    storage: { address: def.storage.addr, flashOffset: def.storage.addr - address, bytes: def.storage.bytes },
  };
}

/** Stands for ".bootrst if it exists, else .bootcde". */
const BOOT_CODE = '<boot code>';

/** Which Storage files run, in order (src/jsflash.c jsfLoadBootCodeFromFlash). */
function bootFiles(kind: BootKind, file: string | undefined): string[] {
  const numbered = ['.boot0', '.boot1', '.boot2', '.boot3'];
  if (kind === 'powerOn') return ['.bootPowerOn', ...numbered, BOOT_CODE];
  if (kind === 'load' && file === undefined) return [...numbered, BOOT_CODE];
  if (kind === 'load') return ['.bootrst', file!];
  return ['.bootrst'];
}

function facade<T extends object>(target: T, names: readonly string[]): object {
  const out: Record<string, unknown> = {};
  for (const n of names) out[n] = (target as any)[n].bind(target);
  return out;
}

/**
 * Boot code already checked, by file name and text: a board boots the same bundle again and again
 * (hundreds of power cuts in one test) and the check of a 100 KB bundle costs far more than the boot.
 */
const checkedBootCode = new Map<string, string | undefined>();
const MAX_CHECKED_BOOT_CODE = 16;

/** "Uncaught SyntaxError: …" as Espruino prints a parse error, or undefined when the code passes. */
function profileRefusal(code: string, fileName: string): string | undefined {
  if (code.length < 4096) return checkProfile(code, fileName);
  const key = fileName + '\0' + createHash('sha256').update(code, 'latin1').digest('hex');
  if (checkedBootCode.has(key)) return checkedBootCode.get(key);
  const refusal = checkProfile(code, fileName);
  if (checkedBootCode.size >= MAX_CHECKED_BOOT_CODE) checkedBootCode.delete(checkedBootCode.keys().next().value!);
  checkedBootCode.set(key, refusal);
  return refusal;
}

function checkProfile(code: string, fileName: string): string | undefined {
  const violations: Violation[] = checkEspruinoProfile(code, fileName);
  if (violations.length === 0) return undefined;
  const v = violations[0];
  const more = violations.length > 1 ? ` (and ${violations.length - 1} more: run \`veilgrid check\` on it)` : '';
  return `Uncaught SyntaxError: ${v.construct}: ${v.message}${more}\n at line ${v.line} col ${v.column} of ${fileName}\n`;
}

// ---------------------------------------------------------------------------------------------

interface BoardServices {
  clock: SimClock;
  pins: PinBank;
  i2c1: I2CBus;
  rand(): EspruinoRand;
  print(text: string): void;
  boardTime(): number;
  /** getTime() − SimClock time (setTime / SNTP), without the firmware's time ahead of the clock. */
  boardTimeOffset(): number;
  setBoardTime(seconds: number): void;
  setBootCode(code: string, alwaysExec: boolean): void;
  setConsolePassword(password: string | undefined): void;
  lockConsole(): void;
  setNetworkConsole(on: boolean): void;
  builtInModule(name: string): object | undefined;
  powerLost(): void;
}

/**
 * One interpreter lifetime (boot → load/reset/power cut): the realm, its timers and watches, and
 * the idle-loop queue. Everything firmware-triggered runs as a task on this queue, one at a time,
 * never nested; load()/reset() are performed between tasks.
 */
class Session implements InterpreterHost {
  readonly realm = new Realm();
  readonly timers: TimerTable;
  readonly watches: WatchTable;
  readonly globals: InstalledGlobals;
  private readonly services: BoardServices;
  private readonly queue: (() => void)[] = [];
  private busy = false;
  private stoppedFlag = false;
  private todo: { kind: 'load' | 'reset'; file?: string } | undefined;

  constructor(
    board: Board,
    private readonly reboot: (kind: 'load' | 'reset', file: string | undefined) => void,
  ) {
    this.services = board.hostServices();
    this.timers = new TimerTable(this.services.clock, (entry) => this.post(() => entry.run(entry)));
    this.watches = new WatchTable(this.services.pins, this.timers, (t) => t + this.services.boardTimeOffset());
    this.globals = installEspruinoGlobals(this);
  }

  // --- InterpreterHost ---
  get clock(): SimClock {
    return this.services.clock;
  }
  get pins(): PinBank {
    return this.services.pins;
  }
  get i2c1(): I2CBus {
    return this.services.i2c1;
  }
  get rand(): EspruinoRand {
    return this.services.rand();
  }
  get stopped(): boolean {
    return this.stoppedFlag;
  }
  print(text: string): void {
    if (!this.stoppedFlag) this.services.print(text);
  }
  boardTime(): number {
    return this.services.boardTime();
  }
  setBoardTime(seconds: number): void {
    this.services.setBoardTime(seconds);
  }
  callFirmware(fn: Function, args: unknown[]): void {
    this.post(() => this.callNow(fn, args));
  }
  queueEvent(run: () => void): void {
    this.post(run);
  }
  requestLoad(file: string | undefined): void {
    this.todo = { kind: 'load', file };
  }
  requestReset(): void {
    this.todo = { kind: 'reset' };
  }
  setBootCode(code: string, alwaysExec: boolean): void {
    this.services.setBootCode(code, alwaysExec);
  }
  setConsolePassword(password: string | undefined): void {
    this.services.setConsolePassword(password);
  }
  lockConsole(): void {
    this.services.lockConsole();
  }
  setNetworkConsole(on: boolean): void {
    this.services.setNetworkConsole(on);
  }
  builtInModule(name: string): object | undefined {
    return this.services.builtInModule(name);
  }
  isPowerLoss(err: unknown): boolean {
    return err instanceof PowerLoss;
  }
  powerLost(): void {
    this.services.powerLost();
  }

  // --- event loop ---

  /** Queues a task; runs the queue now unless a task is already running. */
  post(task: () => void): void {
    if (this.stoppedFlag) return;
    this.queue.push(task);
    if (!this.busy) this.drain();
  }

  /** Runs one task now (then the queue), as the idle loop would. */
  runTask(task: () => void): void {
    if (this.stoppedFlag) return;
    if (this.busy) return this.post(task);
    this.queue.unshift(task);
    this.drain();
  }

  /** Calls a firmware function; an exception nobody caught is printed and the board carries on. */
  callNow(fn: Function, args: unknown[]): void {
    if (this.stoppedFlag) return;
    try {
      fn.apply(undefined, args);
    } catch (err) {
      if (!this.stoppedFlag) this.services.print(formatUncaught(err));
    }
  }

  /** Runs a boot file or other source, refusing what fails the profile check. */
  runCode(code: string, fileName: string): void {
    const refusal = profileRefusal(code, fileName);
    if (refusal) {
      this.services.print(refusal);
      return;
    }
    try {
      this.realm.run(code, fileName);
    } catch (err) {
      if (!this.stoppedFlag) this.services.print(formatUncaught(err));
    }
  }

  stop(): void {
    this.stoppedFlag = true;
    this.queue.length = 0;
    this.timers.dispose();
    this.watches.removeAll();
  }

  private drain(): void {
    this.busy = true;
    try {
      while (!this.stoppedFlag) {
        const task = this.queue.shift();
        if (!task) break;
        task();
        if (this.todo && !this.stoppedFlag) {
          const { kind, file } = this.todo;
          this.todo = undefined;
          this.reboot(kind, file);
          return;
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
