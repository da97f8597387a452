// Small named records (the reading keys' "vg.rk0"/"vg.rk1") on a flash ring instead of Storage files:
// rewriting a Storage file leaves its old copy as trash until Storage compacts, so a record rewritten
// every day (a key rotation) would one day drive Storage into compaction. Here a write appends a
// record "name + data"; the newest record of each name is its value. Every record keeps the newest
// record of each other name alive (keep-from), so with records alternating between names the ring
// never has to erase a page holding a value still needed.
//
// Offers read(name) / write(name, data) like Storage, so modules that keep records there
// (keys/reading-keys.ts KeyRecordStorage) take it unchanged.

import { FlashRing, RingFullError } from './flash-ring.ts';

export class NamedRecords {
  private readonly ring: FlashRing;
  private names: string[];
  private values: string[];
  private seqs: number[];

  constructor(ring: FlashRing) {
    this.ring = ring;
    this.names = [];
    this.values = [];
    this.seqs = [];
    ring.recover();
    ring.forEach(0, (r) => {
      const nameLength = r.payload.charCodeAt(0);
      if (!(nameLength > 0) || 1 + nameLength > r.payload.length) return;
      this.remember(r.payload.substring(1, 1 + nameLength), r.payload.substring(1 + nameLength), r.seq);
    });
  }

  /** The newest data written under `name`, or undefined. */
  read(name: string): string | undefined {
    const i = this.names.indexOf(name);
    return i < 0 ? undefined : this.values[i];
  }

  /** Stores `data` as the value of `name`; false when the ring is full (nothing written). Throws on a flash error. */
  write(name: string, data: string): boolean {
    if (name.length === 0 || name.length > 255) throw new Error('record name must be 1..255 chars, got "' + name + '"');
    // Keep the newest record of every other name.
    let keepFrom = -1;
    for (let i = 0; i < this.names.length; i++) {
      if (this.names[i] !== name && (keepFrom < 0 || this.seqs[i] < keepFrom)) keepFrom = this.seqs[i];
    }
    let seq: number;
    try {
      seq = this.ring.append(String.fromCharCode(name.length) + name + data, keepFrom < 0 ? undefined : keepFrom);
    } catch (e) {
      if (e instanceof RingFullError) return false;
      throw e;
    }
    this.remember(name, data, seq);
    return true;
  }

  private remember(name: string, data: string, seq: number): void {
    const i = this.names.indexOf(name);
    if (i < 0) {
      this.names.push(name);
      this.values.push(data);
      this.seqs.push(seq);
    } else if (seq > this.seqs[i]) {
      this.values[i] = data;
      this.seqs[i] = seq;
    }
  }
}
