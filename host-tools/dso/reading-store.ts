// The DSO's store of interval readings in SQLite: one row per (meter, sequence number), so a reading
// delivered twice (QoS 1 allows it) is stored once. Also answers which readings are missing and which
// intervals the meters themselves flagged.
import Database from 'better-sqlite3';
import { FLAG_AFTER_OUTAGE, type Reading } from '../../firmware/src/protocol/reading.ts';

/**
 * stored: new reading. duplicate: the same reading was already stored (a redelivery).
 * conflict: a different reading with the same (meter, seq) was already stored; the first one is kept.
 */
export type InsertOutcome = 'stored' | 'duplicate' | 'conflict';

export interface StoredReading extends Reading {
  /** When the collector stored it, ms since the epoch. */
  receivedAtMs: number;
}

export interface FlaggedReading {
  seq: number;
  interval: number;
  /** FLAG_POWER_LOSS | FLAG_PARTIAL | FLAG_AFTER_OUTAGE bits, as the meter sent them. */
  flags: number;
  /**
   * With FLAG_AFTER_OUTAGE: the intervals between the previous stored reading and this one, which have
   * no reading because the meter was off. Absent when there are none (the outage fell inside one interval)
   * or no earlier reading is stored.
   */
  silentIntervals?: { first: number; last: number };
}

export interface MeterGaps {
  meterId: string;
  firstSeq: number;
  lastSeq: number;
  readings: number;
  /** Lost readings: sequence numbers missing between the first and the last one stored, ascending. */
  missingSeqs: number[];
  /** How many are missing; equals missingSeqs.length unless the list was cut at MAX_LISTED_MISSING. */
  missingCount: number;
  /** Readings carrying any flag, in sequence order. */
  flaggedIntervals: FlaggedReading[];
}

export interface MeterTotals {
  meterId: string;
  readings: number;
  /** Sum of the interval energies received. */
  importWh: number;
  exportWh: number;
  /** The registers in the meter's latest reading (highest seq). */
  importRegisterWh: number;
  exportRegisterWh: number;
}

export interface EnergyTotals {
  meters: MeterTotals[];
  importWh: number;
  exportWh: number;
}

export interface StoreSummary {
  meters: number;
  readings: number;
  missingReadings: number;
  flaggedReadings: number;
  importWh: number;
  exportWh: number;
}

export interface ReadingStoreOptions {
  /**
   * SQLite's synchronous setting. FULL (default): a stored reading survives a power cut of the host,
   * which the collector relies on since it acknowledges a reading once stored. NORMAL: faster; a host
   * crash may lose the last acknowledged readings (never corrupts the database).
   */
  synchronous?: 'FULL' | 'NORMAL';
}

/** Per meter, at most this many missing sequence numbers are listed (missingCount has the full count). */
export const MAX_LISTED_MISSING = 10_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS readings (
  meter_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  interval_index INTEGER NOT NULL,
  import_wh INTEGER NOT NULL,
  export_wh INTEGER NOT NULL,
  import_total_wh INTEGER NOT NULL,
  export_total_wh INTEGER NOT NULL,
  flags INTEGER NOT NULL,
  received_at_ms INTEGER NOT NULL,
  UNIQUE (meter_id, seq)
);
CREATE INDEX IF NOT EXISTS readings_by_interval ON readings (interval_index);
`;

const READING_COLUMNS = `meter_id AS meterId, interval_index AS interval, import_wh AS importWh, export_wh AS exportWh,
  import_total_wh AS importTotalWh, export_total_wh AS exportTotalWh, seq, flags, received_at_ms AS receivedAtMs`;

function sameReading(a: Reading, b: Reading): boolean {
  return (
    a.meterId === b.meterId &&
    a.seq === b.seq &&
    a.interval === b.interval &&
    a.importWh === b.importWh &&
    a.exportWh === b.exportWh &&
    a.importTotalWh === b.importTotalWh &&
    a.exportTotalWh === b.exportTotalWh &&
    a.flags === b.flags
  );
}

export class ReadingStore {
  readonly db: Database.Database;
  private readonly insertStatement: Database.Statement;
  private readonly getStatement: Database.Statement;

  /** Opens (creating if needed) the database at path, or an in-memory one for ':memory:'. */
  constructor(path: string, options: ReadingStoreOptions = {}) {
    this.db = new Database(path);
    if (path !== ':memory:') this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    this.db.exec(SCHEMA);
    this.insertStatement = this.db.prepare(`INSERT INTO readings
      (meter_id, seq, interval_index, import_wh, export_wh, import_total_wh, export_total_wh, flags, received_at_ms)
      VALUES (@meterId, @seq, @interval, @importWh, @exportWh, @importTotalWh, @exportTotalWh, @flags, @receivedAtMs)
      ON CONFLICT (meter_id, seq) DO NOTHING`);
    this.getStatement = this.db.prepare(`SELECT ${READING_COLUMNS} FROM readings WHERE meter_id = ? AND seq = ?`);
  }

  /** Stores a (validated) reading unless its (meter, seq) is already stored. */
  insert(reading: Reading, receivedAtMs = Date.now()): InsertOutcome {
    const result = this.insertStatement.run({
      meterId: reading.meterId,
      seq: reading.seq,
      interval: reading.interval,
      importWh: reading.importWh,
      exportWh: reading.exportWh,
      importTotalWh: reading.importTotalWh,
      exportTotalWh: reading.exportTotalWh,
      flags: reading.flags,
      receivedAtMs,
    });
    if (result.changes === 1) return 'stored';
    return sameReading(this.get(reading.meterId, reading.seq)!, reading) ? 'duplicate' : 'conflict';
  }

  get(meterId: string, seq: number): StoredReading | undefined {
    return this.getStatement.get(meterId, seq) as StoredReading | undefined;
  }

  /** Stored readings in (meter, seq) order, of one meter or of all. */
  readings(meterId?: string): StoredReading[] {
    if (meterId === undefined)
      return this.db.prepare(`SELECT ${READING_COLUMNS} FROM readings ORDER BY meter_id, seq`).all() as StoredReading[];
    return this.db
      .prepare(`SELECT ${READING_COLUMNS} FROM readings WHERE meter_id = ? ORDER BY seq`)
      .all(meterId) as StoredReading[];
  }

  /** Per meter (in id order): lost sequence numbers and the readings the meter flagged. */
  gaps(): MeterGaps[] {
    const out: MeterGaps[] = [];
    let current: MeterGaps | undefined;
    let previous: { seq: number; interval: number } | undefined;
    const rows = this.db
      .prepare(
        'SELECT meter_id AS meterId, seq, interval_index AS interval, flags FROM readings ORDER BY meter_id, seq',
      )
      .iterate() as IterableIterator<{ meterId: string; seq: number; interval: number; flags: number }>;
    for (const row of rows) {
      if (!current || current.meterId !== row.meterId) {
        current = {
          meterId: row.meterId,
          firstSeq: row.seq,
          lastSeq: row.seq,
          readings: 0,
          missingSeqs: [],
          missingCount: 0,
          flaggedIntervals: [],
        };
        out.push(current);
        previous = undefined;
      }
      current.readings++;
      current.lastSeq = row.seq;
      if (previous && row.seq > previous.seq + 1) {
        current.missingCount += row.seq - previous.seq - 1;
        for (let seq = previous.seq + 1; seq < row.seq && current.missingSeqs.length < MAX_LISTED_MISSING; seq++)
          current.missingSeqs.push(seq);
      }
      if (row.flags !== 0) {
        const flagged: FlaggedReading = { seq: row.seq, interval: row.interval, flags: row.flags };
        if (row.flags & FLAG_AFTER_OUTAGE && previous && row.interval > previous.interval + 1) {
          flagged.silentIntervals = { first: previous.interval + 1, last: row.interval - 1 };
        }
        current.flaggedIntervals.push(flagged);
      }
      previous = { seq: row.seq, interval: row.interval };
    }
    return out;
  }

  /** Energy received per meter (in id order) and overall. */
  totals(): EnergyTotals {
    const meters = this.db
      .prepare(
        `SELECT t.meter_id AS meterId, t.readings, t.import_wh AS importWh, t.export_wh AS exportWh,
                l.import_total_wh AS importRegisterWh, l.export_total_wh AS exportRegisterWh
         FROM (SELECT meter_id, COUNT(*) AS readings, SUM(import_wh) AS import_wh, SUM(export_wh) AS export_wh, MAX(seq) AS last_seq
               FROM readings GROUP BY meter_id) t
         JOIN readings l ON l.meter_id = t.meter_id AND l.seq = t.last_seq
         ORDER BY t.meter_id`,
      )
      .all() as MeterTotals[];
    let importWh = 0;
    let exportWh = 0;
    for (const m of meters) {
      importWh += m.importWh;
      exportWh += m.exportWh;
    }
    return { meters, importWh, exportWh };
  }

  summary(): StoreSummary {
    const totals = this.totals();
    const gaps = this.gaps();
    return {
      meters: totals.meters.length,
      readings: totals.meters.reduce((n, m) => n + m.readings, 0),
      missingReadings: gaps.reduce((n, g) => n + g.missingCount, 0),
      flaggedReadings: gaps.reduce((n, g) => n + g.flaggedIntervals.length, 0),
      importWh: totals.importWh,
      exportWh: totals.exportWh,
    };
  }

  /** How many readings are stored for intervals first..last (inclusive), all meters together. */
  countInIntervals(first: number, last: number): number {
    return (
      this.db.prepare('SELECT COUNT(*) AS n FROM readings WHERE interval_index BETWEEN ? AND ?').get(first, last) as {
        n: number;
      }
    ).n;
  }

  /** Readings and energy received for intervals first..last (inclusive), all meters together. */
  summaryInIntervals(first: number, last: number): { readings: number; importWh: number; exportWh: number } {
    return this.db
      .prepare(
        'SELECT COUNT(*) AS readings, COALESCE(SUM(import_wh), 0) AS importWh, COALESCE(SUM(export_wh), 0) AS exportWh FROM readings WHERE interval_index BETWEEN ? AND ?',
      )
      .get(first, last) as { readings: number; importWh: number; exportWh: number };
  }

  close(): void {
    this.db.close();
  }
}
