// The DSO's records of asset issuance, in SQLite (docs/asset-issuance.md): each accepted asset request (which
// meter asked for which trading key, for which interval, what it asked for and what it was granted), the
// issuance batches sent to the market (their shuffled order, transaction and outcome), the state of each
// interval, the feeders' chain ids and limits, and which meters were authorized or banned on chain. Billing
// reads the same records. Tables are prefixed "assets_", so the store may share a file with the registry.
//
// Writes that the issuer must not lose (a request before its MQTT acknowledgement, a batch before it is sent,
// its transaction hash before the receipt is awaited) are each one SQLite transaction, synchronous = FULL.
import Database from 'better-sqlite3';

/**
 * approved: checked and waiting for its interval's issuance; issued: on chain (or zero: nothing to put there);
 * expired: not issued after all (reason: too-late when the gate closed before the batch reached the chain,
 * not-authorized when the meter was revoked before issuance).
 */
export type AssetRequestStatus = 'approved' | 'issued' | 'expired';

export interface AssetRequestRecord {
  meterId: string;
  interval: number;
  feeder: string;
  feederId: number;
  /** 65 bytes, uncompressed. */
  tradingKey: Uint8Array;
  /** The market's name for the key: keccak256(x || y), 0x hex. */
  keyId: `0x${string}`;
  slot: number;
  /** What the meter asked for (Wh in the interval). */
  productionWh: number;
  consumptionWh: number;
  /** What the DSO grants (the request rounded up to a grant size: docs/asset-issuance.md). */
  grantedProductionWh: number;
  grantedConsumptionWh: number;
  /** Money granted with the bid side (money units), set when the interval's batches are prepared. */
  money?: bigint;
  /** The DSO's prices in force at the interval (read from the chain when the batches are prepared). */
  consumptionPrice?: number;
  productionPrice?: number;
  /** The signed (attested) request as received: the meter's own proof of what it asked. */
  request: Uint8Array;
  status: AssetRequestStatus;
  /** Why an expired request was not issued (an ASSET_REFUSALS code). */
  reason?: string;
  batchId?: number;
  position?: number;
  receivedAtMs: number;
  issuedAtMs?: number;
  repliedAtMs?: number;
}

export type BatchStatus = 'prepared' | 'sent' | 'issued' | 'failed';

export interface IssuanceBatch {
  batchId: number;
  interval: number;
  feederId: number;
  grants: number;
  status: BatchStatus;
  txHash?: `0x${string}`;
  blockNumber?: number;
  gasUsed?: number;
  preparedAtMs: number;
  sentAtMs?: number;
  issuedAtMs?: number;
  failure?: string;
}

/** open: requests taken; closed: issuance begun (requests refused too-late); issued, expired: done. */
export type IntervalState = 'open' | 'closed' | 'issued' | 'expired';

export interface FeederRecord {
  feeder: string;
  feederId: number;
  productionWh: number;
  consumptionWh: number;
  /** When setFeederLimit with these limits reached the chain. */
  setAtMs?: number;
}

export interface ChainMeterRecord {
  meterId: string;
  meterHash: `0x${string}`;
  authorizedAtMs?: number;
  bannedAtMs?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS assets_requests (
  meter_id TEXT NOT NULL,
  interval INTEGER NOT NULL,
  feeder TEXT NOT NULL,
  feeder_id INTEGER NOT NULL,
  trading_key BLOB NOT NULL,
  key_id TEXT NOT NULL,
  slot INTEGER NOT NULL,
  production_wh INTEGER NOT NULL,
  consumption_wh INTEGER NOT NULL,
  granted_production_wh INTEGER NOT NULL,
  granted_consumption_wh INTEGER NOT NULL,
  money TEXT,
  consumption_price INTEGER,
  production_price INTEGER,
  request BLOB NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('approved', 'issued', 'expired')),
  reason TEXT,
  batch_id INTEGER,
  position INTEGER,
  received_at_ms INTEGER NOT NULL,
  issued_at_ms INTEGER,
  replied_at_ms INTEGER,
  PRIMARY KEY (meter_id, interval)
);
CREATE INDEX IF NOT EXISTS assets_requests_by_interval ON assets_requests (interval, feeder_id);
CREATE INDEX IF NOT EXISTS assets_requests_by_key ON assets_requests (key_id);
CREATE TABLE IF NOT EXISTS assets_refusals (
  meter_id TEXT NOT NULL,
  interval INTEGER NOT NULL,
  reason TEXT NOT NULL,
  detail TEXT NOT NULL,
  received_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS assets_batches (
  batch_id INTEGER PRIMARY KEY,
  interval INTEGER NOT NULL,
  feeder_id INTEGER NOT NULL,
  grants INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('prepared', 'sent', 'issued', 'failed')),
  tx_hash TEXT,
  block_number INTEGER,
  gas_used INTEGER,
  prepared_at_ms INTEGER NOT NULL,
  sent_at_ms INTEGER,
  issued_at_ms INTEGER,
  failure TEXT
);
CREATE TABLE IF NOT EXISTS assets_intervals (
  interval INTEGER PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('closed', 'issued', 'expired')),
  closed_at_ms INTEGER NOT NULL,
  done_at_ms INTEGER
);
CREATE TABLE IF NOT EXISTS assets_feeders (
  feeder TEXT PRIMARY KEY,
  feeder_id INTEGER NOT NULL UNIQUE,
  production_wh INTEGER NOT NULL,
  consumption_wh INTEGER NOT NULL,
  set_at_ms INTEGER
);
CREATE TABLE IF NOT EXISTS assets_chain_meters (
  meter_id TEXT PRIMARY KEY,
  meter_hash TEXT NOT NULL,
  authorized_at_ms INTEGER,
  banned_at_ms INTEGER
);
`;

interface RequestRow {
  meter_id: string;
  interval: number;
  feeder: string;
  feeder_id: number;
  trading_key: Buffer;
  key_id: `0x${string}`;
  slot: number;
  production_wh: number;
  consumption_wh: number;
  granted_production_wh: number;
  granted_consumption_wh: number;
  money: string | null;
  consumption_price: number | null;
  production_price: number | null;
  request: Buffer;
  status: AssetRequestStatus;
  reason: string | null;
  batch_id: number | null;
  position: number | null;
  received_at_ms: number;
  issued_at_ms: number | null;
  replied_at_ms: number | null;
}

interface BatchRow {
  batch_id: number;
  interval: number;
  feeder_id: number;
  grants: number;
  status: BatchStatus;
  tx_hash: `0x${string}` | null;
  block_number: number | null;
  gas_used: number | null;
  prepared_at_ms: number;
  sent_at_ms: number | null;
  issued_at_ms: number | null;
  failure: string | null;
}

function requestFromRow(row: RequestRow): AssetRequestRecord {
  const record: AssetRequestRecord = {
    meterId: row.meter_id,
    interval: row.interval,
    feeder: row.feeder,
    feederId: row.feeder_id,
    tradingKey: new Uint8Array(row.trading_key),
    keyId: row.key_id,
    slot: row.slot,
    productionWh: row.production_wh,
    consumptionWh: row.consumption_wh,
    grantedProductionWh: row.granted_production_wh,
    grantedConsumptionWh: row.granted_consumption_wh,
    request: new Uint8Array(row.request),
    status: row.status,
    receivedAtMs: row.received_at_ms,
  };
  if (row.money !== null) record.money = BigInt(row.money);
  if (row.consumption_price !== null) record.consumptionPrice = row.consumption_price;
  if (row.production_price !== null) record.productionPrice = row.production_price;
  if (row.reason !== null) record.reason = row.reason;
  if (row.batch_id !== null) record.batchId = row.batch_id;
  if (row.position !== null) record.position = row.position;
  if (row.issued_at_ms !== null) record.issuedAtMs = row.issued_at_ms;
  if (row.replied_at_ms !== null) record.repliedAtMs = row.replied_at_ms;
  return record;
}

function batchFromRow(row: BatchRow): IssuanceBatch {
  const batch: IssuanceBatch = {
    batchId: row.batch_id,
    interval: row.interval,
    feederId: row.feeder_id,
    grants: row.grants,
    status: row.status,
    preparedAtMs: row.prepared_at_ms,
  };
  if (row.tx_hash !== null) batch.txHash = row.tx_hash;
  if (row.block_number !== null) batch.blockNumber = row.block_number;
  if (row.gas_used !== null) batch.gasUsed = row.gas_used;
  if (row.sent_at_ms !== null) batch.sentAtMs = row.sent_at_ms;
  if (row.issued_at_ms !== null) batch.issuedAtMs = row.issued_at_ms;
  if (row.failure !== null) batch.failure = row.failure;
  return batch;
}

export type NewAssetRequest = Omit<
  AssetRequestRecord,
  | 'status'
  | 'reason'
  | 'money'
  | 'consumptionPrice'
  | 'productionPrice'
  | 'batchId'
  | 'position'
  | 'issuedAtMs'
  | 'repliedAtMs'
>;

export class AssetStore {
  readonly db: Database.Database;
  private readonly ownsDatabase: boolean;

  /** Opens (creating if needed) the database at path, or uses an open handle. */
  constructor(database: string | Database.Database) {
    this.ownsDatabase = typeof database === 'string';
    if (typeof database === 'string') {
      this.db = new Database(database);
      if (database !== ':memory:') this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
    } else {
      this.db = database;
    }
    this.db.exec(SCHEMA);
  }

  // --- requests --------------------------------------------------------------------------------------

  request(meterId: string, interval: number): AssetRequestRecord | undefined {
    const row = this.db
      .prepare('SELECT * FROM assets_requests WHERE meter_id = ? AND interval = ?')
      .get(meterId, interval) as RequestRow | undefined;
    return row && requestFromRow(row);
  }

  /** Stores an accepted request (status approved). Throws if (meter, interval) is taken. */
  insertRequest(request: NewAssetRequest): void {
    this.db
      .prepare(`INSERT INTO assets_requests (meter_id, interval, feeder, feeder_id, trading_key, key_id, slot, production_wh, consumption_wh,
        granted_production_wh, granted_consumption_wh, request, status, received_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'approved', ?)`)
      .run(
        request.meterId,
        request.interval,
        request.feeder,
        request.feederId,
        request.tradingKey,
        request.keyId,
        request.slot,
        request.productionWh,
        request.consumptionWh,
        request.grantedProductionWh,
        request.grantedConsumptionWh,
        request.request,
        request.receivedAtMs,
      );
  }

  /** Every request of an interval (all feeders), by meter id. */
  requestsOf(interval: number): AssetRequestRecord[] {
    return (
      this.db
        .prepare('SELECT * FROM assets_requests WHERE interval = ? ORDER BY meter_id')
        .all(interval) as RequestRow[]
    ).map(requestFromRow);
  }

  /** A meter's requests over [from, to], oldest first. */
  requestsOfMeter(meterId: string, fromInterval = 0, toInterval = Number.MAX_SAFE_INTEGER): AssetRequestRecord[] {
    return (
      this.db
        .prepare('SELECT * FROM assets_requests WHERE meter_id = ? AND interval BETWEEN ? AND ? ORDER BY interval')
        .all(meterId, fromInterval, toInterval) as RequestRow[]
    ).map(requestFromRow);
  }

  /** Requests in a batch, in the batch's (shuffled) order. */
  requestsOfBatch(batchId: number): AssetRequestRecord[] {
    return (
      this.db.prepare('SELECT * FROM assets_requests WHERE batch_id = ? ORDER BY position').all(batchId) as RequestRow[]
    ).map(requestFromRow);
  }

  /** The feeder's total of approved and issued grants for an interval (what the feeder limit bounds). */
  feederTotals(feederId: number, interval: number): { productionWh: number; consumptionWh: number } {
    const row = this.db
      .prepare(`SELECT COALESCE(SUM(granted_production_wh), 0) AS p, COALESCE(SUM(granted_consumption_wh), 0) AS c FROM assets_requests
        WHERE interval = ? AND feeder_id = ? AND status IN ('approved', 'issued')`)
      .get(interval, feederId) as { p: number; c: number };
    return { productionWh: row.p, consumptionWh: row.c };
  }

  /** Intervals that have approved requests and are not done, ascending. */
  pendingIntervals(): number[] {
    return (
      this.db
        .prepare(`SELECT DISTINCT interval FROM assets_requests WHERE status = 'approved' ORDER BY interval`)
        .all() as Array<{ interval: number }>
    ).map((r) => r.interval);
  }

  /** Requests whose outcome is decided (issued or expired) but whose reply has not been acknowledged by the broker. */
  unrepliedRequests(): AssetRequestRecord[] {
    return (
      this.db
        .prepare(
          `SELECT * FROM assets_requests WHERE status IN ('issued', 'expired') AND replied_at_ms IS NULL ORDER BY interval, meter_id`,
        )
        .all() as RequestRow[]
    ).map(requestFromRow);
  }

  markReplied(meterId: string, interval: number, nowMs: number): void {
    this.db
      .prepare(
        'UPDATE assets_requests SET replied_at_ms = ? WHERE meter_id = ? AND interval = ? AND replied_at_ms IS NULL',
      )
      .run(nowMs, meterId, interval);
  }

  recordRefusal(meterId: string, interval: number, reason: string, detail: string, nowMs: number): void {
    this.db
      .prepare(
        'INSERT INTO assets_refusals (meter_id, interval, reason, detail, received_at_ms) VALUES (?, ?, ?, ?, ?)',
      )
      .run(meterId, interval, reason, detail, nowMs);
  }

  refusals(
    meterId?: string,
  ): Array<{ meterId: string; interval: number; reason: string; detail: string; receivedAtMs: number }> {
    const rows = (
      meterId === undefined
        ? this.db.prepare('SELECT * FROM assets_refusals ORDER BY rowid').all()
        : this.db.prepare('SELECT * FROM assets_refusals WHERE meter_id = ? ORDER BY rowid').all(meterId)
    ) as Array<{ meter_id: string; interval: number; reason: string; detail: string; received_at_ms: number }>;
    return rows.map((r) => ({
      meterId: r.meter_id,
      interval: r.interval,
      reason: r.reason,
      detail: r.detail,
      receivedAtMs: r.received_at_ms,
    }));
  }

  /** The meters' trading keys this DSO issued to (or approved), for a ban. */
  keyIdsOfMeter(meterId: string): `0x${string}`[] {
    return (
      this.db.prepare('SELECT DISTINCT key_id FROM assets_requests WHERE meter_id = ?').all(meterId) as Array<{
        key_id: `0x${string}`;
      }>
    ).map((r) => r.key_id);
  }

  /** Counts for a status line or the testbed: requests accepted, issued (zero ones too), expired, still waiting, and refusals. */
  summary(): { requested: number; issued: number; expired: number; pending: number; refused: number; batches: number } {
    const row = this.db
      .prepare(`SELECT COUNT(*) AS requested, COALESCE(SUM(status = 'issued'), 0) AS issued, COALESCE(SUM(status = 'expired'), 0) AS expired,
      COALESCE(SUM(status = 'approved'), 0) AS pending FROM assets_requests`)
      .get() as { requested: number; issued: number; expired: number; pending: number };
    const refused = (this.db.prepare('SELECT COUNT(*) AS n FROM assets_refusals').get() as { n: number }).n;
    const batches = (
      this.db.prepare(`SELECT COUNT(*) AS n FROM assets_batches WHERE status = 'issued'`).get() as { n: number }
    ).n;
    return { ...row, refused, batches };
  }

  // --- intervals -------------------------------------------------------------------------------------

  intervalState(interval: number): IntervalState {
    const row = this.db.prepare('SELECT state FROM assets_intervals WHERE interval = ?').get(interval) as
      | { state: IntervalState }
      | undefined;
    return row?.state ?? 'open';
  }

  /** Stops taking requests for the interval (idempotent). */
  closeInterval(interval: number, nowMs: number): void {
    this.db
      .prepare(
        `INSERT INTO assets_intervals (interval, state, closed_at_ms) VALUES (?, 'closed', ?) ON CONFLICT (interval) DO NOTHING`,
      )
      .run(interval, nowMs);
  }

  /**
   * Prepares an interval's batches once (a second call finds them): the approved non-zero requests of each
   * feeder in the order `shuffle` gives, cut into batches of at most maxGrants, with the money of each grant.
   * Zero requests join no batch. Returns the interval's batches.
   */
  prepareBatches(
    interval: number,
    maxGrants: number,
    shuffle: <T>(items: T[]) => T[],
    pricing: (r: AssetRequestRecord) => { money: bigint; consumptionPrice: number; productionPrice: number },
    nowMs: number,
  ): IssuanceBatch[] {
    return this.db.transaction(() => {
      const unbatched = (
        this.db
          .prepare(`SELECT * FROM assets_requests WHERE interval = ? AND status = 'approved' AND batch_id IS NULL
        AND (granted_production_wh > 0 OR granted_consumption_wh > 0) ORDER BY feeder_id, meter_id`)
          .all(interval) as RequestRow[]
      ).map(requestFromRow);
      const byFeeder = new Map<number, AssetRequestRecord[]>();
      for (const r of unbatched) byFeeder.set(r.feederId, [...(byFeeder.get(r.feederId) ?? []), r]);
      const insertBatch = this.db.prepare(
        `INSERT INTO assets_batches (interval, feeder_id, grants, status, prepared_at_ms) VALUES (?, ?, ?, 'prepared', ?)`,
      );
      const assign = this.db.prepare(
        'UPDATE assets_requests SET batch_id = ?, position = ?, money = ?, consumption_price = ?, production_price = ? WHERE meter_id = ? AND interval = ?',
      );
      for (const [feederId, requests] of byFeeder) {
        const order = shuffle(requests);
        for (let start = 0; start < order.length; start += maxGrants) {
          const chunk = order.slice(start, start + maxGrants);
          const batchId = Number(insertBatch.run(interval, feederId, chunk.length, nowMs).lastInsertRowid);
          chunk.forEach((r, position) => {
            const priced = pricing(r);
            assign.run(
              batchId,
              position,
              priced.money.toString(),
              priced.consumptionPrice,
              priced.productionPrice,
              r.meterId,
              r.interval,
            );
          });
        }
      }
      // Zero requests get the prices too, so a statement can show the outside option for every interval.
      const zero = (
        this.db
          .prepare(
            `SELECT * FROM assets_requests WHERE interval = ? AND status = 'approved' AND consumption_price IS NULL`,
          )
          .all(interval) as RequestRow[]
      ).map(requestFromRow);
      const price = this.db.prepare(
        'UPDATE assets_requests SET money = ?, consumption_price = ?, production_price = ? WHERE meter_id = ? AND interval = ?',
      );
      for (const r of zero) {
        const priced = pricing(r);
        price.run(priced.money.toString(), priced.consumptionPrice, priced.productionPrice, r.meterId, r.interval);
      }
      return this.batchesOf(interval);
    })();
  }

  batchesOf(interval: number): IssuanceBatch[] {
    return (
      this.db.prepare('SELECT * FROM assets_batches WHERE interval = ? ORDER BY batch_id').all(interval) as BatchRow[]
    ).map(batchFromRow);
  }

  batches(): IssuanceBatch[] {
    return (this.db.prepare('SELECT * FROM assets_batches ORDER BY batch_id').all() as BatchRow[]).map(batchFromRow);
  }

  /** Records the transaction a batch was sent in, before its receipt is awaited. */
  markBatchSent(batchId: number, txHash: `0x${string}`, nowMs: number): void {
    this.db
      .prepare(`UPDATE assets_batches SET status = 'sent', tx_hash = ?, sent_at_ms = ? WHERE batch_id = ?`)
      .run(txHash, nowMs, batchId);
  }

  /** A batch found on chain (by its receipt or by reconciling with AssetIssued events): its requests are issued. */
  markBatchIssued(
    batchId: number,
    chain: { txHash: `0x${string}`; blockNumber: number; gasUsed?: number },
    nowMs: number,
  ): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          `UPDATE assets_batches SET status = 'issued', tx_hash = ?, block_number = ?, gas_used = ?, issued_at_ms = ? WHERE batch_id = ?`,
        )
        .run(chain.txHash, chain.blockNumber, chain.gasUsed ?? null, nowMs, batchId);
      this.db
        .prepare(
          `UPDATE assets_requests SET status = 'issued', issued_at_ms = ? WHERE batch_id = ? AND status = 'approved'`,
        )
        .run(nowMs, batchId);
    })();
  }

  /** A batch that will never reach the chain (its gate closed): its requests expire. */
  markBatchFailed(batchId: number, failure: string, nowMs: number): void {
    this.db.transaction(() => {
      this.db
        .prepare(`UPDATE assets_batches SET status = 'failed', failure = ? WHERE batch_id = ?`)
        .run(failure, batchId);
      this.db
        .prepare(
          `UPDATE assets_requests SET status = 'expired', reason = 'too-late' WHERE batch_id = ? AND status = 'approved'`,
        )
        .run(batchId);
    })();
  }

  /**
   * A request that will not be issued (its meter was revoked): expired with reason, and taken out of its
   * batch if it was in one (a batch left empty is deleted).
   */
  expireRequest(meterId: string, interval: number, reason: string): void {
    this.db.transaction(() => {
      const row = this.db
        .prepare(`SELECT batch_id FROM assets_requests WHERE meter_id = ? AND interval = ? AND status = 'approved'`)
        .get(meterId, interval) as { batch_id: number | null } | undefined;
      if (!row) return;
      this.db
        .prepare(
          `UPDATE assets_requests SET status = 'expired', reason = ?, batch_id = NULL, position = NULL WHERE meter_id = ? AND interval = ?`,
        )
        .run(reason, meterId, interval);
      if (row.batch_id === null) return;
      this.db.prepare('UPDATE assets_batches SET grants = grants - 1 WHERE batch_id = ?').run(row.batch_id);
      this.db.prepare('DELETE FROM assets_batches WHERE batch_id = ? AND grants = 0').run(row.batch_id);
    })();
  }

  /** Back to prepared (a sent transaction the node never mined, or one that reverted): it will be sent again. */
  markBatchUnsent(batchId: number, failure: string): void {
    this.db
      .prepare(
        `UPDATE assets_batches SET status = 'prepared', tx_hash = NULL, sent_at_ms = NULL, failure = ? WHERE batch_id = ?`,
      )
      .run(failure, batchId);
  }

  /**
   * Ends an interval once every batch is issued or failed: the approved zero requests of each feeder share
   * its fate (issued, nothing going on chain for them, or expired too-late when a batch of the feeder failed,
   * so an answer does not tell a zero request from another), and the interval is 'issued' or, when any batch
   * failed, 'expired'.
   */
  finishInterval(interval: number, nowMs: number): IntervalState {
    return this.db.transaction(() => {
      const batches = this.batchesOf(interval);
      const failedFeeders = new Set(batches.filter((b) => b.status === 'failed').map((b) => b.feederId));
      const zero = this.db
        .prepare(`SELECT meter_id, feeder_id FROM assets_requests WHERE interval = ? AND status = 'approved'`)
        .all(interval) as Array<{ meter_id: string; feeder_id: number }>;
      const issue = this.db.prepare(
        `UPDATE assets_requests SET status = 'issued', issued_at_ms = ? WHERE meter_id = ? AND interval = ?`,
      );
      const expire = this.db.prepare(
        `UPDATE assets_requests SET status = 'expired', reason = 'too-late' WHERE meter_id = ? AND interval = ?`,
      );
      for (const r of zero) {
        if (failedFeeders.has(r.feeder_id)) expire.run(r.meter_id, interval);
        else issue.run(nowMs, r.meter_id, interval);
      }
      const state: IntervalState = failedFeeders.size > 0 ? 'expired' : 'issued';
      this.db
        .prepare(`INSERT INTO assets_intervals (interval, state, closed_at_ms, done_at_ms) VALUES (?, ?, ?, ?)
        ON CONFLICT (interval) DO UPDATE SET state = excluded.state, done_at_ms = excluded.done_at_ms`)
        .run(interval, state, nowMs, nowMs);
      return state;
    })();
  }

  /** Intervals closed but not finished (issuance begun, e.g. before a restart). */
  unfinishedIntervals(): number[] {
    return (
      this.db.prepare(`SELECT interval FROM assets_intervals WHERE state = 'closed' ORDER BY interval`).all() as Array<{
        interval: number;
      }>
    ).map((r) => r.interval);
  }

  // --- feeders and meters on chain --------------------------------------------------------------------

  feeder(feeder: string): FeederRecord | undefined {
    const row = this.db.prepare('SELECT * FROM assets_feeders WHERE feeder = ?').get(feeder) as
      | { feeder: string; feeder_id: number; production_wh: number; consumption_wh: number; set_at_ms: number | null }
      | undefined;
    if (!row) return undefined;
    const record: FeederRecord = {
      feeder: row.feeder,
      feederId: row.feeder_id,
      productionWh: row.production_wh,
      consumptionWh: row.consumption_wh,
    };
    if (row.set_at_ms !== null) record.setAtMs = row.set_at_ms;
    return record;
  }

  feederById(feederId: number): FeederRecord | undefined {
    const row = this.db.prepare('SELECT feeder FROM assets_feeders WHERE feeder_id = ?').get(feederId) as
      | { feeder: string }
      | undefined;
    return row && this.feeder(row.feeder);
  }

  /** Records a feeder's limits (setAtMs unset until they are on chain); a change of limits clears setAtMs. */
  putFeeder(record: FeederRecord): void {
    this.db
      .prepare(`INSERT INTO assets_feeders (feeder, feeder_id, production_wh, consumption_wh, set_at_ms) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (feeder) DO UPDATE SET feeder_id = excluded.feeder_id, production_wh = excluded.production_wh, consumption_wh = excluded.consumption_wh,
      set_at_ms = excluded.set_at_ms`)
      .run(record.feeder, record.feederId, record.productionWh, record.consumptionWh, record.setAtMs ?? null);
  }

  chainMeter(meterId: string): ChainMeterRecord | undefined {
    const row = this.db.prepare('SELECT * FROM assets_chain_meters WHERE meter_id = ?').get(meterId) as
      | { meter_id: string; meter_hash: `0x${string}`; authorized_at_ms: number | null; banned_at_ms: number | null }
      | undefined;
    if (!row) return undefined;
    const record: ChainMeterRecord = { meterId: row.meter_id, meterHash: row.meter_hash };
    if (row.authorized_at_ms !== null) record.authorizedAtMs = row.authorized_at_ms;
    if (row.banned_at_ms !== null) record.bannedAtMs = row.banned_at_ms;
    return record;
  }

  markAuthorized(meters: Array<{ meterId: string; meterHash: `0x${string}` }>, nowMs: number): void {
    const put =
      this.db.prepare(`INSERT INTO assets_chain_meters (meter_id, meter_hash, authorized_at_ms) VALUES (?, ?, ?)
      ON CONFLICT (meter_id) DO UPDATE SET meter_hash = excluded.meter_hash, authorized_at_ms = excluded.authorized_at_ms, banned_at_ms = NULL`);
    this.db.transaction(() => meters.forEach((m) => put.run(m.meterId, m.meterHash, nowMs)))();
  }

  markBanned(meterId: string, meterHash: `0x${string}`, nowMs: number): void {
    this.db
      .prepare(`INSERT INTO assets_chain_meters (meter_id, meter_hash, banned_at_ms) VALUES (?, ?, ?)
      ON CONFLICT (meter_id) DO UPDATE SET banned_at_ms = excluded.banned_at_ms`)
      .run(meterId, meterHash, nowMs);
  }

  close(): void {
    if (this.ownsDatabase) this.db.close();
  }
}
