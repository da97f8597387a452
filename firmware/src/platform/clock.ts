// Time as the firmware sees it. Logic modules take a Clock instead of calling the globals, so tests
// can hand them the emulator's clock directly. The device's own Clock is in device-clock.ts.

export interface Clock {
  /** Seconds since the epoch (getTime() after SNTP), fractional. */
  now(): number;
  setTimeout(cb: () => void, ms: number): number;
  clearTimeout(id: number): void;
}
