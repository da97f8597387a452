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

  /** A device drives an input pin. An edge on a watched pin is reported at the current virtual time. */
  setInput(pin: number, level: Level): void {
    checkPin(pin);
    const before = this.read(pin);
    this.driven.set(pin, level ? 1 : 0);
    this.reportEdge(pin, before);
  }

  /** A device stops driving the pin (it floats: pull-up/down decides, which may be an edge). */
  release(pin: number): void {
    checkPin(pin);
    const before = this.read(pin);
    this.driven.delete(pin);
    this.reportEdge(pin, before);
  }

  private reportEdge(pin: number, before: Level): void {
    const after = this.read(pin);
    if (after === before || !this.watched.has(pin)) return;
    const edge: PinEdge = { pin, level: after, clockTime: this.now() };
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
  if (!Number.isInteger(pin) || pin < 0 || pin >= PIN_COUNT) throw new Error(`invalid pin ${pin}: the ESP32 has GPIO 0..${PIN_COUNT - 1}`);
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

/** An emulated I2C slave. */
export interface I2CDevice {
  /** Master wrote these bytes (one transaction). */
  write(bytes: Uint8Array): void;
  /** Master reads n bytes. */
  read(n: number): Uint8Array;
}

export class I2CBus {
  private readonly devices = new Map<number, I2CDevice>();
  configured: { scl?: number; sda?: number; bitrate?: number } | undefined;

  attach(address: number, device: I2CDevice): () => void {
    if (!Number.isInteger(address) || address < 0 || address > 0x7f) throw new Error(`I2C address must be 0..127, got ${address}`);
    if (this.devices.has(address)) throw new Error(`I2C address 0x${address.toString(16)} already has a device`);
    this.devices.set(address, device);
    return () => this.devices.delete(address);
  }

  device(address: number): I2CDevice | undefined {
    return this.devices.get(address & 0x7f);
  }
}
