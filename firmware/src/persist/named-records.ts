// Small named records (the reading keys' "vg.rk0"/"vg.rk1") on a flash ring instead of Storage files:
// rewriting a Storage file leaves its old copy as trash until Storage compacts, so a record rewritten
// every day (a key rotation) would one day drive Storage into compaction.
//
// Every write appends one ring record holding the values of all names (a snapshot), so only the newest
// ring record is ever needed, as with the energy journal: the ring may always erase its next page, and a
// power cut leaves the previous snapshot as the newest valid record. (Keeping one name per record and
// asking the ring to keep each name's newest alive got stuck for good after two cuts in a row: each torn
// record closes its page, and with two pages the next one held a value still needed.)
//
//   snapshot = 0x00, then per name: name length (1 byte) | name | value length (2 bytes, big-endian) | value
//
// Offers read(name) / write(name, data) like Storage, so modules that keep records there
// (keys/reading-keys.ts KeyRecordStorage) take it unchanged.

import { bytesToUint, uintToBytes } from './power-safe-record.ts';
import { type FlashRing, RingFullError } from './flash-ring.ts';

const SNAPSHOT_MARK = '\x00';

export class NamedRecords {
  private readonly ring: FlashRing;
  private names: string[];
  private values: string[];

  constructor(ring: FlashRing) {
    this.ring = ring;
    this.names = [];
    this.values = [];
    ring.recover();
    const newest = ring.newest();
    if (newest !== undefined && newest.charAt(0) === SNAPSHOT_MARK) this.parse(newest);
  }

  /** The newest data written under `name`, or undefined. */
  read(name: string): string | undefined {
    const i = this.names.indexOf(name);
    return i < 0 ? undefined : this.values[i];
  }

  /** Stores `data` as the value of `name`; false when the ring cannot take it (nothing written). Throws on a flash error. */
  write(name: string, data: string): boolean {
    if (name.length === 0 || name.length > 255) throw new Error('record name must be 1..255 chars, got "' + name + '"');
    if (data.length > 0xfffe)
      throw new Error('record "' + name + '" of ' + data.length + ' bytes is too long (at most 65534)');
    const i = this.names.indexOf(name);
    const names = this.names.slice();
    const values = this.values.slice();
    if (i < 0) {
      names.push(name);
      values.push(data);
    } else {
      values[i] = data;
    }
    let snapshot = SNAPSHOT_MARK;
    for (let n = 0; n < names.length; n++) {
      snapshot += String.fromCharCode(names[n].length) + names[n] + uintToBytes(values[n].length, 2) + values[n];
    }
    try {
      this.ring.append(snapshot);
    } catch (e) {
      if (e instanceof RingFullError) return false;
      throw e;
    }
    this.names = names;
    this.values = values;
    return true;
  }

  private parse(snapshot: string): void {
    let at = 1;
    while (at < snapshot.length) {
      const nameLength = snapshot.charCodeAt(at);
      const name = snapshot.substring(at + 1, at + 1 + nameLength);
      const valueLength = bytesToUint(snapshot, at + 1 + nameLength, 2);
      const start = at + 3 + nameLength;
      if (nameLength === 0 || start + valueLength > snapshot.length) return; // not ours: keep what parsed
      this.names.push(name);
      this.values.push(snapshot.substring(start, start + valueLength));
      at = start + valueLength;
    }
  }
}
