// The persistent outbox: QoS 1 messages wait here, in flash, until the broker acknowledges them.
// A message survives broker outages, reboots and power cuts; it leaves only on PUBACK.
//
// Messages are records of a ring on raw flash (persist/flash-ring.ts, outside Storage: appending
// never makes Storage compact). A message's id is its record's sequence number. Every record
// carries keep-from = the oldest message not yet acknowledged, so an acknowledgement costs no
// write: it is persisted by the next append (until then a reboot sends the message once more:
// at-least-once, with DUP). The ring erases a page only when all its messages are acknowledged;
// when the next page still holds one, append throws OutboxFullError and stores nothing.
//
// Record payload: [flags][topic length][note length][topic][note][message]
//   flags: 1 = publish with the MQTT retain flag.
//   note:  a few bytes the caller keeps with the message (the sealed reading's seq and interval,
//          readings/sealed-reading-note.ts), written in the same record: a cut leaves both or neither.
//
// RAM: the seqs of the waiting messages as a range (pending-ids.ts); messages are read from flash when
// sent, and again when resent (mqtt/client.ts keeps no payload in RAM).

import type { FlashRing } from '../persist/flash-ring.ts';
import { recordBytes } from '../persist/power-safe-record.ts';
import { bytesToByteString, byteStringToBytes } from '../protocol/byte-string.ts';
import { VeilgridError } from '../protocol/veilgrid-error.ts';
import { PendingIds } from './pending-ids.ts';

export interface OutboxEntry {
  /** Position in the outbox: increases with every append, unique while the entry exists. */
  id: number;
  topic: string;
  payload: Uint8Array;
  /** Publish with the MQTT retain flag. */
  retain: boolean;
}

export class OutboxError extends VeilgridError {
  constructor(message: string) {
    super('OutboxError', 'outbox', message);
  }
}

/** The outbox has no room: nothing was stored; keep the message and retry later. */
export class OutboxFullError extends OutboxError {
  constructor(message: string) {
    super(message);
    this.name = 'OutboxFullError';
  }
}

const RETAIN_FLAG = 1;
const PAYLOAD_HEADER_BYTES = 3;

interface Decoded {
  entry: OutboxEntry;
  note: string;
}

function decode(seq: number, p: string): Decoded | undefined {
  if (p.length < PAYLOAD_HEADER_BYTES) return undefined;
  const topicLength = p.charCodeAt(1);
  const noteLength = p.charCodeAt(2);
  const noteStart = PAYLOAD_HEADER_BYTES + topicLength;
  const bodyStart = noteStart + noteLength;
  if (topicLength === 0 || bodyStart > p.length) return undefined;
  return {
    entry: {
      id: seq,
      topic: p.substring(PAYLOAD_HEADER_BYTES, noteStart),
      payload: byteStringToBytes(p.substring(bodyStart)),
      retain: (p.charCodeAt(0) & RETAIN_FLAG) !== 0,
    },
    note: p.substring(noteStart, bodyStart),
  };
}

export class Outbox {
  private readonly ring: FlashRing;
  /** Sequence numbers of the messages not yet acknowledged, oldest first. */
  private pending: PendingIds;
  /** Notes of the messages found at open, oldest first (see notes()). */
  private recoveredNotes: string[];
  /** Entries with a smaller id were stored before this Outbox was opened. */
  private readonly firstNewId: number;
  /**
   * The refusal thrown while the outbox stays full, made once: building an Error makes Espruino write its
   * stack trace, and a meter whose broker is gone offers a reading every interval and every few seconds. In
   * the memory bench's backlog, building a fresh one (after the ring's own) was what ran out of memory
   * (bench/RESULTS.md). Dropped when a message is acknowledged (the only thing that makes room).
   */
  private refusal: OutboxFullError | null;

  constructor(ring: FlashRing) {
    this.ring = ring;
    this.pending = new PendingIds();
    this.recoveredNotes = [];
    this.refusal = null;
    ring.recover();
    const pending = this.pending;
    const notes = this.recoveredNotes;
    ring.forEach(0, function (r) {
      const d = decode(r.seq, r.payload);
      if (!d) return;
      pending.add(r.seq);
      if (d.note) notes.push(d.note);
    });
    this.firstNewId = ring.headSeq() + 1;
  }

  /** Messages stored and not yet acknowledged. */
  size(): number {
    return this.pending.size();
  }

  /** True for an entry stored before this Outbox was opened: it may have been sent before a reboot. */
  isRecovered(id: number): boolean {
    return id < this.firstNewId;
  }

  /** The notes of the messages that were waiting when the outbox was opened, oldest first. */
  notes(): string[] {
    return this.recoveredNotes;
  }

  /**
   * Stores a message durably, with `note` (optional, at most 255 bytes) in the same record, and
   * returns its id. Throws OutboxFullError (nothing stored) when the outbox is full, OutboxError
   * when the message can never fit.
   */
  append(topic: string, payload: Uint8Array, retain?: boolean, note?: string): number {
    const n = note || '';
    if (topic.length === 0 || topic.length > 255)
      throw new OutboxError('topic must be 1..255 chars, got ' + topic.length);
    if (n.length > 255) throw new OutboxError('outbox note of ' + n.length + ' bytes is longer than 255');
    const record =
      String.fromCharCode(retain === true ? RETAIN_FLAG : 0, topic.length, n.length) +
      topic +
      n +
      bytesToByteString(payload);
    const pageBytes = this.ring.area.pageBytes;
    if (recordBytes(record.length) > pageBytes) {
      throw new OutboxError(
        'message of ' +
          payload.length +
          ' bytes on "' +
          topic +
          '" is too large for the outbox (a record must fit one ' +
          pageBytes +
          '-byte flash page)',
      );
    }
    if (!this.ring.fits(record.length, this.pending.first())) {
      if (!this.refusal)
        this.refusal = new OutboxFullError(
          'outbox full: ' +
            this.pending.size() +
            ' messages wait for the broker to acknowledge them; nothing was stored: keep the message and try again later',
        );
      throw this.refusal;
    }
    const seq = this.ring.append(record, this.pending.first());
    this.pending.add(seq);
    return seq;
  }

  /** The oldest unacknowledged entry. */
  first(): OutboxEntry | undefined {
    return this.after(0);
  }

  /** The oldest unacknowledged entry with an id greater than `id`. */
  after(id: number): OutboxEntry | undefined {
    const pending = this.pending;
    const from = pending.after(id);
    if (from === undefined) return undefined;
    let found: OutboxEntry | undefined;
    this.ring.forEach(from, function (r) {
      if (!pending.has(r.seq)) return false;
      const d = decode(r.seq, r.payload);
      if (d) found = d.entry;
      return d !== undefined;
    });
    return found;
  }

  /** The unacknowledged entry `id`, read from flash; undefined when it is acknowledged or unknown. */
  get(id: number): OutboxEntry | undefined {
    const e = this.after(id - 1);
    return e && e.id === id ? e : undefined;
  }

  /** Marks an entry delivered (PUBACK received). Unknown or already acknowledged ids are ignored. */
  ack(id: number): void {
    this.pending.remove(id);
    this.refusal = null;
  }
}
