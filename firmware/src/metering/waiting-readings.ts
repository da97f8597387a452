// The readings a meter keeps in RAM while the outbox refuses them (metering/meter.ts), packed: each one is a
// record of seven float64 numbers (interval, importWh, exportWh, importTotalWh, exportTotalWh, seq, flags;
// every field is an integer below 2^53, so a float64 holds it exactly) in typed arrays of CHUNK_READINGS
// records. The meter id is the meter's own, so it is not stored.
//
// Why: as JavaScript objects, 96 waiting readings took about 2,030 JsVars (21 each) in the real
// interpreter; packed they take about 440 (bench/RESULTS.md). A chunk is allocated when the queue grows
// into it and released when the queue leaves it, so a meter whose readings go out at once holds none
// between intervals.

import type { Reading } from '../protocol/reading.ts';

/** Records per typed array: 8 * 7 * 8 = 448 bytes, about 33 JsVars. */
const CHUNK_READINGS = 8;
const FIELDS = 7;
const CHUNK_LENGTH = CHUNK_READINGS * FIELDS;

export class WaitingReadings {
  private readonly meterId: string;
  /** The queue's records, oldest first, from record `head` of chunks[0] on. */
  private chunks: Float64Array[];
  private head: number;
  private count: number;

  constructor(meterId: string) {
    this.meterId = meterId;
    this.chunks = [];
    this.head = 0;
    this.count = 0;
  }

  /** Readings waiting. */
  size(): number {
    return this.count;
  }

  /** Adds `reading` (of this meter) after the others. */
  push(reading: Reading): void {
    const at = this.head + this.count;
    if (at >= this.chunks.length * CHUNK_READINGS) this.chunks.push(new Float64Array(CHUNK_LENGTH));
    const chunk = this.chunks[Math.floor(at / CHUNK_READINGS)];
    const o = (at % CHUNK_READINGS) * FIELDS;
    chunk[o] = reading.interval;
    chunk[o + 1] = reading.importWh;
    chunk[o + 2] = reading.exportWh;
    chunk[o + 3] = reading.importTotalWh;
    chunk[o + 4] = reading.exportTotalWh;
    chunk[o + 5] = reading.seq;
    chunk[o + 6] = reading.flags;
    this.count++;
  }

  /** The reading at position `index` (0: the oldest), as a new object; undefined past the end. */
  get(index: number): Reading | undefined {
    if (index < 0 || index >= this.count) return undefined;
    const at = this.head + index;
    const chunk = this.chunks[Math.floor(at / CHUNK_READINGS)];
    const o = (at % CHUNK_READINGS) * FIELDS;
    return {
      meterId: this.meterId,
      interval: chunk[o],
      importWh: chunk[o + 1],
      exportWh: chunk[o + 2],
      importTotalWh: chunk[o + 3],
      exportTotalWh: chunk[o + 4],
      seq: chunk[o + 5],
      flags: chunk[o + 6],
    };
  }

  /** Removes the oldest reading. */
  shift(): void {
    if (this.count === 0) return;
    this.count--;
    this.head++;
    if (this.count === 0) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head === CHUNK_READINGS) {
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** Removes the second oldest reading (the oldest stays first), and returns it. */
  removeSecond(): Reading | undefined {
    const second = this.get(1);
    if (!second) return undefined;
    // The oldest moves into the second's place, then the queue starts there.
    const from = this.head;
    const to = from + 1;
    const source = this.chunks[Math.floor(from / CHUNK_READINGS)];
    const target = this.chunks[Math.floor(to / CHUNK_READINGS)];
    const s = (from % CHUNK_READINGS) * FIELDS;
    const t = (to % CHUNK_READINGS) * FIELDS;
    for (let i = 0; i < FIELDS; i++) target[t + i] = source[s + i];
    this.shift();
    return second;
  }
}
