// The board's own clock and timers, as a Clock.
import type { Clock } from './clock.ts';

export function deviceClock(): Clock {
  return {
    now: () => getTime(),
    setTimeout: (cb, ms) => setTimeout(cb, ms),
    clearTimeout: (id) => clearTimeout(id),
  };
}
