// The DSO service's relay directory duty (docs/relay-directory.md): it signs and publishes a new directory at
// start and whenever the set of active meters changes, and anchors each new head on the ledger when it has a
// market.
//
// - Epochs only increase, across restarts too: each one signed is recorded (the directory_heads table of the
//   DSO's database) before it is published, and the next is max(last + 1, the Unix second, the chain's last).
// - The registry is written by provisioning in another process, so it is polled; a change is published once
//   the set has stopped changing for settleMs (or maxDelayMs after the first change), so a burst of
//   registrations gives one or a few epochs, not one per meter.
// - Pages first, then the head, then the retained pages an earlier, longer directory left are cleared
//   (publishRelayDirectory), so a meter never reads a stale page.
// - The anchor transaction is sent from anchorLatest(), which the service runs inside the asset issuer's tick:
//   both send from the DSO's account, and two transactions racing for one nonce would fail one of them.
import type Database from 'better-sqlite3';
import { type Hex, toHex } from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';
import type { RelayRecord } from '../../firmware/src/protocol/relay-directory.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';
import type { MarketClient } from '../ledger/market.ts';
import type { DsoKey } from './dso-key.ts';
import type { MeterRegistry } from './registry.ts';
import {
  exitRecordOf,
  publishRelayDirectory,
  relaysOf,
  signRelayDirectory,
  type RetainedPublish,
  type SignedRelayDirectory,
} from './relay-directory.ts';
import { isValidP256Point } from './registry.ts';

export class ExitKeyError extends VeilgridError {
  constructor(message: string) {
    super('ExitKeyError', 'exit-key', message);
  }
}

/** The exit's mix public key from 128 hex digits x || y (130 with a leading 04): x || y, on the curve. */
export function parseExitKey(text: string): Uint8Array {
  const hex = text.trim().toLowerCase();
  const digits = hex.length === 130 && hex.startsWith('04') ? hex.slice(2) : hex;
  if (!/^[0-9a-f]{128}$/.test(digits))
    throw new ExitKeyError(
      `the exit key must be 128 hex digits, x || y of the bridge's mix key ('veilgrid bridge exit-key' prints it), got ${text.length} characters`,
    );
  const key = new Uint8Array(Buffer.from(digits, 'hex'));
  const point = new Uint8Array(65);
  point[0] = 4;
  point.set(key, 1);
  if (!isValidP256Point(point))
    throw new ExitKeyError("the exit key is not a point on P-256: copy it again from 'veilgrid bridge exit-key'");
  return key;
}

export interface DirectoryPublisherOptions {
  registry: MeterRegistry;
  /** With its private key: it signs the heads. */
  dsoKey: DsoKey;
  /** The exit's mix key x || y (parseExitKey); without it the heads name no exit. */
  exitKey?: Uint8Array;
  /** Where the epochs signed are recorded (the DSO's reading database). */
  db: Database.Database;
  publish: RetainedPublish;
  /**
   * Whether the service is connected to the broker now: after a reconnect the directory is published again
   * (same epoch, same bytes), since a broker that restarted without persistence has lost its retained messages.
   */
  connected?: () => boolean;
  /** The market to anchor heads on, with the DSO's account. */
  market?: { client: MarketClient; dso: PrivateKeyAccount };
  /** Called after a new head is published and waits for its anchor (the service wakes the issuer's tick). */
  anchorDue?: () => void;
  /** How often the registry is read, ms (default 1,000). */
  pollMs?: number;
  /** Quiet time after the last change before a new epoch, ms (default 2,000). */
  settleMs?: number;
  /** Longest wait after the first change of a burst, ms (default 15,000). */
  maxDelayMs?: number;
  now?: () => number;
  log?: (line: string) => void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS directory_heads (
  epoch INTEGER PRIMARY KEY,
  head_hash BLOB NOT NULL,
  relay_count INTEGER NOT NULL,
  page_count INTEGER NOT NULL,
  has_exit INTEGER NOT NULL,
  signed_at_ms INTEGER NOT NULL,
  anchored_at_ms INTEGER
);
`;

interface HeadRow {
  epoch: number;
  head_hash: Buffer;
  anchored_at_ms: number | null;
}

export class DirectoryPublisher {
  /** The directory published last by this process. */
  current: SignedRelayDirectory | undefined;
  private readonly o: DirectoryPublisherOptions;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly exit: RelayRecord | undefined;
  private timer: NodeJS.Timeout | undefined;
  private publishing: Promise<void> | undefined;
  /** The relay ids (hex, sorted, joined) of the directory published last; undefined before the first. */
  private publishedSet: string | undefined;
  private seenSet: string | undefined;
  private firstChangeMs = 0;
  private lastChangeMs = 0;
  private saidEmpty = false;
  private wasConnected = true;
  /** An epoch the chain cannot take (it holds a later one): not tried again. */
  private refusedEpoch = 0;
  private closed = false;

  constructor(options: DirectoryPublisherOptions) {
    this.o = options;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? ((line) => process.stderr.write(line + '\n'));
    this.exit = options.exitKey ? exitRecordOf(options.exitKey) : undefined;
    options.db.exec(SCHEMA);
  }

  /** Publishes the first directory now (a failure is logged and tried again), then watches the registry. */
  async start(): Promise<void> {
    if (!this.exit)
      this.emit('warn', 'directory_without_exit', {
        detail:
          "no exit key given (veilgrid dso serve --exit-key; 'veilgrid bridge exit-key' prints it): meters cannot send through the mixnet until one is",
      });
    const failed = (err: Error) =>
      this.emit('error', 'directory_publish_failed', { reason: err.message, note: 'tried again shortly' });
    await this.check(true).catch(failed);
    const poll = () => {
      this.timer = setTimeout(() => {
        this.check(false)
          .catch(failed)
          .finally(() => {
            if (!this.closed) poll();
          });
      }, this.o.pollMs ?? 1000);
    };
    poll();
  }

  /** The last epoch signed (by any run of the service), 0 before the first. */
  lastEpoch(): number {
    const row = this.o.db.prepare('SELECT MAX(epoch) AS epoch FROM directory_heads').get() as { epoch: number | null };
    return row.epoch ?? 0;
  }

  /**
   * Anchors the newest head on the market if it is not yet (a no-op without a market). Never throws: a failure
   * is logged and tried again at the next call.
   */
  async anchorLatest(): Promise<void> {
    const market = this.o.market;
    if (!market) return;
    const row = this.o.db
      .prepare('SELECT epoch, head_hash, anchored_at_ms FROM directory_heads ORDER BY epoch DESC LIMIT 1')
      .get() as HeadRow | undefined;
    if (!row || row.anchored_at_ms !== null) return;
    const headHash = toHex(new Uint8Array(row.head_hash)) as Hex;
    if (row.epoch === this.refusedEpoch) return;
    try {
      const onChain = await market.client.directoryAnchor();
      if (onChain.epoch === row.epoch && onChain.headHash.toLowerCase() === headHash.toLowerCase()) {
        // sent before a restart, recorded on chain
      } else if (onChain.epoch < row.epoch) {
        await market.client.anchorDirectory(market.dso, row.epoch, headHash);
        this.emit('info', 'directory_anchored', { epoch: row.epoch, headHash });
      } else {
        // Only a later epoch can follow: the next directory signed (at the next change) takes the chain's into account.
        this.refusedEpoch = row.epoch;
        this.emit('error', 'directory_anchor_refused', {
          epoch: row.epoch,
          chainEpoch: onChain.epoch,
          detail: 'the chain holds this or a later epoch with another head',
        });
        return;
      }
      this.o.db.prepare('UPDATE directory_heads SET anchored_at_ms = ? WHERE epoch = ?').run(this.now(), row.epoch);
    } catch (err) {
      this.emit('warn', 'directory_anchor_failed', {
        epoch: row.epoch,
        reason: (err as Error).message.split('\n')[0],
        note: 'tried again at the next tick',
      });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.publishing?.catch(() => undefined);
  }

  /** Publishes when the active set differs from the one published and has settled (or `now`). */
  private async check(now: boolean): Promise<void> {
    if (this.publishing || this.closed) return;
    if (this.o.connected && !this.o.connected()) {
      this.wasConnected = false; // nothing can be published until the collector is back
      return;
    }
    if (!this.wasConnected && this.current) {
      const current = this.current;
      this.publishing = publishRelayDirectory(this.o.publish, current).finally(() => {
        this.publishing = undefined;
      });
      await this.publishing;
      this.emit('info', 'directory_republished', { epoch: current.head.epoch, reason: 'reconnected to the broker' });
    }
    this.wasConnected = true;
    const relays = relaysOf(this.o.registry);
    const set = relays
      .map((r) => Buffer.from(r.relayId).toString('hex'))
      .sort()
      .join(',');
    const t = this.now();
    if (set !== this.seenSet) {
      if (this.seenSet === this.publishedSet) this.firstChangeMs = t;
      this.lastChangeMs = t;
      this.seenSet = set;
    }
    if (set === this.publishedSet) return;
    const settled = t - this.lastChangeMs >= (this.o.settleMs ?? 2000);
    const overdue = t - this.firstChangeMs >= (this.o.maxDelayMs ?? 15_000);
    if (!now && !settled && !overdue) return;
    if (relays.length === 0) {
      if (!this.saidEmpty) this.emit('warn', 'directory_empty', { detail: 'no active meter: no directory to publish' });
      this.saidEmpty = true;
      return;
    }
    this.saidEmpty = false;
    this.publishing = this.publishNew(relays, set).finally(() => {
      this.publishing = undefined;
    });
    await this.publishing;
  }

  private async publishNew(relays: RelayRecord[], set: string): Promise<void> {
    const last = this.o.db
      .prepare('SELECT MAX(epoch) AS epoch, MAX(page_count) AS pages FROM directory_heads')
      .get() as { epoch: number | null; pages: number | null };
    let chainEpoch = 0;
    if (this.o.market && !this.current) chainEpoch = (await this.o.market.client.directoryAnchor()).epoch;
    const epoch = Math.max((last.epoch ?? 0) + 1, chainEpoch + 1, Math.floor(this.now() / 1000));
    const directory = signRelayDirectory(this.o.dsoKey, epoch, relays, this.exit, Math.floor(this.now() / 1000));
    // Recorded before it is published: a crash after publishing must not sign this epoch again.
    this.o.db
      .prepare(
        'INSERT INTO directory_heads (epoch, head_hash, relay_count, page_count, has_exit, signed_at_ms) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(
        epoch,
        Buffer.from(directory.headHash),
        relays.length,
        directory.pages.length,
        this.exit ? 1 : 0,
        this.now(),
      );
    // Every page any earlier directory had is cleared beyond this one's (one a crash left uncleared too).
    await publishRelayDirectory(this.o.publish, directory, last.pages ?? 0);
    this.current = directory;
    this.publishedSet = set;
    this.emit('info', 'directory_published', {
      epoch,
      relays: relays.length,
      pages: directory.pages.length,
      exit: this.exit !== undefined,
    });
    this.o.anchorDue?.();
  }

  private emit(level: 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown> = {}): void {
    this.log(JSON.stringify({ time: new Date().toISOString(), level, component: 'relay-directory', event, ...fields }));
  }
}
