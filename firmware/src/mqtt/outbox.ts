// The persistent outbox: QoS 1 messages wait here, in flash, until the broker acknowledges them.
// A message survives broker outages, reboots and power cuts; it leaves only on PUBACK.
//
// Layout. Messages are appended to segment files "<name>.<n>" (n = 1, 2, 3 ... in order), each
// created pre-sized (Storage.write(name, magic, 0, SEGMENT_BYTES)) and then filled at increasing
// offsets with Storage.write(name, data, offset), which only ever programs never-written (0xFF)
// bytes: no file is rewritten, so flash wear is one small write per message plus one byte each
// for commit and ack. 4064 bytes = one 4 KB flash page minus Espruino's 32-byte file header.
//
//   segment: "VGO1" then records
//   record:  [commit][ack][flags | length hi][length lo][topic length][topic][payload]
//            length = 1 + topic length + payload length (< 4064, so 12 bits)
//            flags  = the high nibble of that byte: 0x40 = publish with the MQTT retain flag.
//            Records written before the flag existed have it clear (not retained): same format.
//
// Why a power cut at any byte leaves it consistent (see docs/emulator-storage.md: bytes reach
// the flash one at a time in ascending order, an unwritten byte stays 0xFF):
// - append writes length/topic/payload first, then the commit byte (0x00). A cut before the
//   commit leaves commit = 0xFF: the record is ignored, and since its bytes are no longer 0xFF
//   the rest of that segment is never written again (the next append starts a new segment).
//   The flags/length-high byte is at most 0x4F and is the first byte written, so "commit and
//   length both 0xFF" means "nothing written here": the free space.
// - ack programs one byte (0xFF -> 0x00): it either happened or it did not; a lost ack only means
//   the message is sent once more (at-least-once).
// - a segment is erased only once every record in it is acknowledged and it is no longer the
//   one being appended to, so erasing can lose nothing. A new segment whose magic is missing was
//   cut during creation, holds nothing, and is erased when the outbox is next opened.
// A cut inside the 4-byte erase of a segment's name can leave a nameless live file that only
// Storage.compact() reclaims (one segment of space per such cut; nothing pending is in it).
// Creating a file and Storage.compact() are Espruino's own operations; how a cut inside them
// ends is Storage's behaviour (docs/emulator-storage.md). Segments are created rarely (one per
// ~4 KB of messages) and nothing here calls compact.
//
// Bounded: at most maxSegments segments (default 16, ~64 KB). When full, append throws
// OutboxFullError and stores nothing: the oldest messages are kept, the newest refused, and the
// caller (which still has the reading) must try again later.
//
// RAM: only a few numbers per segment; records are read from flash when they are sent.

import { bytesToByteString, byteStringToBytes } from './packets.ts';

/** What the outbox needs of Espruino's Storage module. */
export interface OutboxStorage {
  read(name: string, offset?: number, length?: number): string | undefined;
  write(name: string, data: string, offset?: number, size?: number): boolean;
  erase(name: string): void;
  list(): string[];
  getStats(): { freeBytes: number; trashBytes: number };
}

export interface OutboxEntry {
  /** Position in the outbox: increases with every append, unique while the entry exists. */
  id: number;
  topic: string;
  payload: Uint8Array;
  /** Publish with the MQTT retain flag. */
  retain: boolean;
}

export interface OutboxOptions {
  /** Most segment files the outbox may hold (default 16). */
  maxSegments?: number;
}

export class OutboxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutboxError';
    this.message = message;
  }
}

/** The outbox (or Storage) has no room: nothing was stored; keep the message and retry later. */
export class OutboxFullError extends OutboxError {
  constructor(message: string) {
    super(message);
    this.name = 'OutboxFullError';
  }
}

export const SEGMENT_BYTES = 4064;
const MAGIC = 'VGO1';
const RECORD_HEADER_BYTES = 4;
const BLANK = 255;
/** In the record's flags/length-high byte. */
const RETAIN_FLAG = 0x40;
const LENGTH_HIGH_MASK = 0x0f;
const WRITTEN = String.fromCharCode(0);
/** ids are segment * ID_SPAN + offset, so they order by segment then offset. */
const ID_SPAN = 65536;

interface Segment {
  n: number;
  name: string;
  /** Committed, not yet acknowledged records. */
  pending: number;
  /** Offset where the next record goes; SEGMENT_BYTES once nothing more may be written. */
  end: number;
}

function segmentNumber(fileName: string, prefix: string): number {
  if (fileName.indexOf(prefix) !== 0 || fileName.length === prefix.length) return -1;
  const digits = fileName.substring(prefix.length);
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
  }
  return parseInt(digits, 10);
}

export class Outbox {
  readonly name: string;
  readonly maxSegments: number;
  private readonly storage: OutboxStorage;
  private readonly prefix: string;
  private segments: Segment[];
  private pendingCount: number;
  /** Entries with a smaller id were stored before this Outbox was opened. */
  private readonly firstNewId: number;

  constructor(storage: OutboxStorage, name?: string, options?: OutboxOptions) {
    this.storage = storage;
    this.name = name ?? 'vg.outbox';
    if (this.name.length > 20) throw new OutboxError('outbox name "' + this.name + '" is longer than 20 chars (Storage names are at most 28)');
    this.prefix = this.name + '.';
    this.maxSegments = (options && options.maxSegments) || 16;
    this.segments = [];
    this.pendingCount = 0;
    this.recover();
    const last = this.segments[this.segments.length - 1];
    this.firstNewId = last ? last.n * ID_SPAN + last.end : ID_SPAN;
  }

  /** Messages stored and not yet acknowledged. */
  size(): number {
    return this.pendingCount;
  }

  /** Segment files in use (each SEGMENT_BYTES of Storage). */
  segmentCount(): number {
    return this.segments.length;
  }

  /** True for an entry stored before this Outbox was opened: it may have been sent before a reboot. */
  isRecovered(id: number): boolean {
    return id < this.firstNewId;
  }

  /**
   * Stores a message durably and returns its id; `retain` (default false) is kept with it. Throws
   * OutboxFullError (nothing stored) when the outbox or Storage is full, OutboxError when the
   * message can never fit.
   */
  append(topic: string, payload: Uint8Array, retain?: boolean): number {
    if (topic.length === 0 || topic.length > 255) throw new OutboxError('topic must be 1..255 chars, got ' + topic.length);
    const bodyLength = 1 + topic.length + payload.length;
    const recordBytes = RECORD_HEADER_BYTES + bodyLength;
    if (MAGIC.length + recordBytes > SEGMENT_BYTES) {
      throw new OutboxError('message of ' + payload.length + ' bytes on "' + topic + '" is too large for the outbox (at most ' +
        (SEGMENT_BYTES - MAGIC.length - RECORD_HEADER_BYTES - 1 - topic.length) + ' bytes)');
    }
    let seg = this.segments[this.segments.length - 1];
    if (!seg || seg.end + recordBytes > SEGMENT_BYTES) {
      this.dropIfDone(seg);
      seg = this.createSegment(seg ? seg.n + 1 : 1);
    }
    const offset = seg.end;
    // Close the segment first: if this write is cut, nothing more may go into it.
    seg.end = SEGMENT_BYTES;
    const flags = retain === true ? RETAIN_FLAG : 0;
    const body = String.fromCharCode(flags | (bodyLength >> 8), bodyLength & 255, topic.length) + topic + bytesToByteString(payload);
    this.storage.write(seg.name, body, offset + 2);
    this.storage.write(seg.name, WRITTEN, offset);
    seg.end = offset + recordBytes;
    seg.pending++;
    this.pendingCount++;
    return seg.n * ID_SPAN + offset;
  }

  /** The oldest unacknowledged entry. */
  first(): OutboxEntry | undefined {
    return this.after(0);
  }

  /** The oldest unacknowledged entry with an id greater than `id`. */
  after(id: number): OutboxEntry | undefined {
    for (let i = 0; i < this.segments.length; i++) {
      const seg = this.segments[i];
      if (seg.pending === 0 || (seg.n + 1) * ID_SPAN <= id) continue;
      const data = this.storage.read(seg.name) || '';
      let offset = MAGIC.length;
      while (offset + RECORD_HEADER_BYTES <= data.length && data.charCodeAt(offset) !== BLANK) {
        const flags = data.charCodeAt(offset + 2);
        const length = ((flags & LENGTH_HIGH_MASK) << 8) | data.charCodeAt(offset + 3);
        const entryId = seg.n * ID_SPAN + offset;
        if (entryId > id && data.charCodeAt(offset + 1) === BLANK) {
          const topicLength = data.charCodeAt(offset + 4);
          const topicStart = offset + 5;
          return {
            id: entryId,
            topic: data.substring(topicStart, topicStart + topicLength),
            payload: byteStringToBytes(data.substring(topicStart + topicLength, offset + RECORD_HEADER_BYTES + length)),
            retain: (flags & RETAIN_FLAG) !== 0,
          };
        }
        offset += RECORD_HEADER_BYTES + length;
      }
    }
    return undefined;
  }

  /** Marks an entry delivered (PUBACK received). Unknown or already acknowledged ids are ignored. */
  ack(id: number): void {
    const n = Math.floor(id / ID_SPAN);
    const offset = id - n * ID_SPAN;
    let seg: Segment | undefined;
    for (let i = 0; i < this.segments.length; i++) if (this.segments[i].n === n) seg = this.segments[i];
    if (!seg || offset < MAGIC.length || offset >= seg.end) return;
    const header = this.storage.read(seg.name, offset, 2);
    if (!header || header.charCodeAt(0) === BLANK || header.charCodeAt(1) !== BLANK) return;
    this.storage.write(seg.name, WRITTEN, offset + 1);
    seg.pending--;
    this.pendingCount--;
    if (seg !== this.segments[this.segments.length - 1]) this.dropIfDone(seg);
  }

  /** Erases a segment that holds nothing unacknowledged. */
  private dropIfDone(seg: Segment | undefined): void {
    if (!seg || seg.pending > 0) return;
    this.storage.erase(seg.name);
    this.segments.splice(this.segments.indexOf(seg), 1);
  }

  private createSegment(n: number): Segment {
    if (this.segments.length >= this.maxSegments) {
      throw new OutboxFullError('outbox full: ' + this.pendingCount + ' messages in ' + this.segments.length +
        ' segments wait for the broker to acknowledge them; nothing was stored: keep the message and try again later');
    }
    const name = this.prefix + n;
    let ok = false;
    let failure = '';
    try {
      ok = this.storage.write(name, MAGIC, 0, SEGMENT_BYTES);
    } catch (err) {
      const stats = this.storage.getStats();
      if (stats.freeBytes + stats.trashBytes >= SEGMENT_BYTES + 32) throw err;
      failure = String(err);
    }
    if (!ok) {
      throw new OutboxFullError('Storage is full: cannot create outbox segment "' + name + '" (' + SEGMENT_BYTES +
        ' bytes)' + (failure ? ': ' + failure : '') + '; nothing was stored: free Storage or wait for the broker');
    }
    const seg: Segment = { n: n, name: name, pending: 0, end: MAGIC.length };
    this.segments.push(seg);
    return seg;
  }

  /** Rebuilds the segment list from flash, erasing segments that hold nothing to send. */
  private recover(): void {
    const files = this.storage.list();
    const found: number[] = [];
    for (let i = 0; i < files.length; i++) {
      const n = segmentNumber(files[i], this.prefix);
      if (n > 0 && found.indexOf(n) < 0) found.push(n);
    }
    found.sort((a, b) => a - b);
    for (let i = 0; i < found.length; i++) {
      const seg = this.scanSegment(found[i]);
      const isLast = i === found.length - 1;
      if (seg && (seg.pending > 0 || (isLast && seg.end < SEGMENT_BYTES))) {
        this.segments.push(seg);
        this.pendingCount += seg.pending;
      } else {
        this.storage.erase(this.prefix + found[i]);
      }
    }
  }

  /** Reads a segment's records; undefined if its creation never completed. */
  private scanSegment(n: number): Segment | undefined {
    const name = this.prefix + n;
    const data = this.storage.read(name);
    if (!data || data.length !== SEGMENT_BYTES || data.substring(0, MAGIC.length) !== MAGIC) return undefined;
    const seg: Segment = { n: n, name: name, pending: 0, end: SEGMENT_BYTES };
    let offset = MAGIC.length;
    while (offset + RECORD_HEADER_BYTES <= SEGMENT_BYTES) {
      const commit = data.charCodeAt(offset);
      const lengthHigh = data.charCodeAt(offset + 2);
      if (commit === BLANK) {
        // Free space if nothing was written here; else a cut append: seal the segment.
        if (lengthHigh === BLANK && data.charCodeAt(offset + 1) === BLANK) seg.end = offset;
        break;
      }
      const recordBytes = RECORD_HEADER_BYTES + (((lengthHigh & LENGTH_HIGH_MASK) << 8) | data.charCodeAt(offset + 3));
      if (offset + recordBytes > SEGMENT_BYTES) break;
      if (data.charCodeAt(offset + 1) === BLANK) seg.pending++;
      offset += recordBytes;
    }
    return seg;
  }
}
