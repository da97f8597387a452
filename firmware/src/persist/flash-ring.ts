// A power-safe ring of records on raw flash pages, written through Espruino's Flash module (never
// through Storage, so it never makes Storage compact). docs/energy-journal.md argues the design;
// the record format is power-safe-record.ts.
//
// - Records are appended one after another within a page; when the next one does not fit, the
//   ring moves on to the next page (wrapping), erasing it first.
// - Every record carries its sequence number and keep-from: the lowest sequence number the user
//   still needs (the journal: the record itself; the outbox: its oldest unacknowledged message).
//   A page may be erased only when everything in it is below the keep-from of the record about to
//   be written; otherwise the ring is full (RingFullError, nothing written).
// - Recovery: the newest record whose CRC holds is the head; records from its keep-from up to it
//   are the live ones. A record torn by a cut fails its CRC and is skipped; the page it is in is
//   not written again (the next record goes to the next page). A page left half-erased by a cut
//   holds only records below keep-from, or garbage that fails its CRC: either way it is ignored,
//   so the ring needs no erase-ahead and no page header.

import { bytesToByteString } from '../protocol/byte-string.ts';
import {
  decodeRecordHeader,
  encodeRecord,
  MAX_RECORD_SEQ,
  RECORD_HEADER_BYTES,
  recordBytes,
  recordPayload,
  UNWRITTEN_LENGTH,
} from './power-safe-record.ts';
import { VeilgridError } from '../protocol/veilgrid-error.ts';

/** Where a ring lives: `pages` flash pages of `pageBytes` from `addr` (page-aligned). */
export interface RingArea {
  addr: number;
  pageBytes: number;
  pages: number;
}

/** The ring cannot take a record: its next page still holds records at or above keep-from. */
export class RingFullError extends VeilgridError {
  constructor(message: string) {
    super('RingFullError', 'ring-full', message);
  }
}

/** One live record, as forEach hands it over. */
export interface RingRecord {
  seq: number;
  payload: string;
}

export class FlashRing {
  readonly area: RingArea;
  private readonly flash: FlashModule;
  /** Sequence number of the newest valid record (0: none). */
  private head: number;
  private keepFrom: number;
  /** Per page: the highest sequence number written in it, not above head (0: none). */
  private pageSeq: number[];
  private writePage: number;
  /** Offset in writePage of the next record; pageBytes when that page takes no more. */
  private writeOffset: number;
  /** Records found torn or corrupt by the last recover(). */
  tornRecords: number;
  /** Pages erased since construction (wear). */
  erases: number;

  constructor(flash: FlashModule, area: RingArea) {
    if (area.pages < 2 || area.addr % area.pageBytes !== 0) {
      throw new Error('flash ring needs at least 2 whole pages, got ' + area.pages + ' at ' + area.addr);
    }
    this.flash = flash;
    this.area = area;
    this.head = 0;
    this.keepFrom = 0;
    this.pageSeq = [];
    this.writePage = area.pages - 1;
    this.writeOffset = area.pageBytes;
    this.tornRecords = 0;
    this.erases = 0;
  }

  /** Sequence number of the newest record (0 when the ring holds none). */
  headSeq(): number {
    return this.head;
  }

  /** Reads the ring from flash: finds the newest valid record and where the next one goes. */
  recover(): void {
    const a = this.area;
    this.head = 0;
    this.keepFrom = 0;
    this.tornRecords = 0;
    this.writePage = a.pages - 1;
    this.writeOffset = a.pageBytes;
    // The head is the valid record with the highest seq of all pages (a torn header may claim any seq).
    let headPage = -1;
    let headOffset = 0;
    for (let p = 0; p < a.pages; p++) {
      const offset = this.newestValidIn(p);
      if (offset < 0) continue;
      const h = decodeRecordHeader(this.read(this.pageAddr(p) + offset, RECORD_HEADER_BYTES));
      if (h.seq > this.head) {
        this.head = h.seq;
        this.keepFrom = h.keepFrom;
        headPage = p;
        headOffset = offset + recordBytes(h.length);
      }
    }
    if (headPage >= 0) {
      this.writePage = headPage;
      // Go on after the head only if nothing at all was written past it (no torn record).
      this.writeOffset = this.isErased(this.pageAddr(headPage) + headOffset, a.pageBytes - headOffset)
        ? headOffset
        : a.pageBytes;
    }
    // What each page holds that the ring must not erase. A header from keep-from on counts only if
    // its record is valid: garbage left by a cut erase must not block the ring.
    this.pageSeq = [];
    for (let p = 0; p < a.pages; p++) this.pageSeq.push(this.head ? this.maxHeaderSeq(p, this.head, this.keepFrom) : 0);
  }

  /** Whether append(payload of `payloadLength` bytes, keepFrom) would find room (it throws RingFullError when not). */
  fits(payloadLength: number, keepFrom?: number): boolean {
    const a = this.area;
    if (this.writeOffset + recordBytes(payloadLength) <= a.pageBytes) return true;
    const from = keepFrom === undefined ? this.head + 1 : keepFrom;
    return !(this.pageSeq[(this.writePage + 1) % a.pages] >= from);
  }

  /**
   * Appends a record and returns its sequence number. `keepFrom` is the lowest sequence number
   * still needed after this write (default: this record's own, i.e. only the newest record
   * matters). When this returns, the record survives a power cut; a cut during the call leaves it
   * whole or torn (ignored by recover). Throws RingFullError (nothing written) when the next page
   * still holds needed records.
   */
  append(payload: string, keepFrom?: number): number {
    const a = this.area;
    const seq = this.head + 1;
    const from = keepFrom === undefined ? seq : keepFrom;
    const size = recordBytes(payload.length);
    if (size > a.pageBytes)
      throw new Error('record of ' + payload.length + ' bytes does not fit a ' + a.pageBytes + '-byte flash page');
    if (this.writeOffset + size > a.pageBytes) {
      const next = (this.writePage + 1) % a.pages;
      if (this.pageSeq[next] >= from) {
        throw new RingFullError(
          'flash ring full: its next page still holds record ' +
            this.pageSeq[next] +
            ', and records from ' +
            from +
            ' on are needed',
        );
      }
      this.writePage = next;
      this.writeOffset = a.pageBytes; // until the erase has returned, nothing goes into this page
      this.pageSeq[next] = 0;
      this.flash.erasePage(this.pageAddr(next));
      this.erases++;
      this.writeOffset = 0;
    }
    const offset = this.writeOffset;
    // Whatever happens now, this page takes nothing more after a failed write.
    this.writeOffset = a.pageBytes;
    this.flash.write(encodeRecord(seq, from, payload), this.pageAddr(this.writePage) + offset);
    this.writeOffset = offset + size;
    this.head = seq;
    this.keepFrom = from;
    this.pageSeq[this.writePage] = seq;
    return seq;
  }

  /** The newest record's payload, or undefined when the ring is empty. */
  newest(): string | undefined {
    let found: string | undefined;
    this.forEach(this.head, function (r) {
      found = r.payload;
    });
    return found;
  }

  /**
   * Calls `fn` for every valid record from sequence number `fromSeq` (at least keep-from) up to
   * the head, oldest first. Torn records are skipped. Returns nothing; `fn` may stop the walk by
   * returning true.
   */
  forEach(fromSeq: number, fn: (record: RingRecord) => boolean | void): void {
    if (this.head === 0) return;
    const low = Math.max(fromSeq, this.keepFrom);
    const a = this.area;
    // The oldest page is the one after the page written last.
    for (let i = 1; i <= a.pages; i++) {
      const page = (this.writePage + i) % a.pages;
      if (this.pageSeq[page] < low) continue;
      let stop = false;
      this.walkPage(page, (offset, h) => {
        if (h.seq < low || h.seq > this.head) return false;
        const payload = this.readPayload(page, offset, h.length);
        if (payload === undefined) return false;
        stop = fn({ seq: h.seq, payload: payload }) === true;
        return stop;
      });
      if (stop) return;
    }
  }

  /**
   * Flash address of a page of this ring. `| 0` makes it an integer JsVar: Espruino's
   * Flash.erasePage refuses a float ("Address should be an integer"), and arithmetic such as
   * Math.floor() or % with a float yields floats even for whole numbers (addresses stay below 2^31).
   */
  private pageAddr(page: number): number {
    return (this.area.addr + page * this.area.pageBytes) | 0;
  }

  private read(addr: number, length: number): string {
    const bytes = this.flash.read(length, addr);
    return bytes ? bytesToByteString(bytes) : '';
  }

  /** The payload of the record at `offset` of `page`, or undefined when its CRC fails. */
  private readPayload(page: number, offset: number, length: number): string | undefined {
    return recordPayload(this.read(this.pageAddr(page) + offset, recordBytes(length)));
  }

  /**
   * Calls `fn(offset, header)` for each record header in the page, in order, until the erased
   * tail, a header whose length does not fit the page, or `fn` returns true.
   */
  private walkPage(
    page: number,
    fn: (offset: number, header: { length: number; seq: number; keepFrom: number }) => boolean,
  ): void {
    const a = this.area;
    let offset = 0;
    while (offset + RECORD_HEADER_BYTES <= a.pageBytes) {
      const h = decodeRecordHeader(this.read(this.pageAddr(page) + offset, RECORD_HEADER_BYTES));
      if (h.length === UNWRITTEN_LENGTH) return;
      const size = recordBytes(h.length);
      if (offset + size > a.pageBytes) return;
      if (fn(offset, h)) return;
      offset += size;
    }
  }

  /** The highest header seq in the page not above `limit`; from `verifyFrom` on, only of valid records (0: none). */
  private maxHeaderSeq(page: number, limit: number, verifyFrom: number): number {
    let max = 0;
    this.walkPage(page, (offset, h) => {
      if (
        h.seq <= limit &&
        h.seq > max &&
        (h.seq < verifyFrom || this.readPayload(page, offset, h.length) !== undefined)
      )
        max = h.seq;
      return false;
    });
    return max;
  }

  /** Offset of the valid record with the highest seq in `page`, -1 when there is none. */
  private newestValidIn(page: number): number {
    const offsets: number[] = [];
    const seqs: number[] = [];
    this.walkPage(page, function (offset, h) {
      offsets.push(offset);
      seqs.push(h.seq);
      return false;
    });
    for (;;) {
      let best = -1;
      for (let i = 0; i < seqs.length; i++)
        if (seqs[i] > 0 && seqs[i] <= MAX_RECORD_SEQ && (best < 0 || seqs[i] > seqs[best])) best = i;
      if (best < 0) return -1;
      const offset = offsets[best];
      const h = decodeRecordHeader(this.read(this.pageAddr(page) + offset, RECORD_HEADER_BYTES));
      if (h.keepFrom <= h.seq && this.readPayload(page, offset, h.length) !== undefined) return offset;
      this.tornRecords++;
      seqs[best] = 0;
    }
  }

  private isErased(addr: number, length: number): boolean {
    if (length <= 0) return true;
    const bytes = this.flash.read(length, addr);
    if (!bytes) return false;
    for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0xff) return false;
    return true;
  }
}
