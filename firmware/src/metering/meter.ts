// The meter's interval logic: keeps the import/export registers, commits them to the energy
// journal, and at every interval boundary hands the finished interval's Reading to `publish`
// (which must persist it, in the MQTT outbox, before returning) and then commits the boundary.
//
// Flags (firmware/src/protocol/reading.ts): the first reading after any boot carries FLAG_PARTIAL;
// after a boot that found a journal (power was lost: a meter never shuts down otherwise) the
// interval in which power went and the first interval after boot carry FLAG_POWER_LOSS; if whole
// intervals passed without the meter, the first reading after them carries FLAG_AFTER_OUTAGE.

import type { Clock } from '../platform/clock.ts';
import { type Reading, FLAG_AFTER_OUTAGE, FLAG_PARTIAL, FLAG_POWER_LOSS } from '../protocol/reading.ts';
import type { EnergyJournal, JournalState } from './energy-journal.ts';
import { intervalWh, pulsesForWh, pulsesToWh } from './registers.ts';
import type { NotedReading } from '../readings/sealed-reading-note.ts';
import { WaitingReadings } from './waiting-readings.ts';

/** Before this epoch second (2024-01-01) the clock has not been set (no SNTP yet): no interval can be named. */
export const EARLIEST_VALID_EPOCH = 1704067200;
/** How often to look again at an unset clock, and to retry a reading the outbox refused. */
const RETRY_MS = 5000;
/**
 * After a waiting reading went into the outbox, the next one is handed over this much later, in a task of
 * its own: signing and sealing one takes the SE about 1.4 s, so a whole backlog in one task held off the
 * network's events (a PINGRESP) for longer than the client waits for them, and the connection was
 * declared dead and made again, with a new SE login, while the backlog went out (bench/RESULTS.md).
 */
const NEXT_WAITING_MS = 20;
/**
 * Readings kept in RAM while the outbox refuses them (a broker outage longer than the outbox holds:
 * 120 readings, docs/energy-journal.md), packed (waiting-readings.ts): 96 take about 440 JsVars in the
 * real interpreter, against about 2,030 as objects (bench/RESULTS.md).
 */
export const DEFAULT_MAX_WAITING_READINGS = 96;
/**
 * A running meter that finds itself this many intervals late or less (its CPU was held by other work, so
 * its boundary timer ran late) closes each interval on its own; further behind, it was not really
 * running meanwhile (a clock step by SNTP, say), and it moves on as after an outage.
 */
const MAX_CATCH_UP_INTERVALS = 3;

export interface MeterOptions {
  meterId: string;
  intervalSeconds: number;
  impulsesPerKWh: number;
  commitEveryWh: number;
  clock: Clock;
  journal: EnergyJournal;
  /** Persists and sends a reading; throws when it cannot take it (e.g. the outbox is full). */
  publish: (reading: Reading) => void;
  log: (message: string) => void;
  /** Default DEFAULT_MAX_WAITING_READINGS. */
  maxWaitingReadings?: number;
}

export class Meter {
  /** The live state (what the next commit writes). */
  state: JournalState;
  private options: MeterOptions;
  private commitEveryPulses: number;
  private uncommittedImport: number;
  private uncommittedExport: number;
  /** Readings the outbox refused, oldest first; retried before any newer one. */
  private unpublished: WaitingReadings;
  /** The seq of the reading whose refusal was last logged (0: none). */
  private refusedSeq: number;
  /** A waiting reading was handed to publish in this task (the next one waits for a task of its own). */
  private handedOver: boolean;
  /** The last reading handed over was stored. */
  private lastStored: boolean;
  private timer: number | null;
  private started: boolean;
  /** True until the boot's first interval is opened (the clock may not be set yet). */
  private booting: boolean;
  private powerLost: boolean;
  private commitFailing: boolean;

  constructor(options: MeterOptions) {
    this.options = options;
    this.commitEveryPulses = pulsesForWh(options.commitEveryWh, options.impulsesPerKWh);
    this.state = {
      interval: 0,
      flags: 0,
      nextSeq: 1,
      importPulses: 0,
      exportPulses: 0,
      intervalImportPulses: 0,
      intervalExportPulses: 0,
    };
    this.uncommittedImport = 0;
    this.uncommittedExport = 0;
    this.unpublished = new WaitingReadings(options.meterId);
    this.refusedSeq = 0;
    this.handedOver = false;
    this.lastStored = false;
    this.timer = null;
    this.started = false;
    this.booting = true;
    this.powerLost = false;
    this.commitFailing = false;
  }

  /**
   * Restores the registers from the journal and starts interval timing. `inOutbox` names this
   * meter's readings still in the MQTT outbox (readings/sealed-reading-note.ts): a cut between storing
   * a reading and committing its boundary leaves the reading there, and no sequence number or interval
   * may be used twice.
   */
  start(inOutbox: NotedReading[]): void {
    if (this.started) return;
    this.started = true;
    const restored = this.options.journal.restore();
    const s = this.state;
    if (restored.state) {
      const r = restored.state;
      s.interval = r.interval;
      s.flags = r.flags;
      s.nextSeq = r.nextSeq;
      s.importPulses = r.importPulses;
      s.exportPulses = r.exportPulses;
      s.intervalImportPulses = r.intervalImportPulses;
      s.intervalExportPulses = r.intervalExportPulses;
    }
    this.powerLost = restored.filesFound;
    for (let i = 0; i < inOutbox.length; i++) {
      const reading = inOutbox[i];
      if (reading.seq >= s.nextSeq) s.nextSeq = reading.seq + 1;
      if (s.interval !== 0 && reading.interval >= s.interval) {
        // The open interval's reading was stored; the cut came before its boundary was committed.
        s.interval = reading.interval + 1;
        s.intervalImportPulses = 0;
        s.intervalExportPulses = 0;
        s.flags = 0;
      }
    }
    this.options.log(
      'meter: ' +
        (restored.state
          ? 'journal restored'
          : restored.filesFound
            ? 'journal unreadable, registers start at 0'
            : 'first start, registers at 0') +
        ' (import ' +
        pulsesToWh(s.importPulses, this.options.impulsesPerKWh) +
        ' Wh, export ' +
        pulsesToWh(s.exportPulses, this.options.impulsesPerKWh) +
        ' Wh, next reading seq ' +
        s.nextSeq +
        (restored.ignoredRecords ? ', ' + restored.ignoredRecords + ' torn record(s) skipped' : '') +
        ')',
    );
    this.tick();
  }

  stop(): void {
    if (this.timer !== null) this.options.clock.clearTimeout(this.timer);
    this.timer = null;
    this.started = false;
  }

  /**
   * One import pulse; `atSeconds` is its edge's time (the watch's interrupt timestamp). A pulse stamped
   * in a later interval than the open one closes that interval first: its boundary timer is late, and
   * the pulse belongs to the next reading.
   */
  importPulse(atSeconds?: number): void {
    this.catchUp(atSeconds);
    this.state.importPulses++;
    this.state.intervalImportPulses++;
    this.uncommittedImport++;
    if (this.uncommittedImport >= this.commitEveryPulses) this.commit();
  }

  exportPulse(atSeconds?: number): void {
    this.catchUp(atSeconds);
    this.state.exportPulses++;
    this.state.intervalExportPulses++;
    this.uncommittedExport++;
    if (this.uncommittedExport >= this.commitEveryPulses) this.commit();
  }

  /** Register totals in Wh. */
  importWh(): number {
    return pulsesToWh(this.state.importPulses, this.options.impulsesPerKWh);
  }

  exportWh(): number {
    return pulsesToWh(this.state.exportPulses, this.options.impulsesPerKWh);
  }

  /** Writes the live state to the journal; a failure is reported (once per streak) and retried with the next pulse. */
  private commit(): void {
    try {
      this.options.journal.commit(this.state);
      this.uncommittedImport = 0;
      this.uncommittedExport = 0;
      if (this.commitFailing) this.options.log('meter: journal commits work again');
      this.commitFailing = false;
    } catch (e) {
      if (!this.commitFailing) {
        this.options.log(
          'meter: journal commit failed: ' +
            ((e && (e as Error).message) || e) +
            ' -- energy since the last commit would be lost on a power cut; retrying',
        );
      }
      this.commitFailing = true;
    }
  }

  /** Handles the clock: opens the boot's first interval, closes finished ones, schedules the next look. */
  private tick(): void {
    this.timer = null;
    if (!this.started) return;
    const clock = this.options.clock;
    const now = clock.now();
    if (now < EARLIEST_VALID_EPOCH) {
      this.timer = clock.setTimeout(this.tick.bind(this), RETRY_MS);
      return;
    }
    const current = Math.floor(now / this.options.intervalSeconds);
    this.handedOver = false;
    if (this.booting) this.openFirstInterval(current);
    else if (current > this.state.interval + MAX_CATCH_UP_INTERVALS) this.closeInterval(current, 0);
    else this.catchUp(now);
    if (!this.handedOver) this.retryUnpublished();
    const nextBoundaryMs = ((this.state.interval + 1) * this.options.intervalSeconds - now) * 1000;
    const wait =
      this.unpublished.size() > 0
        ? Math.min(this.lastStored ? NEXT_WAITING_MS : RETRY_MS, nextBoundaryMs)
        : nextBoundaryMs;
    // +1 ms: a timer due exactly at the boundary must not see the clock still inside the interval.
    this.timer = clock.setTimeout(this.tick.bind(this), Math.max(1, Math.ceil(wait) + 1));
  }

  /** Closes the open interval, and any after it, up to the one `atSeconds` falls in (within MAX_CATCH_UP_INTERVALS). */
  private catchUp(atSeconds: number | undefined): void {
    if (atSeconds === undefined || this.booting || !this.started) return;
    const at = Math.floor(atSeconds / this.options.intervalSeconds);
    if (at > this.state.interval + MAX_CATCH_UP_INTERVALS) return;
    while (at > this.state.interval) this.closeInterval(this.state.interval + 1, 0);
  }

  private openFirstInterval(current: number): void {
    this.booting = false;
    const s = this.state;
    const lost = this.powerLost ? FLAG_POWER_LOSS : 0;
    if (s.interval === 0) {
      // Nothing was open (first start, or the clock was never set before the cut).
      s.interval = current;
      s.flags = FLAG_PARTIAL | lost;
    } else if (current <= s.interval) {
      // Power came back within the interval that was open (or the clock is behind it): carry on.
      s.flags = s.flags | FLAG_PARTIAL | lost;
    } else {
      // The open interval ended while the meter was off: its reading holds what was committed.
      s.flags = s.flags | lost;
      this.closeInterval(current, FLAG_PARTIAL | lost);
      return;
    }
    this.commit();
  }

  /** Publishes the open interval's reading, then commits `next` as the open interval with `nextFlags`. */
  private closeInterval(next: number, nextFlags: number): void {
    const s = this.state;
    const ipk = this.options.impulsesPerKWh;
    const reading: Reading = {
      meterId: this.options.meterId,
      interval: s.interval,
      importWh: intervalWh(s.importPulses, s.intervalImportPulses, ipk),
      exportWh: intervalWh(s.exportPulses, s.intervalExportPulses, ipk),
      importTotalWh: pulsesToWh(s.importPulses, ipk),
      exportTotalWh: pulsesToWh(s.exportPulses, ipk),
      seq: s.nextSeq,
      flags: s.flags,
    };
    s.nextSeq++;
    this.unpublished.push(reading);
    this.retryUnpublished();
    this.dropWaitingBeyondLimit();
    s.flags = nextFlags | (next > s.interval + 1 ? FLAG_AFTER_OUTAGE : 0);
    s.interval = next;
    s.intervalImportPulses = 0;
    s.intervalExportPulses = 0;
    this.commit();
  }

  /**
   * Bounds the readings waiting in RAM. Past the limit the oldest waiting one goes, never the first
   * (it is sealed and noted already): memory running out would restart the meter and lose them all.
   * Its energy stays in the register totals the next reading carries; the DSO sees its seq missing.
   */
  private dropWaitingBeyondLimit(): void {
    const max = this.options.maxWaitingReadings || DEFAULT_MAX_WAITING_READINGS;
    while (this.unpublished.size() > max) {
      const dropped = this.unpublished.removeSecond() as Reading;
      this.options.log(
        'meter: reading ' +
          dropped.seq +
          ' (interval ' +
          dropped.interval +
          ') dropped: ' +
          max +
          ' readings already wait for room in the outbox; its energy stays in the register totals',
      );
    }
  }

  /**
   * Hands the oldest waiting reading to publish (one per call: tick hands over the next one NEXT_WAITING_MS
   * later). A refusal is logged once per reading, not at every retry (a full outbox can last days).
   */
  private retryUnpublished(): void {
    if (this.unpublished.size() === 0) return;
    const reading = this.unpublished.get(0) as Reading;
    this.handedOver = true;
    this.lastStored = false;
    try {
      this.options.publish(reading);
    } catch (e) {
      if (this.refusedSeq !== reading.seq) {
        this.refusedSeq = reading.seq;
        this.options.log(
          'meter: reading ' +
            reading.seq +
            ' (interval ' +
            reading.interval +
            ') not stored: ' +
            ((e && (e as Error).message) || e) +
            '; retrying every ' +
            RETRY_MS / 1000 +
            ' s, ' +
            this.unpublished.size() +
            ' waiting',
        );
      }
      return;
    }
    this.lastStored = true;
    if (this.refusedSeq === reading.seq)
      this.options.log(
        'meter: reading ' + reading.seq + ' stored after all, ' + (this.unpublished.size() - 1) + ' more waiting',
      );
    this.unpublished.shift();
  }
}
