// An S0 impulse output (DIN EN 62053-31) as found on electricity meters: one pulse per
// 1/impulsesPerKWh kWh of energy, at least 30 ms long, with at least 30 ms between pulses.
// The output is an open collector (passive S0): idle it does not drive the pin, so the ESP32's
// pull-up holds it high; a pulse pulls it low. The source integrates its load profile over virtual
// time: falling edge at the instant the energy threshold is crossed, rising edge pulseWidthMs later.
// Pulses that would come faster than width + pause are delayed (a real meter's output is
// rate-limited the same way), never dropped.
//
// The source keeps its own timeline: every step and edge happens at the instant it was scheduled
// for, and edges are driven with that instant as their time. When the host runs a timer late (at
// high clock speeds, after other work already read a later now()), the clock hands the callback
// that later time; using it would move this pulse's edges next to the following ones and squeeze
// a 30 ms pulse or pause to nothing, which no S0 output does (see docs/emulator.md).

import type { SimClock } from '../clock.ts';
import type { LoadProfile } from '../load-profile.ts';
import type { PinBank } from '../pins.ts';

/**
 * What a source needs of a board: its clock and its input pins. The emulator's Board, and the
 * espruino-linux board (real time; edges go to the interpreter's pins), both have them.
 */
export interface S0Board {
  clock: Pick<SimClock, 'now' | 'setTimeoutAt' | 'clearTimeout' | 'closed'>;
  pins: Pick<PinBank, 'setInput' | 'release'>;
}

/** S0 standard: pulse and pause at least 30 ms. */
export const S0_MIN_PULSE_MS = 30;
/** Longest integration step: the profile is re-sampled at least this often (virtual seconds). */
const MAX_STEP_SECONDS = 30;
/** Shortest step: a pulse starts at most this late (the energy is carried over, not lost). */
const MIN_STEP_SECONDS = 0.001;

export interface S0PulseSourceOptions {
  board: S0Board;
  pin: number;
  impulsesPerKWh: number;
  pulseWidthMs?: number;
  profile: LoadProfile;
}

export class S0PulseSource {
  readonly board: S0Board;
  readonly pin: number;
  readonly impulsesPerKWh: number;
  readonly pulseWidthMs: number;
  readonly profile: LoadProfile;
  /** Pulses driven on the pin so far. */
  pulsesEmitted = 0;
  private readonly whPerPulse: number;
  /** Energy integrated but not yet emitted as a pulse (Wh). */
  private pendingWh = 0;
  /** The source's timeline: virtual time (s) up to which the profile has been integrated. */
  private lastT = 0;
  /** Virtual time (s) before which the next pulse may not start (pulse + pause). */
  private nextAllowed = 0;
  private inPulse = false;
  private stepTimer: number | undefined;
  private running = false;

  constructor(opts: S0PulseSourceOptions) {
    if (!(opts.impulsesPerKWh > 0)) throw new Error(`impulsesPerKWh must be > 0, got ${opts.impulsesPerKWh}`);
    const width = opts.pulseWidthMs ?? S0_MIN_PULSE_MS;
    if (!(width >= S0_MIN_PULSE_MS))
      throw new Error(`S0 pulses are at least ${S0_MIN_PULSE_MS} ms long (DIN EN 62053-31), got ${width}`);
    this.board = opts.board;
    this.pin = opts.pin;
    this.impulsesPerKWh = opts.impulsesPerKWh;
    this.pulseWidthMs = width;
    this.profile = opts.profile;
    this.whPerPulse = 1000 / opts.impulsesPerKWh;
  }

  /** Energy represented by the pulses emitted so far (Wh). */
  get energyWh(): number {
    return this.pulsesEmitted * this.whPerPulse;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.lastT = this.board.clock.now();
    this.board.pins.release(this.pin, this.lastT);
    this.scheduleStep(this.lastT);
  }

  /** Stops integrating; a pulse in progress still ends. */
  stop(): void {
    this.running = false;
    if (this.stepTimer !== undefined) this.board.clock.clearTimeout(this.stepTimer);
    this.stepTimer = undefined;
  }

  /** One step at `t`, the instant it was scheduled for. */
  private step(t: number): void {
    this.stepTimer = undefined;
    if (!this.running) return;
    this.integrateTo(t);
    if (this.pendingWh >= this.whPerPulse && !this.inPulse && t >= this.nextAllowed) this.pulse(t);
    this.scheduleStep(t);
  }

  /** Midpoint rule over [lastT, t]: exact for constant power, close for the smooth daily shapes. */
  private integrateTo(t: number): void {
    const dt = t - this.lastT;
    if (dt <= 0) return;
    const p = Math.max(0, this.profile.powerW(this.lastT + dt / 2));
    this.pendingWh += (p * dt) / 3600;
    this.lastT = t;
  }

  private pulse(t: number): void {
    this.pendingWh -= this.whPerPulse;
    this.pulsesEmitted++;
    this.inPulse = true;
    this.nextAllowed = t + (2 * this.pulseWidthMs) / 1000;
    this.board.pins.setInput(this.pin, 0, t);
    const end = t + this.pulseWidthMs / 1000;
    this.board.clock.setTimeoutAt(() => {
      this.inPulse = false;
      this.board.pins.release(this.pin, end);
    }, end);
  }

  /** Schedules the next step, counting from `t` on the source's timeline. */
  private scheduleStep(t: number): void {
    if (!this.running || this.board.clock.closed) return;
    const p = this.profile.powerW(t);
    const missingWh = this.whPerPulse - this.pendingWh;
    const wait = missingWh <= 0 ? 0 : p > 0 ? (missingWh * 3600) / p : MAX_STEP_SECONDS;
    // At least MIN_STEP_SECONDS ahead (a rounding-sized wait would not move the time at all), and
    // not before the next pulse is allowed — that instant itself, not t + (nextAllowed - t), which
    // can round to just before it.
    const due = Math.max(t + Math.min(Math.max(wait, MIN_STEP_SECONDS), MAX_STEP_SECONDS), this.nextAllowed);
    this.stepTimer = this.board.clock.setTimeoutAt(() => this.step(due), due);
  }
}
