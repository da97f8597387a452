// An S0 impulse output (DIN EN 62053-31) as found on electricity meters: one pulse per
// 1/impulsesPerKWh kWh of energy, at least 30 ms long, with at least 30 ms between pulses.
// The output is an open collector (passive S0): idle it does not drive the pin, so the ESP32's
// pull-up holds it high; a pulse pulls it low. The source integrates its load profile over virtual
// time: falling edge at the instant the energy threshold is crossed, rising edge pulseWidthMs later.
// Pulses that would come faster than width + pause are delayed (a real meter's output is
// rate-limited the same way), never dropped.

import type { Board } from '../board.ts';
import type { LoadProfile } from '../load-profile.ts';

/** S0 standard: pulse and pause at least 30 ms. */
export const S0_MIN_PULSE_MS = 30;
/** Longest integration step: the profile is re-sampled at least this often (virtual seconds). */
const MAX_STEP_SECONDS = 30;

export interface S0PulseSourceOptions {
  board: Board;
  pin: number;
  impulsesPerKWh: number;
  pulseWidthMs?: number;
  profile: LoadProfile;
}

export class S0PulseSource {
  readonly board: Board;
  readonly pin: number;
  readonly impulsesPerKWh: number;
  readonly pulseWidthMs: number;
  readonly profile: LoadProfile;
  /** Pulses driven on the pin so far. */
  pulsesEmitted = 0;
  private readonly whPerPulse: number;
  /** Energy integrated but not yet emitted as a pulse (Wh). */
  private pendingWh = 0;
  private lastT = 0;
  /** Virtual time (s) before which the next pulse may not start (pulse + pause). */
  private nextAllowed = 0;
  private inPulse = false;
  private stepTimer: number | undefined;
  private running = false;

  constructor(opts: S0PulseSourceOptions) {
    if (!(opts.impulsesPerKWh > 0)) throw new Error(`impulsesPerKWh must be > 0, got ${opts.impulsesPerKWh}`);
    const width = opts.pulseWidthMs ?? S0_MIN_PULSE_MS;
    if (!(width >= S0_MIN_PULSE_MS)) throw new Error(`S0 pulses are at least ${S0_MIN_PULSE_MS} ms long (DIN EN 62053-31), got ${width}`);
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
    this.board.pins.release(this.pin);
    this.scheduleStep();
  }

  /** Stops integrating; a pulse in progress still ends. */
  stop(): void {
    this.running = false;
    if (this.stepTimer !== undefined) this.board.clock.clearTimeout(this.stepTimer);
    this.stepTimer = undefined;
  }

  private step(): void {
    this.stepTimer = undefined;
    if (!this.running) return;
    this.integrateTo(this.board.clock.now());
    const now = this.board.clock.now();
    if (this.pendingWh >= this.whPerPulse && !this.inPulse && now >= this.nextAllowed) this.pulse(now);
    this.scheduleStep();
  }

  /** Midpoint rule over [lastT, t]: exact for constant power, close for the smooth daily shapes. */
  private integrateTo(t: number): void {
    const dt = t - this.lastT;
    if (dt <= 0) return;
    const p = Math.max(0, this.profile.powerW(this.lastT + dt / 2));
    this.pendingWh += (p * dt) / 3600;
    this.lastT = t;
  }

  private pulse(now: number): void {
    this.pendingWh -= this.whPerPulse;
    this.pulsesEmitted++;
    this.inPulse = true;
    this.nextAllowed = now + (2 * this.pulseWidthMs) / 1000;
    this.board.pins.setInput(this.pin, 0);
    this.board.clock.setTimeout(() => {
      this.inPulse = false;
      this.board.pins.release(this.pin);
    }, this.pulseWidthMs);
  }

  private scheduleStep(): void {
    if (!this.running || this.board.clock.closed) return;
    const now = this.board.clock.now();
    const p = this.profile.powerW(now);
    const missingWh = this.whPerPulse - this.pendingWh;
    let wait = missingWh <= 0 ? 0 : p > 0 ? (missingWh * 3600) / p : MAX_STEP_SECONDS;
    wait = Math.min(wait, MAX_STEP_SECONDS);
    wait = Math.max(wait, this.nextAllowed - now, 0);
    this.stepTimer = this.board.clock.setTimeout(() => this.step(), wait * 1000);
  }
}
