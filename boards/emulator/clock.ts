// Virtual time for emulated boards and devices.
//
// SimClock runs `speed` times faster than real time and is shared by every board and device of a
// run. Virtual time is *derived from the time the host spends waiting* — the idle time of Node's event
// loop — so real TCP traffic between boards, broker and host sees the same pace the boards see: at
// speed 60 a 1-second keep-alive timer takes 1/60 s of real time, and a broker that answers after 5 ms
// of waiting has answered in 0.3 s virtual. Time the host spends computing (other boards' firmware,
// the secure-element model, the broker, the DSO's verification) does not pass for the boards, just as
// one meter does not stall while another signs: under load the run slows down instead of the boards
// seeing each other's work as seconds-long network silences (docs/emulator.md). Timers fire in virtual-time order; inside a timer callback now() is
// pinned to that timer's due time, so a chain of timers sees exact, monotonic timestamps even when
// Node delivers the real timer a little late — unless now() already returned a later time (it never
// goes backwards), in which case a late timer sees that later time, as a late one on a busy device
// would. Devices modelling a physical signal therefore keep their own timeline (the instants they
// scheduled) instead of reading now() in their callbacks (docs/emulator.md). Outside timers, time is
// read once per turn of Node's event loop and then held until the turn ends: code runs in zero
// virtual time (as if the CPU were infinitely fast), so at high speeds a few microseconds of host
// work do not become seconds.
//
// TimerTable (below) is Espruino's own timer list for one interpreter, on top of a SimClock.

import { performance } from 'node:perf_hooks';

/** Milliseconds the event loop has spent waiting since the process started (its idle time). */
function hostIdleMs(): number {
  return performance.eventLoopUtilization().idle;
}

/** 2025-01-01T00:00:00Z: a fixed start so runs are reproducible. */
export const DEFAULT_START_EPOCH_SECONDS = 1735689600;

/** Node's timers take at most a signed 32-bit millisecond delay. */
const MAX_REAL_DELAY_MS = 0x7fffffff;
/** Timer callbacks run per real tick before the clock yields to I/O (keeps sockets fair). */
const MAX_CALLBACKS_PER_TICK = 10000;

export interface SimClockOptions {
  /** Virtual seconds per real second (default 1). */
  speed?: number;
  /** Virtual time at construction, seconds since the epoch (default DEFAULT_START_EPOCH_SECONDS). */
  startEpochSeconds?: number;
  /**
   * Advance with the wall clock instead of the host's idle time. For a board that talks to services on
   * real time (veilgrid emulate): a busy host then runs its code late, as a slow board would, but its clock
   * stays the wall clock's, as SNTP keeps a real board's.
   */
  wallClock?: boolean;
}

interface ClockTimer {
  id: number;
  /** Virtual seconds since the epoch. */
  due: number;
  seq: number;
  cb: () => void;
}

export class SimClock {
  private speedValue: number;
  /** Virtual seconds at hostBase. */
  private virtualBase: number;
  /** hostMs() when virtualBase was taken. */
  private hostBase: number;
  /** Largest time ever returned, so now() never goes backwards. */
  private lastNow: number;
  /** While a timer callback runs: its due time. */
  private pinned: number | undefined;
  /** Time read in the current event-loop turn (cleared by a microtask at the end of the turn). */
  private held: number | undefined;
  private readonly timers = new Map<number, ClockTimer>();
  private heap: ClockTimer[] = [];
  private nextId = 1;
  private nextSeq = 0;
  private realTimer: NodeJS.Timeout | undefined;
  private realTimerDue = Infinity;
  private closedFlag = false;
  /** The host time virtual time follows, ms: idle time by default, elapsed time with wallClock. */
  private readonly hostMs: () => number;

  constructor(opts: SimClockOptions = {}) {
    this.speedValue = checkSpeed(opts.speed ?? 1);
    this.virtualBase = opts.startEpochSeconds ?? DEFAULT_START_EPOCH_SECONDS;
    this.hostMs = opts.wallClock ? () => performance.now() : hostIdleMs;
    this.hostBase = this.hostMs();
    this.lastNow = this.virtualBase;
  }

  get speed(): number {
    return this.speedValue;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Virtual seconds since the epoch (fractional). */
  now(): number {
    const t = this.pinned ?? this.heldNow();
    if (t > this.lastNow) this.lastNow = t;
    return this.lastNow;
  }

  /** Runs cb after virtualMs of virtual time. Returns a numeric handle for clearTimeout. */
  setTimeout(cb: () => void, virtualMs: number): number {
    if (this.closedFlag) throw new Error('SimClock is closed: create a new clock for a new run');
    const delay = Number.isFinite(virtualMs) && virtualMs > 0 ? virtualMs : 0;
    return this.schedule(cb, this.now() + delay / 1000);
  }

  /** Runs cb when virtual time reaches dueSeconds (or at once, in order, if that is past). */
  setTimeoutAt(cb: () => void, dueSeconds: number): number {
    if (this.closedFlag) throw new Error('SimClock is closed: create a new clock for a new run');
    return this.schedule(cb, dueSeconds);
  }

  clearTimeout(handle: number | undefined): void {
    if (handle === undefined) return;
    const t = this.timers.get(handle);
    if (!t) return;
    this.timers.delete(handle);
    // Lazy removal: the heap entry is skipped when popped.
    if (this.timers.size === 0) this.disarm();
  }

  /** Changes the speed from now on; virtual time stays continuous. */
  setSpeed(speed: number): void {
    checkSpeed(speed);
    this.rebase();
    this.speedValue = speed;
    this.disarm();
    this.arm();
  }

  /** Number of pending timers (for diagnostics and tests). */
  get pending(): number {
    return this.timers.size;
  }

  /** Stops every timer; the clock cannot be used afterwards. */
  close(): void {
    this.closedFlag = true;
    this.timers.clear();
    this.heap = [];
    this.disarm();
  }

  private heldNow(): number {
    if (this.held === undefined) {
      this.held = this.trackedNow();
      queueMicrotask(() => {
        this.held = undefined;
      });
    }
    return this.held;
  }

  private trackedNow(): number {
    return this.virtualBase + ((this.hostMs() - this.hostBase) * this.speedValue) / 1000;
  }

  private rebase(): void {
    const v = this.now();
    this.hostBase = this.hostMs();
    this.virtualBase = v;
  }

  private schedule(cb: () => void, due: number): number {
    const timer: ClockTimer = { id: this.nextId++, due, seq: this.nextSeq++, cb };
    this.timers.set(timer.id, timer);
    heapPush(this.heap, timer);
    if (due < this.realTimerDue) {
      this.disarm();
      this.arm();
    }
    return timer.id;
  }

  private peekLive(): ClockTimer | undefined {
    while (this.heap.length > 0 && this.timers.get(this.heap[0].id) !== this.heap[0]) heapPop(this.heap);
    return this.heap[0];
  }

  private arm(): void {
    if (this.closedFlag || this.realTimer) return;
    const next = this.peekLive();
    if (!next) return;
    const realDelay = Math.max(0, ((next.due - this.trackedNow()) * 1000) / this.speedValue);
    this.realTimerDue = next.due;
    this.realTimer = setTimeout(() => this.fire(), Math.min(Math.ceil(realDelay), MAX_REAL_DELAY_MS));
  }

  private disarm(): void {
    if (this.realTimer) clearTimeout(this.realTimer);
    this.realTimer = undefined;
    this.realTimerDue = Infinity;
  }

  private fire(): void {
    this.realTimer = undefined;
    this.realTimerDue = Infinity;
    const horizon = this.trackedNow();
    const errors: unknown[] = [];
    let ran = 0;
    for (
      let next = this.peekLive();
      next && next.due <= horizon && ran < MAX_CALLBACKS_PER_TICK;
      next = this.peekLive()
    ) {
      heapPop(this.heap);
      this.timers.delete(next.id);
      this.pinned = Math.max(next.due, this.lastNow);
      try {
        next.cb();
      } catch (err) {
        errors.push(err);
      } finally {
        this.pinned = undefined;
      }
      ran++;
      if (this.closedFlag) return;
    }
    this.arm();
    // A throwing callback is a host bug: surface it without starving the other timers.
    for (const err of errors)
      queueMicrotask(() => {
        throw err;
      });
  }
}

function checkSpeed(speed: number): number {
  if (!Number.isFinite(speed) || speed <= 0) throw new Error(`clock speed must be a positive number, got ${speed}`);
  return speed;
}

function before(a: ClockTimer, b: ClockTimer): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

function heapPush(heap: ClockTimer[], t: ClockTimer): void {
  heap.push(t);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i], heap[parent])) break;
    [heap[i], heap[parent]] = [heap[parent], heap[i]];
    i = parent;
  }
}

function heapPop(heap: ClockTimer[]): void {
  const last = heap.pop()!;
  if (heap.length === 0) return;
  heap[0] = last;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < heap.length && before(heap[l], heap[m])) m = l;
    if (r < heap.length && before(heap[r], heap[m])) m = r;
    if (m === i) return;
    [heap[i], heap[m]] = [heap[m], heap[i]];
    i = m;
  }
}

// ---------------------------------------------------------------------------------------------
// Espruino's timer list for one interpreter (src/jswrap_interactive.c, src/jsinteractive.c):
// ids are the index in a list, the first is 1 and a new id is the largest live id + 1 (so ids are
// reused once the list empties); intervals are rescheduled from their due time (no drift);
// clearTimeout() without an id removes every timer except the ones setWatch made for debounce;
// an unknown id throws "Unknown Timeout" / "Unknown Interval".

export interface TimerEntry {
  id: number;
  /** Virtual seconds (SimClock time) at which it fires next. */
  due: number;
  /** setInterval period in ms; undefined for a timeout. */
  intervalMs?: number;
  /** True for the debounce timers setWatch creates (kept by clearTimeout()). */
  forWatch: boolean;
  run: (entry: TimerEntry) => void;
  handle?: number;
}

export class TimerTable {
  private readonly entries = new Map<number, TimerEntry>();

  /** `deliver` runs a due timer on the interpreter's event loop. */
  constructor(
    private readonly clock: SimClock,
    private readonly deliver: (entry: TimerEntry) => void,
  ) {}

  add(
    run: (entry: TimerEntry) => void,
    delayMs: number,
    opts: { intervalMs?: number; forWatch?: boolean } = {},
  ): TimerEntry {
    const id = this.entries.size === 0 ? 1 : Math.max(...this.entries.keys()) + 1;
    const delay = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
    const entry: TimerEntry = {
      id,
      due: this.clock.now() + delay / 1000,
      intervalMs: opts.intervalMs,
      forWatch: opts.forWatch ?? false,
      run,
    };
    this.entries.set(id, entry);
    this.arm(entry);
    return entry;
  }

  get(id: number): TimerEntry | undefined {
    return this.entries.get(id);
  }

  has(id: number): boolean {
    return this.entries.has(id);
  }

  remove(id: number): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    this.clock.clearTimeout(e.handle);
    this.entries.delete(id);
    return true;
  }

  /** clearTimeout()/clearInterval() with no argument. */
  removeAllButWatches(): void {
    for (const e of [...this.entries.values()]) if (!e.forWatch) this.remove(e.id);
  }

  /** Moves a timer to a new due time (virtual seconds). */
  reschedule(id: number, due: number): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.clock.clearTimeout(e.handle);
    e.due = due;
    this.arm(e);
  }

  /** changeInterval(id, ms): new period, next run one period from now. */
  changeInterval(id: number, intervalMs: number): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    e.intervalMs = intervalMs;
    this.reschedule(id, this.clock.now() + intervalMs / 1000);
    return true;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Cancels everything (interpreter torn down). */
  dispose(): void {
    for (const e of this.entries.values()) this.clock.clearTimeout(e.handle);
    this.entries.clear();
  }

  private arm(entry: TimerEntry): void {
    entry.handle = this.clock.setTimeoutAt(() => this.fired(entry), entry.due);
  }

  private fired(entry: TimerEntry): void {
    if (this.entries.get(entry.id) !== entry) return;
    if (entry.intervalMs !== undefined) {
      entry.due += Math.max(entry.intervalMs, 0) / 1000;
      this.arm(entry);
    } else {
      this.entries.delete(entry.id);
    }
    this.deliver(entry);
  }
}
