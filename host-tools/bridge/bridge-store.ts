// The bridge's queue and memory in SQLite (better-sqlite3, WAL, synchronous FULL): every offer it acknowledged,
// every transaction it signed before sending it, and every broadcast it still owes. What makes the bridge
// crash-safe (docs/bridge.md, "Crash safety"):
//   - an offer is inserted before its MQTT message is acknowledged, so a kill loses nothing the broker forgot;
//   - a batch's signed transaction (raw bytes, nonce) is stored in the same SQLite transaction that moves its
//     offers to in-flight, before it is sent, so after a kill the bridge sends the same bytes again (the same
//     hash: the chain takes it at most once) or finds its receipt; a nonce names one batch for ever;
//   - receipts and clearing results are marked published only after the broker's PUBACK.
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import type { Hex } from 'viem';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export type OfferState = 'queued' | 'in-flight' | 'accepted' | 'refused';

export interface QueuedOffer {
  digest: Uint8Array;
  message: Uint8Array;
  interval: number;
}

export interface Attempt {
  hash: Hex;
  raw: Hex;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  sentMs: number;
}

export interface PendingBatch {
  id: number;
  nonce: number;
  /** Oldest first. */
  attempts: Attempt[];
  /** Its offers in the order its transactions carry them. */
  digests: Uint8Array[];
}

export type Outcome =
  | { digest: Uint8Array; accepted: true; interval: number; index: number; replayed?: boolean }
  | { digest: Uint8Array; accepted: false; reason: number };

export interface UnpublishedOutcome {
  /** The row's key: the offer digest, or for the bridge's own refusals the hash of the whole message. */
  key: Uint8Array;
  digest: Uint8Array;
  /** A refusal by the bridge (the refusals table). */
  bridge?: boolean;
  state: 'accepted' | 'refused';
  interval: number | null;
  index: number | null;
  reason: number | null;
}

export class BridgeStoreError extends VeilgridError {
  constructor(message: string) {
    super('BridgeStoreError', 'bridge-store', message);
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS offers (
  digest BLOB PRIMARY KEY,
  message BLOB,
  interval INTEGER,
  state TEXT NOT NULL,
  batch INTEGER,
  batch_position INTEGER,
  reason INTEGER,
  book_index INTEGER,
  received_ms INTEGER NOT NULL,
  published INTEGER NOT NULL DEFAULT 0,
  arrival INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS offers_by_state ON offers(state, received_ms);
CREATE INDEX IF NOT EXISTS offers_unpublished ON offers(published) WHERE published = 0 AND state IN ('accepted', 'refused');
CREATE TABLE IF NOT EXISTS refusals (
  message_hash BLOB PRIMARY KEY,
  digest BLOB NOT NULL,
  reason INTEGER NOT NULL,
  received_ms INTEGER NOT NULL,
  published INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refusals_unpublished ON refusals(published) WHERE published = 0;
CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY, nonce INTEGER NOT NULL UNIQUE, state TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (hash TEXT PRIMARY KEY, batch INTEGER NOT NULL, raw TEXT NOT NULL, max_fee TEXT NOT NULL, priority_fee TEXT NOT NULL, sent_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS intervals (interval INTEGER PRIMARY KEY, state TEXT NOT NULL, messages TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

export class BridgeStore {
  private readonly db: Database.Database;

  constructor(file: string, market: { chainId: number; market: string }) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
    // Columns added since: a queue made before gets them, NULL in its rows. batch_position: a batch's order on chain
    // (NULL: those batches' arrival order). arrival: the order offers came in, also within one millisecond (before,
    // offers of one key that came in the same ms were ordered by digest).
    const columns = (this.db.prepare('PRAGMA table_info(offers)').all() as Array<{ name: string }>).map((c) => c.name);
    for (const column of ['batch_position', 'arrival'])
      if (!columns.includes(column)) this.db.exec(`ALTER TABLE offers ADD COLUMN ${column} INTEGER`);
    this.db.exec('CREATE INDEX IF NOT EXISTS offers_by_arrival ON offers(arrival)');
    const id = `${market.chainId}:${market.market.toLowerCase()}`;
    const known = this.meta('market');
    if (known === undefined) this.setMeta('market', id);
    else if (known !== id) {
      this.db.close();
      throw new BridgeStoreError(
        `${file} is the queue of market ${known}, not of ${id}: give this market its own --db (a queue never moves between markets)`,
      );
    }
  }

  close(): void {
    this.db.close();
  }

  meta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.db
      .prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value')
      .run(key, value);
  }

  has(digest: Uint8Array): boolean {
    return this.db.prepare('SELECT 1 FROM offers WHERE digest = ?').get(digest) !== undefined;
  }

  /** Queues a checked offer; false when its digest is already known (a duplicate). */
  queue(offer: QueuedOffer, nowMs = Date.now()): boolean {
    return (
      this.db
        .prepare(
          "INSERT OR IGNORE INTO offers (digest, message, interval, state, received_ms, arrival) VALUES (?, ?, ?, 'queued', ?, (SELECT coalesce(max(arrival), 0) + 1 FROM offers))",
        )
        .run(offer.digest, offer.message, offer.interval, nowMs).changes === 1
    );
  }

  /**
   * Records a message the bridge refused itself (its receipt is owed), keyed by the hash of the whole message:
   * a forged signature over someone's offer bytes must not make the genuine offer a duplicate. False when this
   * very message was refused before.
   */
  refuse(messageHash: Uint8Array, digest: Uint8Array, reason: number, nowMs = Date.now()): boolean {
    return (
      this.db
        .prepare('INSERT OR IGNORE INTO refusals (message_hash, digest, reason, received_ms) VALUES (?, ?, ?, ?)')
        .run(messageHash, digest, reason, nowMs).changes === 1
    );
  }

  /** Owes the receipt of an offer again if its outcome is known (a duplicate came); false while it is pending. */
  republishOffer(digest: Uint8Array): boolean {
    return (
      this.db
        .prepare("UPDATE offers SET published = 0 WHERE digest = ? AND state IN ('accepted', 'refused')")
        .run(digest).changes === 1
    );
  }

  /** Owes the receipt of a refused message again (the same message came again). */
  republishRefusal(messageHash: Uint8Array): boolean {
    return this.db.prepare('UPDATE refusals SET published = 0 WHERE message_hash = ?').run(messageHash).changes === 1;
  }

  /**
   * Every queued offer, oldest first: the order they came in, which is not the order they go on chain in
   * (batch-order.ts chooses that; through the mixnet arrival order points back along the packets' paths).
   */
  queued(): QueuedOffer[] {
    return (
      this.db
        .prepare(
          "SELECT digest, message, interval FROM offers WHERE state = 'queued' ORDER BY received_ms, arrival, digest",
        )
        .all() as Array<{ digest: Buffer; message: Buffer; interval: number }>
    ).map((r) => ({ digest: new Uint8Array(r.digest), message: new Uint8Array(r.message), interval: r.interval }));
  }

  /** The stored offer messages of these digests, in the order given. */
  messagesOf(digests: Uint8Array[]): Uint8Array[] {
    const get = this.db.prepare('SELECT message FROM offers WHERE digest = ?');
    return digests.map((d) => new Uint8Array((get.get(d) as { message: Buffer }).message));
  }

  count(state: OfferState): number {
    return (this.db.prepare('SELECT count(*) AS n FROM offers WHERE state = ?').get(state) as { n: number }).n;
  }

  /** Refuses queued offers for intervals whose gate closed (reason given); returns their digests. */
  expireQueued(isClosed: (interval: number) => boolean, reason: number): Uint8Array[] {
    const rows = this.db.prepare("SELECT digest, interval FROM offers WHERE state = 'queued'").all() as Array<{
      digest: Buffer;
      interval: number;
    }>;
    const closed = rows.filter((r) => isClosed(r.interval));
    const update = this.db.prepare(
      "UPDATE offers SET state = 'refused', reason = ? WHERE digest = ? AND state = 'queued'",
    );
    this.db.transaction(() => closed.forEach((r) => update.run(reason, r.digest)))();
    return closed.map((r) => new Uint8Array(r.digest));
  }

  /** The highest nonce any batch ever used, or -1. */
  highestNonce(): number {
    return (this.db.prepare('SELECT max(nonce) AS n FROM batches').get() as { n: number | null }).n ?? -1;
  }

  /**
   * Records a batch and its first signed transaction and moves its offers to in-flight, atomically: after
   * this returns, the transaction may be sent. `digests` in the transaction's order, which the batch keeps
   * (pendingBatches: a replacement transaction carries the same offers in the same order). Returns the batch id.
   */
  recordBatch(nonce: number, digests: Uint8Array[], attempt: Attempt): number {
    return this.db.transaction(() => {
      const id = Number(
        this.db
          .prepare("INSERT INTO batches (nonce, state, created_ms) VALUES (?, 'pending', ?)")
          .run(nonce, attempt.sentMs).lastInsertRowid,
      );
      this.insertAttempt(id, attempt);
      const move = this.db.prepare(
        "UPDATE offers SET state = 'in-flight', batch = ?, batch_position = ? WHERE digest = ? AND state = 'queued'",
      );
      for (const [position, d] of digests.entries())
        if (move.run(id, position, d).changes !== 1)
          throw new BridgeStoreError(`offer ${Buffer.from(d).toString('hex')} is not queued`);
      return id;
    })();
  }

  /** Records a replacement transaction (same nonce, higher fees) before it is sent. */
  addAttempt(batch: number, attempt: Attempt): void {
    this.insertAttempt(batch, attempt);
  }

  private insertAttempt(batch: number, a: Attempt): void {
    this.db
      .prepare('INSERT INTO attempts (hash, batch, raw, max_fee, priority_fee, sent_ms) VALUES (?, ?, ?, ?, ?, ?)')
      .run(a.hash, batch, a.raw, String(a.maxFeePerGas), String(a.maxPriorityFeePerGas), a.sentMs);
  }

  pendingBatches(): PendingBatch[] {
    const batches = this.db
      .prepare("SELECT id, nonce FROM batches WHERE state = 'pending' ORDER BY nonce")
      .all() as Array<{ id: number; nonce: number }>;
    return batches.map((b) => ({
      id: b.id,
      nonce: b.nonce,
      attempts: (
        this.db
          .prepare(
            'SELECT hash, raw, max_fee, priority_fee, sent_ms FROM attempts WHERE batch = ? ORDER BY sent_ms, rowid',
          )
          .all(b.id) as Array<{ hash: Hex; raw: Hex; max_fee: string; priority_fee: string; sent_ms: number }>
      ).map((a) => ({
        hash: a.hash,
        raw: a.raw,
        maxFeePerGas: BigInt(a.max_fee),
        maxPriorityFeePerGas: BigInt(a.priority_fee),
        sentMs: a.sent_ms,
      })),
      digests: (
        this.db
          .prepare(
            'SELECT digest FROM offers WHERE batch = ? AND state = ? ORDER BY batch_position, received_ms, arrival, digest',
          )
          .all(b.id, 'in-flight') as Array<{ digest: Buffer }>
      ).map((r) => new Uint8Array(r.digest)),
    }));
  }

  /**
   * Ends a batch: each outcome is recorded (its receipt owed), and every other in-flight offer of the batch
   * goes back to the queue (its transaction reverted, or never reached the chain).
   */
  finishBatch(batch: number, outcomes: Outcome[]): void {
    this.db.transaction(() => {
      const accept = this.db.prepare(
        "UPDATE offers SET state = 'accepted', interval = ?, book_index = ? WHERE digest = ? AND batch = ? AND state = 'in-flight'",
      );
      const refuse = this.db.prepare(
        "UPDATE offers SET state = 'refused', reason = ? WHERE digest = ? AND batch = ? AND state = 'in-flight'",
      );
      for (const o of outcomes) {
        if (o.accepted) accept.run(o.interval, o.index, o.digest, batch);
        else refuse.run(o.reason, o.digest, batch);
      }
      this.db
        .prepare(
          "UPDATE offers SET state = 'queued', batch = NULL, batch_position = NULL WHERE batch = ? AND state = 'in-flight'",
        )
        .run(batch);
      this.db.prepare("UPDATE batches SET state = 'done' WHERE id = ?").run(batch);
    })();
  }

  /** Receipts owed: outcomes of offers, then the bridge's own refusals, oldest first. */
  unpublished(limit: number): UnpublishedOutcome[] {
    const offers = (
      this.db
        .prepare(
          "SELECT digest, state, interval, book_index, reason FROM offers WHERE published = 0 AND state IN ('accepted', 'refused') ORDER BY received_ms, digest LIMIT ?",
        )
        .all(limit) as Array<{
        digest: Buffer;
        state: 'accepted' | 'refused';
        interval: number | null;
        book_index: number | null;
        reason: number | null;
      }>
    ).map((r) => ({
      key: new Uint8Array(r.digest),
      digest: new Uint8Array(r.digest),
      state: r.state,
      interval: r.interval,
      index: r.book_index,
      reason: r.reason,
    }));
    const refusals = (
      this.db
        .prepare(
          'SELECT message_hash, digest, reason FROM refusals WHERE published = 0 ORDER BY received_ms, message_hash LIMIT ?',
        )
        .all(limit - offers.length) as Array<{ message_hash: Buffer; digest: Buffer; reason: number }>
    ).map((r) => ({
      key: new Uint8Array(r.message_hash),
      digest: new Uint8Array(r.digest),
      state: 'refused' as const,
      interval: null,
      index: null,
      reason: r.reason,
      bridge: true,
    }));
    return [...offers, ...refusals];
  }

  markPublished(outcomes: UnpublishedOutcome[]): void {
    const offer = this.db.prepare('UPDATE offers SET published = 1 WHERE digest = ?');
    const refusal = this.db.prepare('UPDATE refusals SET published = 1 WHERE message_hash = ?');
    this.db.transaction(() => outcomes.forEach((o) => (o.bridge ? refusal : offer).run(o.key)))();
  }

  /** The state of an offer, for tests and logs. */
  stateOf(
    digest: Uint8Array,
  ): { state: OfferState; reason: number | null; interval: number | null; index: number | null } | undefined {
    const row = this.db
      .prepare('SELECT state, reason, interval, book_index FROM offers WHERE digest = ?')
      .get(digest) as
      | { state: OfferState; reason: number | null; interval: number | null; book_index: number | null }
      | undefined;
    return row && { state: row.state, reason: row.reason, interval: row.interval, index: row.book_index };
  }

  /**
   * Forgets what no one needs any more: offers of intervals before beforeInterval whose receipts are published
   * (an old offer sent again is then refused as gate-closed, or found on chain as Replayed: never sent twice),
   * published refusals received before beforeMs, and finished batches except the one with the highest nonce.
   */
  prune(beforeInterval: number, beforeMs: number): { offers: number; refusals: number } {
    return this.db.transaction(() => {
      const offers = this.db
        .prepare(
          "DELETE FROM offers WHERE published = 1 AND state IN ('accepted', 'refused') AND interval IS NOT NULL AND interval < ?",
        )
        .run(beforeInterval).changes;
      const refusals = this.db
        .prepare('DELETE FROM refusals WHERE published = 1 AND received_ms < ?')
        .run(beforeMs).changes;
      const keep = this.highestNonce();
      this.db
        .prepare("DELETE FROM attempts WHERE batch IN (SELECT id FROM batches WHERE state = 'done' AND nonce < ?)")
        .run(keep);
      this.db.prepare("DELETE FROM batches WHERE state = 'done' AND nonce < ?").run(keep);
      this.db
        .prepare("DELETE FROM intervals WHERE state IN ('published', 'skipped') AND interval < ?")
        .run(beforeInterval);
      return { offers, refusals };
    })();
  }

  // ---- intervals: cleared and settled on chain, then their clearing messages published ----

  /** Records an interval's clearing messages (to publish), or that it is skipped (messages undefined). */
  recordInterval(interval: number, messages: Uint8Array[] | undefined): void {
    this.db
      .prepare(
        'INSERT INTO intervals (interval, state, messages) VALUES (?, ?, ?) ON CONFLICT(interval) DO UPDATE SET state = excluded.state, messages = excluded.messages',
      )
      .run(
        interval,
        messages ? 'settled' : 'skipped',
        messages ? JSON.stringify(messages.map((m) => Buffer.from(m).toString('hex'))) : null,
      );
  }

  intervalState(interval: number): string | undefined {
    return (
      this.db.prepare('SELECT state FROM intervals WHERE interval = ?').get(interval) as { state: string } | undefined
    )?.state;
  }

  /** Intervals settled whose clearing messages are not published yet, oldest first. */
  unpublishedIntervals(): Array<{ interval: number; messages: Uint8Array[] }> {
    return (
      this.db
        .prepare("SELECT interval, messages FROM intervals WHERE state = 'settled' ORDER BY interval")
        .all() as Array<{ interval: number; messages: string }>
    ).map((r) => ({
      interval: r.interval,
      messages: (JSON.parse(r.messages) as string[]).map((h) => new Uint8Array(Buffer.from(h, 'hex'))),
    }));
  }

  markIntervalPublished(interval: number): void {
    this.db.prepare("UPDATE intervals SET state = 'published' WHERE interval = ?").run(interval);
  }
}
