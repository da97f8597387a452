// The ids of the outbox's unacknowledged messages (mqtt/outbox.ts), without one JsVar per id: ids only
// grow as messages are stored and acknowledgements mostly come in order, so they are held as the range
// from the oldest to the newest pending id and the few ids inside it that are not pending (acknowledged out
// of order, or records that were not messages when the outbox was opened). A full outbox's 120 ids took
// about 133 JsVars as an array of numbers in the real interpreter.

export class PendingIds {
  /** The oldest pending id; above `hi` when none is pending. */
  private lo: number;
  /** The newest pending id (or the newest once pending, when none is). */
  private hi: number;
  /** The ids between lo and hi that are not pending, increasing. */
  private holes: number[];

  constructor() {
    this.lo = 1;
    this.hi = 0;
    this.holes = [];
  }

  size(): number {
    return this.lo > this.hi ? 0 : this.hi - this.lo + 1 - this.holes.length;
  }

  /** The oldest pending id, or undefined. */
  first(): number | undefined {
    return this.lo > this.hi ? undefined : this.lo;
  }

  has(id: number): boolean {
    return id >= this.lo && id <= this.hi && this.holes.indexOf(id) < 0;
  }

  /** The oldest pending id above `id`, or undefined. */
  after(id: number): number | undefined {
    let next = id + 1 > this.lo ? id + 1 : this.lo;
    while (next <= this.hi && this.holes.indexOf(next) >= 0) next++;
    return next <= this.hi ? next : undefined;
  }

  /** Adds `id`, which must be above every id added before (ignored otherwise). */
  add(id: number): void {
    if (this.lo > this.hi) {
      this.lo = id;
      this.hi = id;
      this.holes = [];
      return;
    }
    if (id <= this.hi) return;
    for (let skipped = this.hi + 1; skipped < id; skipped++) this.holes.push(skipped);
    this.hi = id;
  }

  /** Removes `id`; an id that is not pending is ignored. */
  remove(id: number): void {
    if (!this.has(id)) return;
    const holes = this.holes;
    if (id === this.lo) {
      this.lo++;
      while (holes.length > 0 && holes[0] === this.lo) {
        holes.shift();
        this.lo++;
      }
    } else if (id === this.hi) {
      this.hi--;
      while (holes.length > 0 && holes[holes.length - 1] === this.hi) {
        holes.pop();
        this.hi--;
      }
    } else {
      let at = holes.length;
      while (at > 0 && holes[at - 1] > id) at--;
      holes.splice(at, 0, id);
    }
  }
}
