// Counts S0 pulses on one input. An S0 output is an opto-coupled switch that closes for at least
// 30 ms per impulse; with the input's pull-up, a pulse starts with a falling edge. setWatch does
// the debouncing (an edge counts only once the level held for debounceMs).

import type { WatchPin } from '../platform/gpio.ts';

/** The edge that starts an S0 pulse on a pulled-up input. */
export const S0_PULSE_EDGE = 'falling';

export class PulseCounter {
  /** Pulses seen since start(). */
  count: number;
  private watch: WatchPin;
  private pin: number;
  private debounceMs: number;
  private onPulse: (atSeconds: number) => void;
  private stopWatch: (() => void) | null;

  /** `onPulse` gets the edge's time in seconds (getTime() clock). */
  constructor(watch: WatchPin, pin: number, debounceMs: number, onPulse: (atSeconds: number) => void) {
    this.watch = watch;
    this.pin = pin;
    this.debounceMs = debounceMs;
    this.onPulse = onPulse;
    this.count = 0;
    this.stopWatch = null;
  }

  start(): void {
    if (this.stopWatch) return;
    const self = this;
    this.stopWatch = this.watch(this.pin, S0_PULSE_EDGE, this.debounceMs, function (atSeconds) {
      self.count++;
      self.onPulse(atSeconds);
    });
  }

  stop(): void {
    if (!this.stopWatch) return;
    this.stopWatch();
    this.stopWatch = null;
  }
}
