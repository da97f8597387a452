// Real time, with the SimClock methods a device model uses (now, setTimeoutAt, clearTimeout, closed), so
// the emulator's devices (the S0 pulse source) can drive a board whose interpreter runs in real time.
// Seconds since the epoch, as the interpreter's getTime() counts them on Linux (gettimeofday).

export class RealTimeClock {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private nextHandle = 1;
  private closedFlag = false;

  get closed(): boolean {
    return this.closedFlag;
  }

  now(): number {
    return (performance.timeOrigin + performance.now()) / 1000;
  }

  /** Runs cb at `dueSeconds` (now() time), or at once if that has passed. */
  setTimeoutAt(cb: () => void, dueSeconds: number): number {
    const handle = this.nextHandle++;
    if (this.closedFlag) return handle;
    const timer = setTimeout(
      () => {
        this.timers.delete(handle);
        cb();
      },
      Math.max(0, (dueSeconds - this.now()) * 1000),
    );
    this.timers.set(handle, timer);
    return handle;
  }

  clearTimeout(handle: number | undefined): void {
    if (handle === undefined) return;
    clearTimeout(this.timers.get(handle));
    this.timers.delete(handle);
  }

  /** Cancels every timer; later ones are never run. */
  close(): void {
    this.closedFlag = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
