// GPIO and I2C of the emulated board.
//
// PinBank is the hardware: levels driven by devices on inputs, levels written by the firmware on
// outputs, and an edge listener (the "interrupt") that the board's interpreter subscribes to.
// WatchTable is Espruino's setWatch bookkeeping (src/jswrap_io.c, src/jsinteractive.c), including
// debounce, which Espruino does in the interpreter with a timer per watch, not in hardware.
// I2CBus is a master bus on which emulated devices attach by 7-bit address.

import type { TimerEntry, TimerTable } from './clock.ts';

export type Level = 0 | 1;
export type PinMode = 'input' | 'input_pullup' | 'input_pulldown' | 'output' | 'opendrain' | 'analog';

/** ESP32 GPIO numbers 0..39. */
export const PIN_COUNT = 40;

export interface PinEdge {
  pin: number;
  level: Level;
  /** Virtual seconds (SimClock time) of the edge. */
  clockTime: number;
}

export class PinBank {
  private readonly driven = new Map<number, Level>();
  private readonly outputs = new Map<number, Level>();
  private readonly modes = new Map<number, PinMode>();
  private readonly watched = new Set<number>();
  private readonly edgeListeners = new Set<(edge: PinEdge) => void>();
  private readonly outputListeners = new Set<(pin: number, level: Level) => void>();

  constructor(private readonly now: () => number) {}

  /**
   * A device drives an input pin. An edge on a watched pin is timestamped as the ESP32's GPIO
   * interrupt would: at `atClockTime`, the instant the level changed on the device's own timeline
   * (default: now). A device that runs late — its timer fired after other work already read a
   * later now() — must pass its scheduled instant, or its edges bunch up at the moment it caught
   * up and a 30 ms pulse or pause can shrink to nothing (see docs/emulator.md).
   */
  setInput(pin: number, level: Level, atClockTime?: number): void {
    checkPin(pin);
    const before = this.read(pin);
    this.driven.set(pin, level ? 1 : 0);
    this.reportEdge(pin, before, atClockTime);
  }

  /** A device stops driving the pin (it floats: pull-up/down decides, which may be an edge). */
  release(pin: number, atClockTime?: number): void {
    checkPin(pin);
    const before = this.read(pin);
    this.driven.delete(pin);
    this.reportEdge(pin, before, atClockTime);
  }

  private reportEdge(pin: number, before: Level, atClockTime: number | undefined): void {
    const after = this.read(pin);
    if (after === before || !this.watched.has(pin)) return;
    const edge: PinEdge = { pin, level: after, clockTime: atClockTime ?? this.now() };
    for (const l of this.edgeListeners) l(edge);
  }

  /** The level the firmware reads (digitalRead). */
  read(pin: number): Level {
    checkPin(pin);
    const mode = this.modes.get(pin);
    if (mode === 'output' || mode === 'opendrain') return this.outputs.get(pin) ?? 0;
    const d = this.driven.get(pin);
    if (d !== undefined) return d;
    // ESP32 forces the internal pull-up on every watched pin (targets/esp32/jshardware.c).
    if (mode === 'input_pullup' || this.watched.has(pin)) return 1;
    return 0;
  }

  /** Firmware digitalWrite. */
  write(pin: number, level: Level): void {
    checkPin(pin);
    const mode = this.modes.get(pin);
    if (mode !== 'output' && mode !== 'opendrain') this.modes.set(pin, 'output');
    this.outputs.set(pin, level);
    for (const l of this.outputListeners) l(pin, level);
  }

  /** What the firmware last wrote to an output pin (undefined if never written). */
  getOutput(pin: number): Level | undefined {
    return this.outputs.get(pin);
  }

  setMode(pin: number, mode: PinMode | undefined): void {
    checkPin(pin);
    if (mode === undefined) this.modes.delete(pin);
    else this.modes.set(pin, mode);
  }

  getMode(pin: number): PinMode | undefined {
    return this.modes.get(pin);
  }

  /** The interpreter enables/disables the pin interrupt. */
  setWatched(pin: number, on: boolean): void {
    if (on) this.watched.add(pin);
    else this.watched.delete(pin);
  }

  onEdge(listener: (edge: PinEdge) => void): () => void {
    this.edgeListeners.add(listener);
    return () => this.edgeListeners.delete(listener);
  }

  onOutput(listener: (pin: number, level: Level) => void): () => void {
    this.outputListeners.add(listener);
    return () => this.outputListeners.delete(listener);
  }

  /** Power cut / reset: outputs and modes go back to their reset state, interrupts off. */
  resetFirmwareState(): void {
    this.outputs.clear();
    this.modes.clear();
    this.watched.clear();
  }
}

function checkPin(pin: number): void {
  if (!Number.isInteger(pin) || pin < 0 || pin >= PIN_COUNT)
    throw new Error(`invalid pin ${pin}: the ESP32 has GPIO 0..${PIN_COUNT - 1}`);
}

// ---------------------------------------------------------------------------------------------

/** What a watch callback receives: {state, time, lastTime, pin} (seconds on the board's getTime clock). */
export interface WatchEventData {
  state: boolean;
  time: number;
  lastTime: number | undefined;
  pin: number;
}

interface Watch {
  id: number;
  pin: number;
  recur: boolean;
  /** 1 rising, -1 falling, 0 both. */
  edge: number;
  debounceMs: number;
  /** Debounced level; Espruino compares every edge with it. */
  state: boolean;
  lastTime: number | undefined;
  /** Pending debounce timer and the level it will confirm. */
  timeout?: { id: number; state: boolean };
  callback: (data: WatchEventData) => void;
}

export interface WatchOptions {
  repeat: boolean;
  edge: number;
  debounceMs: number;
}

export class WatchTable {
  private readonly watches = new Map<number, Watch>();

  /**
   * `toBoardTime` converts SimClock seconds to the board's getTime() seconds. Edges and debounce
   * timers must reach this table from the interpreter's event loop (as Espruino's idle loop does).
   */
  constructor(
    private readonly pins: PinBank,
    private readonly timers: TimerTable,
    private readonly toBoardTime: (clockSeconds: number) => number,
  ) {}

  add(pin: number, opts: WatchOptions, callback: (data: WatchEventData) => void): number {
    const id = this.watches.size === 0 ? 1 : Math.max(...this.watches.keys()) + 1;
    this.pins.setWatched(pin, true);
    this.watches.set(id, {
      id,
      pin,
      recur: opts.repeat,
      edge: opts.edge,
      debounceMs: opts.debounceMs,
      state: this.pins.read(pin) === 1,
      lastTime: undefined,
      callback,
    });
    return id;
  }

  /** Returns false for an unknown id (the caller throws Espruino's "Unknown Watch"). */
  remove(id: number): boolean {
    const w = this.watches.get(id);
    if (!w) return false;
    this.drop(w);
    return true;
  }

  removeAll(): void {
    for (const w of [...this.watches.values()]) this.drop(w);
  }

  get size(): number {
    return this.watches.size;
  }

  /** A pin edge (from the PinBank interrupt), processed in the event loop with its own time. */
  handleEdge(pin: number, level: Level, clockTime: number): void {
    const high = level === 1;
    for (const w of [...this.watches.values()]) {
      if (w.pin !== pin || this.watches.get(w.id) !== w) continue;
      if (w.debounceMs <= 0) {
        this.execute(w, high, this.toBoardTime(clockTime));
        continue;
      }
      if (w.timeout) {
        const t = this.timers.get(w.timeout.id);
        const oldDue = t ? t.due : clockTime;
        if (clockTime > oldDue && high !== w.state) {
          // The debounce timer should already have fired: fire now with its time (as Espruino does).
          this.timers.remove(w.timeout.id);
          w.timeout = undefined;
          w.state = high;
          this.execute(w, high, this.toBoardTime(oldDue - w.debounceMs / 1000));
        } else {
          this.timers.reschedule(w.timeout.id, clockTime + w.debounceMs / 1000);
          w.timeout.state = high;
        }
      } else if (high !== w.state) {
        const entry = this.timers.add((e) => this.debounceFired(w, e), w.debounceMs, { forWatch: true });
        this.timers.reschedule(entry.id, clockTime + w.debounceMs / 1000);
        w.timeout = { id: entry.id, state: high };
      }
    }
  }

  private execute(w: Watch, high: boolean, time: number): void {
    if (shouldExecute(w.edge, high)) {
      const data: WatchEventData = { state: high, time, lastTime: w.lastTime, pin: w.pin };
      if (!w.recur) this.drop(w);
      w.lastTime = time;
      w.callback(data);
      return;
    }
    w.lastTime = time;
  }

  private debounceFired(w: Watch, entry: TimerEntry): void {
    if (!w.timeout || w.timeout.id !== entry.id) return;
    const timerState = w.timeout.state;
    const watchState = w.state;
    w.state = timerState;
    w.timeout = undefined;
    if (watchState === timerState) return;
    // Espruino reports the time of the last edge (timer due minus the debounce delay).
    const time = this.toBoardTime(entry.due - w.debounceMs / 1000);
    if (shouldExecute(w.edge, timerState)) {
      const data: WatchEventData = { state: timerState, time, lastTime: w.lastTime, pin: w.pin };
      if (!w.recur) this.drop(w);
      w.lastTime = time;
      w.callback(data);
      return;
    }
    w.lastTime = time;
  }

  private drop(w: Watch): void {
    this.watches.delete(w.id);
    if (w.timeout) this.timers.remove(w.timeout.id);
    w.timeout = undefined;
    if (![...this.watches.values()].some((o) => o.pin === w.pin)) this.pins.setWatched(w.pin, false);
  }
}

function shouldExecute(edge: number, high: boolean): boolean {
  return edge === 0 || (high && edge > 0) || (!high && edge < 0);
}

// ---------------------------------------------------------------------------------------------

/** One transfer as every device on the bus sees it (SDA and SCL are shared wires). */
export interface I2CTransfer {
  /** 7-bit address the master sent. */
  address: number;
  read: boolean;
  /** Bus clock (Hz) the master used. */
  bitrate: number;
  /**
   * Longest stretch SDA is held low during the start condition and the address byte, in µs:
   * address 0x00 (a general call) at 100 kHz holds it low for 90 µs, which is how a sleeping
   * ATECC608 is woken (tWLO ≥ 60 µs).
   */
  sdaLowMicros: number;
  /** Virtual seconds at which the address byte has gone out (when the device ACKs or not). */
  start: number;
}

/** An emulated I2C slave. */
export interface I2CDevice {
  /** Master wrote these bytes (one transaction). Returning false NACKs the address. */
  write(bytes: Uint8Array, transfer: I2CTransfer): boolean | void;
  /** Master reads n bytes. Returning undefined NACKs the address (the master gets no data). */
  read(n: number, transfer: I2CTransfer): Uint8Array | undefined;
  /** Sees every transfer on the bus, whatever its address, before it is delivered. */
  observe?(transfer: I2CTransfer): void;
}

/** Espruino's I2C1.setup default. */
const DEFAULT_BITRATE = 100000;

/**
 * How the master drives the wires. `software` is Espruino's bit-banged I2C (`new I2C()`, src/jsi2c.c): each
 * step waits `dly` = 250000/bitrate whole µs, a bit takes four of them, and SDA is let go between bits, so only
 * the start condition and one bit hold it low without a break. A missing ACK is not an error there (Espruino
 * builds it without I2C_NACK_CHECK): the caller decides what a write nobody took or a read of 0xFF means.
 */
export interface I2CMaster {
  bitrate: number;
  software: boolean;
  /** Software I2C's pins: it reaches the bus only on the pins the bus is wired to. */
  scl?: number;
  sda?: number;
}

/** The GPIOs the bus's wires are on (the board definition's i2cScl, i2cSda). */
export interface I2CWiring {
  scl: number;
  sda: number;
}

export class I2CBus {
  private readonly devices = new Map<number, I2CDevice>();
  configured: { scl?: number; sda?: number; bitrate?: number } | undefined;
  /**
   * Virtual time the bus is busy until. Firmware runs in zero virtual time (see clock.ts), but
   * bits on the wire take time: each transfer starts at max(clock, end of the previous transfer)
   * and lasts as long as its bits at the master's bitrate, so a device that is busy for a while
   * (an ATECC608 executing a command) sees time pass while the firmware polls it.
   */
  private busTime = 0;

  /**
   * `now` is the shared SimClock's time in virtual seconds. With `wiring`, software I2C on other pins
   * reaches no device (the ESP32's I2C peripheral can be routed to any pins, so I2C1 always does).
   */
  constructor(
    private readonly now: () => number = () => 0,
    private readonly wiring?: I2CWiring,
  ) {}

  /** Virtual seconds on the bus: the clock's time, or the end of the last transfer if that is later. */
  get time(): number {
    return Math.max(this.busTime, this.now());
  }

  attach(address: number, device: I2CDevice): () => void {
    if (!Number.isInteger(address) || address < 0 || address > 0x7f)
      throw new Error(`I2C address must be 0..127, got ${address}`);
    if (this.devices.has(address)) throw new Error(`I2C address 0x${address.toString(16)} already has a device`);
    this.devices.set(address, device);
    return () => this.devices.delete(address);
  }

  device(address: number): I2CDevice | undefined {
    return this.devices.get(address & 0x7f);
  }

  /** A master write (by default I2C1 as configured); false when no device acknowledged. */
  write(address: number, bytes: Uint8Array, master: I2CMaster = this.peripheral()): boolean {
    const transfer = this.begin(address & 0x7f, false, master);
    const dev = this.reaches(master) ? this.devices.get(transfer.address) : undefined;
    const acked = dev !== undefined && dev.write(bytes, transfer) !== false;
    this.end(transfer, master, acked || master.software ? bytes.length : 0);
    return acked;
  }

  /** A master read of n bytes (by default I2C1 as configured); undefined when no device acknowledged. */
  read(address: number, n: number, master: I2CMaster = this.peripheral()): Uint8Array | undefined {
    const transfer = this.begin(address & 0x7f, true, master);
    const got = this.reaches(master) ? this.devices.get(transfer.address)?.read(n, transfer) : undefined;
    this.end(transfer, master, got || master.software ? n : 0);
    return got;
  }

  private reaches(master: I2CMaster): boolean {
    return !master.software || !this.wiring || (master.scl === this.wiring.scl && master.sda === this.wiring.sda);
  }

  /** The ESP32's I2C peripheral (I2C1) as set up. */
  private peripheral(): I2CMaster {
    return { bitrate: this.configured?.bitrate || DEFAULT_BITRATE, software: false };
  }

  private begin(address: number, read: boolean, master: I2CMaster): I2CTransfer {
    const startedAt = this.time;
    const addressByte = (address << 1) | (read ? 1 : 0);
    // Start condition + 8 address bits + the ACK bit.
    const transfer: I2CTransfer = {
      address,
      read,
      bitrate: master.bitrate,
      sdaLowMicros: master.software
        ? softwareSdaLowMicros(addressByte, master.bitrate)
        : (sdaLowBits(addressByte) * 1e6) / master.bitrate,
      start: startedAt + 10 * bitSeconds(master),
    };
    this.busTime = transfer.start;
    if (this.reaches(master)) for (const dev of this.devices.values()) dev.observe?.(transfer);
    return transfer;
  }

  /** Data bytes (8 bits + ACK each; software I2C clocks them all, ACK or not) and the stop condition. */
  private end(transfer: I2CTransfer, master: I2CMaster, dataBytes: number): void {
    this.busTime = transfer.start + (9 * dataBytes + 1) * bitSeconds(master);
  }
}

/** Software I2C's wait per step, in whole µs (src/jsi2c.c i2c_initstruct: 250000/bitrate, integer division). */
function softwareStepMicros(bitrate: number): number {
  return Math.floor(250000 / bitrate);
}

function bitSeconds(master: I2CMaster): number {
  // Software I2C: four steps a bit; at a step of 0 µs the pin writes alone set the pace (taken as 0.25 µs).
  return master.software ? (4 * Math.max(softwareStepMicros(master.bitrate), 0.25)) / 1e6 : 1 / master.bitrate;
}

/**
 * Longest time software I2C holds SDA low in the start condition and the address byte: the start is two
 * steps; a 0 bit three more (SDA is let go after each bit), joined to the start when it is the first bit.
 */
function softwareSdaLowMicros(addressByte: number, bitrate: number): number {
  const step = softwareStepMicros(bitrate);
  const firstBitLow = (addressByte & 0x80) === 0;
  const anyLaterBitLow = (addressByte & 0x7f) !== 0x7f;
  return step * Math.max(firstBitLow ? 5 : 2, anyLaterBitLow ? 3 : 0);
}

/** Longest run of 0 bits on SDA in the start condition (one bit time, low) and the address byte. */
function sdaLowBits(addressByte: number): number {
  let longest = 0;
  let run = 1; // the start condition pulls SDA low before the first bit
  for (let bit = 7; bit >= 0; bit--) {
    if ((addressByte >> bit) & 1) {
      longest = Math.max(longest, run);
      run = 0;
    } else {
      run++;
    }
  }
  return Math.max(longest, run);
}
