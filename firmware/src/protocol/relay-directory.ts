// The mixnet's relay directory (docs/relay-directory.md): every authorized meter's relay id and mix public
// key, in pages small enough for one MQTT message each and laid out at fixed offsets, so a meter can keep the
// directory in Storage and read the one record it samples without holding the directory in RAM.
//
// A page (at most PAGE_HEADER_BYTES + RECORDS_PER_PAGE · RELAY_RECORD_BYTES = 1,772 bytes):
//   "VGD1" (4) | epoch (4) | page index (2) | record count (1) | 0 (1) | SHA-256 of the next page (32,
//   zeros on the last) | records, each relay id (8) | mix key x || y (64), sorted by relay id over all pages.
// The DSO signs the head (certificate.ts, kind 5: epoch, relay and page counts, SHA-256 of page 0, the exit's
// record), so one signature covers every page through the chain of hashes, and the head stays small whatever
// the number of relays. A relay id is kidOf(mix key): the first 8 bytes of SHA-256 of 04 || x || y.
import { copyBytes, equalBytes } from './crypto/bytes.ts';
import type { Sha256 } from './crypto/sha256.ts';
import { kidOf, type RelayDirectoryHead } from './certificate.ts';
import { VeilgridError } from './veilgrid-error.ts';

export const RELAY_ID_BYTES = 8;
export const MIX_KEY_BYTES = 64;
export const RELAY_RECORD_BYTES = RELAY_ID_BYTES + MIX_KEY_BYTES;
export const RECORDS_PER_PAGE = 24;
export const PAGE_HEADER_BYTES = 44;
const MAGIC = 'VGD1';
const NEXT_HASH_AT = 12;

export interface RelayRecord {
  relayId: Uint8Array;
  /** x || y. */
  mixKey: Uint8Array;
}

export interface DirectoryPage {
  epoch: number;
  index: number;
  count: number;
  nextPageHash: Uint8Array;
  /** The records' bytes, RELAY_RECORD_BYTES each. */
  records: Uint8Array;
}

export class RelayDirectoryError extends VeilgridError {
  constructor(message: string) {
    super('RelayDirectoryError', 'relay-directory', message);
  }
}

function compareIds(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < RELAY_ID_BYTES; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/**
 * The pages listing records (any order; sorted here) for epoch, and page 0's hash for the head. Refuses
 * malformed records and two relays with one id.
 */
export function buildDirectoryPages(
  sha256: Sha256,
  epoch: number,
  records: RelayRecord[],
): { pages: Uint8Array[]; firstPageHash: Uint8Array } {
  if (records.length === 0) throw new RelayDirectoryError('a relay directory lists at least one relay');
  const sorted = records.slice();
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i].relayId.length !== RELAY_ID_BYTES || sorted[i].mixKey.length !== MIX_KEY_BYTES) {
      throw new RelayDirectoryError('relay ' + i + ': a record is an 8-byte relay id and a 64-byte mix key x || y');
    }
  }
  sorted.sort(function (a, b) {
    return compareIds(a.relayId, b.relayId);
  });
  for (let i = 1; i < sorted.length; i++) {
    if (compareIds(sorted[i - 1].relayId, sorted[i].relayId) === 0)
      throw new RelayDirectoryError('two relays have the same relay id');
  }
  const pageCount = Math.ceil(sorted.length / RECORDS_PER_PAGE);
  const pages: Uint8Array[] = [];
  let nextHash: Uint8Array = new Uint8Array(32);
  // Built from the last page back: each page carries the hash of the one after it.
  for (let p = pageCount - 1; p >= 0; p--) {
    const first = p * RECORDS_PER_PAGE;
    const count = Math.min(RECORDS_PER_PAGE, sorted.length - first);
    const page = new Uint8Array(PAGE_HEADER_BYTES + count * RELAY_RECORD_BYTES);
    for (let i = 0; i < 4; i++) page[i] = MAGIC.charCodeAt(i);
    page[4] = Math.floor(epoch / 0x1000000) & 0xff;
    page[5] = (epoch >> 16) & 0xff;
    page[6] = (epoch >> 8) & 0xff;
    page[7] = epoch & 0xff;
    page[8] = (p >> 8) & 0xff;
    page[9] = p & 0xff;
    page[10] = count;
    page.set(nextHash, NEXT_HASH_AT);
    for (let r = 0; r < count; r++) {
      page.set(sorted[first + r].relayId, PAGE_HEADER_BYTES + r * RELAY_RECORD_BYTES);
      page.set(sorted[first + r].mixKey, PAGE_HEADER_BYTES + r * RELAY_RECORD_BYTES + RELAY_ID_BYTES);
    }
    pages.unshift(page);
    nextHash = sha256(page);
  }
  return { pages: pages, firstPageHash: nextHash };
}

/** A page's fields, checked for form only (its hash is checked against the chain by checkPage). */
export function parseDirectoryPage(bytes: Uint8Array): DirectoryPage {
  if (bytes.length < PAGE_HEADER_BYTES)
    throw new RelayDirectoryError(
      'a directory page is at least ' + PAGE_HEADER_BYTES + ' bytes (got ' + bytes.length + ')',
    );
  for (let i = 0; i < 4; i++)
    if (bytes[i] !== MAGIC.charCodeAt(i))
      throw new RelayDirectoryError('not a directory page: it does not start with "' + MAGIC + '"');
  const count = bytes[10];
  if (
    count < 1 ||
    count > RECORDS_PER_PAGE ||
    bytes[11] !== 0 ||
    bytes.length !== PAGE_HEADER_BYTES + count * RELAY_RECORD_BYTES
  ) {
    throw new RelayDirectoryError(
      'a directory page of ' +
        count +
        ' records is ' +
        (PAGE_HEADER_BYTES + count * RELAY_RECORD_BYTES) +
        ' bytes (got ' +
        bytes.length +
        ')',
    );
  }
  return {
    epoch: bytes[4] * 0x1000000 + ((bytes[5] << 16) | (bytes[6] << 8) | bytes[7]),
    index: (bytes[8] << 8) | bytes[9],
    count: count,
    nextPageHash: bytes.subarray(NEXT_HASH_AT, NEXT_HASH_AT + 32),
    records: bytes.subarray(PAGE_HEADER_BYTES),
  };
}

/**
 * Checks that page is page `index` of the directory the (verified) head names, given the hash that points
 * at it: the head's firstPageHash for page 0, the previous page's nextPageHash otherwise. Returns the page;
 * throws RelayDirectoryError.
 */
export function checkDirectoryPage(
  sha256: Sha256,
  head: RelayDirectoryHead,
  index: number,
  expectedHash: Uint8Array,
  bytes: Uint8Array,
): DirectoryPage {
  if (head.relayCount < 1 || head.pageCount !== Math.ceil(head.relayCount / RECORDS_PER_PAGE)) {
    throw new RelayDirectoryError(
      'the head lists ' +
        head.relayCount +
        ' relays in ' +
        head.pageCount +
        ' pages: that is not ' +
        RECORDS_PER_PAGE +
        ' per page',
    );
  }
  if (index >= head.pageCount)
    throw new RelayDirectoryError('the head has ' + head.pageCount + ' pages, there is no page ' + index);
  if (!equalBytes(sha256(bytes), expectedHash))
    throw new RelayDirectoryError(
      'directory page ' + index + ' does not match its hash in the chain from the signed head',
    );
  const page = parseDirectoryPage(bytes);
  if (page.epoch !== head.epoch || page.index !== index)
    throw new RelayDirectoryError(
      'directory page ' +
        index +
        ' of epoch ' +
        head.epoch +
        ' says it is page ' +
        page.index +
        ' of epoch ' +
        page.epoch,
    );
  const last = index === head.pageCount - 1;
  const expectedCount = last ? head.relayCount - index * RECORDS_PER_PAGE : RECORDS_PER_PAGE;
  if (page.count !== expectedCount)
    throw new RelayDirectoryError(
      'directory page ' + index + ' holds ' + page.count + ' records, the head implies ' + expectedCount,
    );
  if (last !== equalBytes(page.nextPageHash, new Uint8Array(32)))
    throw new RelayDirectoryError(
      'directory page ' + index + (last ? ' is the last but points at another' : ' points at no next page'),
    );
  return page;
}

/** Record `i` of a page's records. */
export function relayRecordAt(records: Uint8Array, i: number): RelayRecord {
  const at = i * RELAY_RECORD_BYTES;
  return {
    relayId: copyBytes(records, at, at + RELAY_ID_BYTES),
    mixKey: copyBytes(records, at + RELAY_ID_BYTES, at + RELAY_RECORD_BYTES),
  };
}

/** A record's RELAY_RECORD_BYTES bytes, relay id || mix key x || y: how pages and the head's exit hold one. */
export function relayRecordBytes(record: RelayRecord): Uint8Array {
  const bytes = new Uint8Array(RELAY_RECORD_BYTES);
  bytes.set(record.relayId, 0);
  bytes.set(record.mixKey, RELAY_ID_BYTES);
  return bytes;
}

/**
 * The exit named by a (verified) head, undefined when it names none (then nothing can be sent through the
 * mixnet). Throws RelayDirectoryError when its relay id is not kidOf its mix key.
 */
export function exitOfHead(sha256: Sha256, head: RelayDirectoryHead): RelayRecord | undefined {
  if (!head.exit) return undefined;
  const exit = relayRecordAt(head.exit, 0);
  if (!equalBytes(kidOf(sha256, exit.mixKey), exit.relayId))
    throw new RelayDirectoryError("the head's exit relay id is not the key id of its mix key");
  return exit;
}
