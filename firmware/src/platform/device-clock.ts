// The board's own clock and timers, as a Clock, and as the BusClock that bus drivers wait with.
import type { BusClock } from '../se/secure-element.ts';
import type { Clock } from './clock.ts';

export function deviceClock(): Clock {
  return {
    now: () => getTime(),
    setTimeout: (cb, ms) => setTimeout(cb, ms),
    clearTimeout: (id) => clearTimeout(id),
  };
}

/**
 * Milliseconds of getTime(), and a wait that spins on it: Espruino has no blocking delay, and a driver
 * that must wait during a blocking bus transaction has nothing else to run meanwhile.
 */
export function deviceBusClock(): BusClock {
  return {
    nowMs: () => getTime() * 1000,
    waitMs: (ms) => {
      const end = getTime() + ms / 1000;
      while (getTime() < end) {
        // spin: the chip is executing
      }
    },
  };
}
