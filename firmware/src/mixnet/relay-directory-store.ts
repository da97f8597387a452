// The meter's copy of the relay directory (docs/relay-directory.md), kept in Storage, never whole in RAM: 1,000
// relays are 72 KB against a heap of about 229 KB shared with everything else. Record i is read when needed
// (72 bytes at a fixed offset), and indexOf is a binary search reading 8 bytes per step.
//
// How a directory arrives: the DSO's signed head is retained on RELAY_DIRECTORY_HEAD_TOPIC. A head whose epoch
// is above the stored one is verified in the secure element (Verify, external key: vg.config's DSO key), then
// the pages are fetched one at a time (subscribe to page i, take its retained message, unsubscribe), each
// checked by its hash in the chain from the head (checkDirectoryPage) and its records written to Storage at
// once: RAM holds one page (1.8 KB) at most.
//
// Power cuts: a new directory goes to the other of two files, laid out
//   "VGR" (3) | done (1: 0xFF until the last page is written, then 01) | epoch (4) | relay count (4) |
//   exit record (72) | records, 72 each, sorted by relay id
// and the done byte is programmed last (flash bits only clear, so it needs no erase). At boot the done file
// with the higher epoch is the directory, so a cut mid-update leaves the old one in use. One file of up to
// 72 KB is written per epoch, and epochs change when meters join or leave: flash wear is no concern.
//
// Bad input (a head that does not verify or is older than the stored one, a page that fails its hash) is
// dropped and logged at most once a minute; nothing is thrown out of the MQTT handlers. A failed update is
// taken up again at the next head the broker delivers (a new epoch, or the same one after a reconnect).
import type { Clock } from '../platform/clock.ts';
import {
  decodeRelayDirectoryHead,
  kidOf,
  openSignedCertificate,
  type RelayDirectoryHead,
} from '../protocol/certificate.ts';
import { ALG_ES256 } from '../protocol/cose.ts';
import { copyBytes, equalBytes } from '../protocol/crypto/bytes.ts';
import type { Sha256 } from '../protocol/crypto/sha256.ts';
import {
  checkDirectoryPage,
  exitOfHead,
  RECORDS_PER_PAGE,
  RelayDirectoryError,
  RELAY_ID_BYTES,
  RELAY_RECORD_BYTES,
  relayRecordAt,
  relayRecordBytes,
  type RelayRecord,
} from '../protocol/relay-directory.ts';
import { RELAY_DIRECTORY_HEAD_TOPIC, relayDirectoryPageTopic } from '../protocol/topics.ts';
import type { VeilgridError } from '../protocol/veilgrid-error.ts';
import type { RelayDirectoryView } from './relay-directory-view.ts';

/** How long after the secure element failed a head's check it is tried again. */
const HEAD_RETRY_MS = 5000;

/** The two Storage files a directory alternates between. */
const DIRECTORY_FILES = ['vg.dir0', 'vg.dir1'];
const MAGIC = 'VGR';
const DONE_AT = 3;
const DONE = 1;
const META_BYTES = 12 + RELAY_RECORD_BYTES;
/** At most one line about dropped input per this many seconds. */
const COMPLAINT_SECONDS = 60;

/** The MQTT client's part the store uses (mqtt/client.ts). */
export interface DirectoryMqtt {
  subscribe(filter: string, qos: 0 | 1, onMessage: (topic: string, payload: Uint8Array) => void): void;
  unsubscribe(filter: string): void;
}

export interface RelayDirectoryStoreOptions {
  /** Espruino's Storage (platform/storage.ts). */
  storage: StorageModule;
  /** The secure element: Verify with an external key (se/secure-element.ts). */
  se: { verifyExternal(digest: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean };
  sha256: Sha256;
  /** vg.config's DSO key, 65 bytes 04 || x || y: the key the heads are signed with. */
  dsoPublicKey: Uint8Array;
  mqtt: DirectoryMqtt;
  clock: Clock;
  log(message: string): void;
}

interface Stored {
  file: string;
  epoch: number;
  count: number;
  exit: RelayRecord;
}

interface Update {
  head: RelayDirectoryHead;
  file: string;
  /** The page awaited. */
  page: number;
  /** Its hash, from the head or the page before. */
  expected: Uint8Array;
}

function uint32At(text: string, at: number): number {
  return (
    text.charCodeAt(at) * 0x1000000 +
    ((text.charCodeAt(at + 1) << 16) | (text.charCodeAt(at + 2) << 8) | text.charCodeAt(at + 3))
  );
}

function putUint32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = Math.floor(value / 0x1000000) & 0xff;
  bytes[at + 1] = (value >> 16) & 0xff;
  bytes[at + 2] = (value >> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}

export class RelayDirectoryStore implements RelayDirectoryView {
  private readonly o: RelayDirectoryStoreOptions;
  private stored: Stored | undefined;
  private update: Update | undefined;
  private dsoKid: Uint8Array | undefined;
  private lastComplaint = -COMPLAINT_SECONDS;
  /** A head whose check the secure element failed (not the head's fault), tried again after HEAD_RETRY_MS. */
  private headRetry: number | null = null;
  private quiet = 0;

  /** Reads the directory Storage holds (the done file with the higher epoch); start() then follows the DSO's. */
  constructor(options: RelayDirectoryStoreOptions) {
    this.o = options;
    for (let f = 0; f < DIRECTORY_FILES.length; f++) {
      const found = this.readMeta(DIRECTORY_FILES[f]);
      if (found && (!this.stored || found.epoch > this.stored.epoch)) this.stored = found;
    }
  }

  /** Subscribes to the head; each new one is verified and its pages fetched. */
  start(): void {
    const self = this;
    this.o.mqtt.subscribe(RELAY_DIRECTORY_HEAD_TOPIC, 0, function (_topic, payload) {
      self.tryHead(payload);
    });
  }

  /**
   * Takes a head; one the secure element could not check (a wake that failed on a busy meter) is tried again
   * a few seconds later, or the meter would keep an older directory until the next epoch.
   */
  private tryHead(payload: Uint8Array): void {
    const self = this;
    const clock = this.o.clock;
    if (this.headRetry !== null) clock.clearTimeout(this.headRetry);
    this.headRetry = null;
    try {
      this.takeHead(payload);
    } catch (e) {
      this.complain('head dropped: ' + ((e as Error).message || e));
      if ((e as VeilgridError).code === 'secure-element')
        this.headRetry = clock.setTimeout(function () {
          self.headRetry = null;
          self.tryHead(payload);
        }, HEAD_RETRY_MS);
    }
  }

  /** A verified directory is stored (its exit record with it). */
  isComplete(): boolean {
    return this.stored !== undefined;
  }

  /** The stored directory's epoch, 0 without one. */
  epoch(): number {
    return this.stored ? this.stored.epoch : 0;
  }

  relayCount(): number {
    return this.stored ? this.stored.count : 0;
  }

  /** Record i (sorted by relay id), read from Storage: 72 bytes. */
  relayAt(i: number): RelayRecord {
    const s = this.stored;
    if (!s || !(i >= 0 && i < s.count))
      throw new RelayDirectoryError('relay ' + i + ' is not in the directory (' + this.relayCount() + ' relays)');
    const text = this.o.storage.read(s.file, META_BYTES + i * RELAY_RECORD_BYTES, RELAY_RECORD_BYTES) as string;
    const bytes = new Uint8Array(RELAY_RECORD_BYTES);
    for (let b = 0; b < RELAY_RECORD_BYTES; b++) bytes[b] = text.charCodeAt(b);
    return relayRecordAt(bytes, 0);
  }

  /** The index of relayId, -1 if absent: a binary search reading 8 bytes per step. */
  indexOf(relayId: Uint8Array): number {
    const s = this.stored;
    if (!s) return -1;
    let low = 0;
    let high = s.count - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      const id = this.o.storage.read(s.file, META_BYTES + mid * RELAY_RECORD_BYTES, RELAY_ID_BYTES) as string;
      let order = 0;
      for (let b = 0; b < RELAY_ID_BYTES && order === 0; b++) order = id.charCodeAt(b) - relayId[b];
      if (order === 0) return mid;
      if (order < 0) low = mid + 1;
      else high = mid - 1;
    }
    return -1;
  }

  exit(): RelayRecord | undefined {
    return this.stored ? this.stored.exit : undefined;
  }

  /** The done file's meta data, or undefined (no file, or one a cut left unfinished). */
  private readMeta(file: string): Stored | undefined {
    const meta = this.o.storage.read(file, 0, META_BYTES);
    if (!meta || meta.length !== META_BYTES || meta.substring(0, 3) !== MAGIC || meta.charCodeAt(DONE_AT) !== DONE)
      return undefined;
    const exit = new Uint8Array(RELAY_RECORD_BYTES);
    for (let b = 0; b < RELAY_RECORD_BYTES; b++) exit[b] = meta.charCodeAt(12 + b);
    return { file: file, epoch: uint32At(meta, 4), count: uint32At(meta, 8), exit: relayRecordAt(exit, 0) };
  }

  private takeHead(payload: Uint8Array): void {
    if (payload.length === 0) return; // the DSO cleared it
    const opened = openSignedCertificate(payload, ALG_ES256);
    const head = decodeRelayDirectoryHead(opened.payload);
    // The stored head comes again after every reconnect: known epochs cost no SE command.
    if (head.epoch === this.epoch() || (this.update && head.epoch === this.update.head.epoch)) return;
    if (head.epoch < this.epoch() || (this.update && head.epoch < this.update.head.epoch)) {
      this.complain('head of epoch ' + head.epoch + ' refused: not above the one held (' + this.epoch() + ')');
      return;
    }
    const o = this.o;
    if (!this.dsoKid) this.dsoKid = kidOf(o.sha256, o.dsoPublicKey);
    if (!equalBytes(opened.kid, this.dsoKid)) {
      this.complain('head of epoch ' + head.epoch + ' refused: not signed by the DSO key of vg.config');
      return;
    }
    if (!o.se.verifyExternal(o.sha256(opened.toBeSigned), opened.signature, o.dsoPublicKey.subarray(1))) {
      this.complain('head of epoch ' + head.epoch + ' refused: its signature does not verify under the DSO key');
      return;
    }
    const exit = exitOfHead(o.sha256, head);
    if (!exit) {
      this.complain(
        'head of epoch ' + head.epoch + ' names no exit: not stored (the DSO needs the exit key to name one)',
      );
      return;
    }
    if (head.relayCount < 1 || head.pageCount !== Math.ceil(head.relayCount / RECORDS_PER_PAGE)) {
      this.complain('head of epoch ' + head.epoch + ' refused: ' + head.relayCount + ' relays in ' + head.pageCount);
      return;
    }
    this.abandon();
    const file = this.stored && this.stored.file === DIRECTORY_FILES[0] ? DIRECTORY_FILES[1] : DIRECTORY_FILES[0];
    const meta = new Uint8Array(META_BYTES);
    for (let i = 0; i < 3; i++) meta[i] = MAGIC.charCodeAt(i);
    meta[DONE_AT] = 0xff; // left erased: programmed last
    putUint32(meta, 4, head.epoch);
    putUint32(meta, 8, head.relayCount);
    meta.set(relayRecordBytes(exit), 12);
    // A new file (the old one of this name is dropped), sized for every record.
    if (!o.storage.write(file, meta, 0, META_BYTES + head.relayCount * RELAY_RECORD_BYTES))
      throw new Error('Storage has no room for ' + head.relayCount + ' relays');
    this.update = { head: head, file: file, page: 0, expected: head.firstPageHash };
    this.follow(0);
  }

  private follow(page: number): void {
    const self = this;
    this.o.mqtt.subscribe(relayDirectoryPageTopic(page), 0, function (topic, payload) {
      try {
        self.takePage(topic, payload);
      } catch (e) {
        self.complain('page dropped: ' + ((e as Error).message || e));
        self.abandon();
      }
    });
  }

  private takePage(topic: string, payload: Uint8Array): void {
    const u = this.update;
    if (!u || topic !== relayDirectoryPageTopic(u.page) || payload.length === 0) return;
    const page = checkDirectoryPage(this.o.sha256, u.head, u.page, u.expected, payload);
    this.o.storage.write(u.file, page.records, META_BYTES + u.page * RECORDS_PER_PAGE * RELAY_RECORD_BYTES);
    this.o.mqtt.unsubscribe(topic);
    u.page++;
    // A copy: a view would keep the whole page in RAM until the next one.
    u.expected = copyBytes(page.nextPageHash, 0, 32);
    if (u.page < u.head.pageCount) {
      this.follow(u.page);
      return;
    }
    this.o.storage.write(u.file, String.fromCharCode(DONE), DONE_AT);
    this.stored = {
      file: u.file,
      epoch: u.head.epoch,
      count: u.head.relayCount,
      exit: exitOfHead(this.o.sha256, u.head) as RelayRecord,
    };
    this.update = undefined;
    this.o.log('directory: epoch ' + u.head.epoch + ' stored, ' + u.head.relayCount + ' relays');
  }

  /** Stops an update (its file stays unfinished until the next update rewrites it). */
  private abandon(): void {
    if (this.update) this.o.mqtt.unsubscribe(relayDirectoryPageTopic(this.update.page));
    this.update = undefined;
  }

  /** Logs dropped input at most once per COMPLAINT_SECONDS, counting what it kept quiet about. */
  private complain(message: string): void {
    const now = this.o.clock.now();
    if (now - this.lastComplaint < COMPLAINT_SECONDS) {
      this.quiet++;
      return;
    }
    this.o.log('directory: ' + message + (this.quiet > 0 ? ' (and ' + this.quiet + ' more dropped before)' : ''));
    this.lastComplaint = now;
    this.quiet = 0;
  }
}

/** The store as main.ts starts it: the directory Storage holds now, following the DSO's from the broker on. */
export function startRelayDirectoryStore(options: RelayDirectoryStoreOptions): RelayDirectoryStore {
  const store = new RelayDirectoryStore(options);
  store.start();
  return store;
}
