// DSO asset issuance (issue 10 item 3, docs/asset-issuance.md): the DSO takes each meter's asset request for the
// next delivery interval, checks it, records it, and at the interval's issuance time puts all approved requests
// of a feeder on the market in one shuffled `issue` batch, then answers every meter on its reply topic.
//
//   request  -- sealed envelope (ECDH with the DSO's key) -- COSE_Sign1 ALG_ATECC608_ATTESTED by the identity key
//            -- AssetRequest (certificate kind 4): meterId, tradingKey, slot, interval, productionWh, consumptionWh
//
// Checks, in order (the first failure is the answer; ASSET_REFUSALS): the envelope opens and holds an asset
// request (else nothing is answered: nothing in it can be trusted); the request names the meter of its topic
// and that meter is registered and active (not-authorized); the identity key attests the trading key in the
// named trading-ring slot (bad-attestation); a request for the same (meter, interval) was taken before: the
// same request again is answered as the first, another one is already-requested; the interval's issuance has
// not begun and its issuance time has not passed (too-late), nor is it more than lookaheadIntervals past the
// next interval (too-early); production and consumption fit the meter's connection limits for one interval
// (above-meter-limit); the feeder's approved grants for the interval stay within its limit (above-feeder-limit).
//
// Crash safety: a request is stored before its MQTT message is acknowledged; an interval's batches (with
// their shuffled order) are stored before the first is sent, a batch's transaction hash before its receipt
// is awaited, and before any batch is sent (again) the chain's AssetIssued events are read for its keys, so a
// restarted DSO issues each grant exactly once. Replies go out after the interval's batches are on chain and
// are marked once the broker acknowledged them (resent after a restart otherwise).
import { createHash } from 'node:crypto';
import { BaseError, ContractFunctionRevertedError, keccak256, toHex, type Hex } from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';
import { ASSET_REFUSALS, encodeAssetReply, type AssetReply } from '../../firmware/src/protocol/asset-reply.ts';
import {
  CertificateFormatError,
  decodeAssetRequest,
  kidOf,
  openSignedCertificate,
  type AssetRequest,
  type OpenedCertificate,
} from '../../firmware/src/protocol/certificate.ts';
import { ALG_ATECC608_ATTESTED } from '../../firmware/src/protocol/cose.ts';
import { decodeEnvelope, openEnvelope, SealedEnvelopeError } from '../../firmware/src/protocol/sealed-reading.ts';
import { assetReplyTopic } from '../../firmware/src/protocol/topics.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../crypto/node-primitives.ts';
import { cryptoShuffle } from '../crypto/shuffle.ts';
import { compileContracts } from '../ledger/compile.ts';
import { TRANSACTION_GAS_CAP } from '../ledger/ledger-client.ts';
import type { Grant, MarketClient } from '../ledger/market.ts';
import type { AssetStore, AssetRequestRecord, IssuanceBatch } from './asset-store.ts';
import { MAX_MESSAGE_PAYLOAD_BYTES } from './message-limits.ts';
import { MetricsRegistry, type Counter, type Gauge } from '../service/metrics.ts';
import { isValidP256Point, verifyAttested, type MeterRegistry } from './registry.ts';
import { ecdhSharedX } from './verifier.ts';

export type AssetRefusal =
  | 'not-authorized'
  | 'bad-attestation'
  | 'above-meter-limit'
  | 'above-feeder-limit'
  | 'too-late'
  | 'already-requested'
  | 'too-early';

export interface FeederLimitWh {
  productionWh: number;
  consumptionWh: number;
}

/** A feeder with no limit configured gets this one (Wh per interval, each direction). */
export const DEFAULT_FEEDER_LIMIT: FeederLimitWh = { productionWh: 1_000_000, consumptionWh: 1_000_000 };
/**
 * A feeder's interval is split into several transactions only above this many grants: ~45k gas per one-interval
 * grant with money (bench/asset-issuance.ts), 300 cost 13.4 M, under the 16.7 M cap with room.
 */
export const DEFAULT_MAX_GRANTS_PER_TRANSACTION = 300;
/**
 * No batch is larger: a grant with production, consumption and money to a new key costs up to ~52k gas
 * (bench/asset-issuance.ts: 44.8k on average, 360 mixed grants 16.1 M), so 300 stay under the 16.7 M cap.
 */
export const MAX_GRANTS_PER_TRANSACTION = 300;
/** A grant costs up to ~52k gas (a new key's holding and money slots, the event, Osaka's calldata floor). */
const ISSUE_GAS_PER_GRANT_BOUND = 60_000n;
/** A ban names the meter's trading keys of intervals from this many before the current one on. */
export const BAN_KEYS_BACK = 4;
/** The smallest grant size when grants are rounded (docs/asset-issuance.md). */
export const MIN_GRANT_WH = 16;

export interface IssuanceOptions {
  /** An interval is issued this fraction of an interval before its gate closure (default 0.5: mid-way through the interval before it). */
  leadFraction?: number;
  /** Requests are taken for the next interval and this many after it (default 1, for meters whose clock runs a little ahead). */
  lookaheadIntervals?: number;
  /** Feeder limits by the feeder's name in device certificates (Wh per interval); others get defaultFeederLimit. */
  feederLimits?: Record<string, FeederLimitWh>;
  defaultFeederLimit?: FeederLimitWh;
  /** Chain feeder ids by feeder name; others get feederIdOf(name). */
  feederIds?: Record<string, number>;
  /**
   * The DSO's prices (money units per Wh): when the prices in force for the next interval differ, the
   * issuer sets these from the next interval on (setPrices). Absent: prices are left as the chain has them.
   */
  prices?: { consumption: number; production: number };
  /** Round grants to powers of two ≥ MIN_GRANT_WH Wh (default true), so grant sizes single no meter out. */
  roundGrants?: boolean;
  maxGrantsPerTransaction?: number;
  /**
   * The longest wait between two looks for work, real ms (default: a twentieth of an interval, between 100 ms
   * and 5 s); the issuer also wakes just after each issuance time by the DSO's clock, whatever its speed.
   */
  tickMs?: number;
  /** The DSO's clock, ms since the epoch (default Date.now). */
  now?: () => number;
  /** One JSON object per line. Default: stderr. */
  log?: (line: string) => void;
}

export interface AssetIssuerOptions extends IssuanceOptions {
  registry: MeterRegistry;
  store: AssetStore;
  market: MarketClient;
  /** The market's DSO account (the deploying account). */
  dso: PrivateKeyAccount;
  /** The DSO's 32-byte P-256 key that requests are sealed to. */
  dsoPrivateKey: Uint8Array;
  /** Publishes a reply with QoS 1, resolving on the broker's acknowledgement. Without it replies stay unsent. */
  publish?: (topic: string, payload: Uint8Array) => Promise<void>;
  metrics?: MetricsRegistry;
  /**
   * The DSO's other transactions (the relay directory's anchor), run first in each tick so that they never race
   * the issuer's for the DSO account's nonces. Must not throw.
   */
  chainJobs?: () => Promise<void>;
}

/** What became of one request message. charge: it counts against the meter's message budget (message-limits.ts). */
export type RequestOutcome =
  | { outcome: 'accepted'; interval: number; charge: false }
  | { outcome: 'repeat'; interval: number; charge: false }
  | { outcome: 'refused'; interval: number; reason: AssetRefusal; detail: string; charge: boolean }
  | { outcome: 'unreadable'; detail: string; charge: true };

export class AssetIssuanceError extends VeilgridError {
  constructor(message: string, cause?: unknown) {
    super('AssetIssuanceError', 'asset-issuance', message, cause);
  }
}

/**
 * The chain's uint32 id of a feeder named in device certificates: the first 4 bytes (big-endian) of SHA-256
 * of its UTF-8 name, unless the configuration names an id. Anyone can recompute it; two configured feeders
 * mapping to one id are refused when their limits are recorded.
 */
export function feederIdOf(feeder: string, configured?: Record<string, number>): number {
  const explicit = configured?.[feeder];
  if (explicit !== undefined) return explicit;
  return createHash('sha256').update(feeder, 'utf8').digest().readUInt32BE(0);
}

/** The market's name for a meter: keccak256 of its identity key's x || y (as a trading key's keyId). */
export function meterHashOf(identityKey: Uint8Array): Hex {
  return keccak256(identityKey.length === 65 ? identityKey.subarray(1) : identityKey);
}

/** keccak256(x || y) of a 65-byte uncompressed key: the market's keyId. */
export function keyIdOfPoint(publicKey: Uint8Array): Hex {
  return keccak256(publicKey.subarray(1));
}

/**
 * A grant size: 0 stays 0; otherwise the next power of two ≥ MIN_GRANT_WH, or the meter's limit when that is
 * less (limits are a few standard connection sizes, so they are common sizes too). Never less than asked.
 */
export function roundedGrant(wh: number, limitWh: number): number {
  if (wh === 0) return 0;
  let up = MIN_GRANT_WH;
  while (up < wh) up *= 2;
  return Math.min(up, Math.max(limitWh, wh));
}

function revertOf(err: unknown): { name: string; args: readonly unknown[] } | undefined {
  const reverted = err instanceof BaseError ? err.walk((e) => e instanceof ContractFunctionRevertedError) : null;
  return reverted instanceof ContractFunctionRevertedError && reverted.data
    ? { name: reverted.data.errorName, args: reverted.data.args ?? [] }
    : undefined;
}

function revertName(err: unknown): string | undefined {
  return revertOf(err)?.name;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

export class AssetIssuer {
  readonly store: AssetStore;
  private readonly registry: MeterRegistry;
  private readonly market: MarketClient;
  private readonly abi = compileContracts().Market.abi;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly leadFraction: number;
  private readonly lookahead: number;
  private readonly roundGrants: boolean;
  private readonly maxGrants: number;
  private readonly tickMs: number;
  private readonly requests: Counter;
  private readonly grantsIssued: Counter;
  private readonly issuanceLag: Gauge;
  private readonly silentMeters: Gauge;
  private timer: NodeJS.Timeout | undefined;
  /** The last interval whose prices were compared with the configuration. */
  private pricesCheckedFor: number | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  private stopping = false;
  /** The last 100 batches sent by this process, for tests and the bench: interval, feeder, order of key ids, gas. */
  readonly sent: Array<{ interval: number; feederId: number; keyIds: Hex[]; txHash: Hex; gasUsed?: number }> = [];

  constructor(private readonly options: AssetIssuerOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.market = options.market;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? ((line) => process.stderr.write(line + '\n'));
    this.leadFraction = options.leadFraction ?? 0.5;
    if (!(this.leadFraction > 0 && this.leadFraction < 1))
      throw new AssetIssuanceError(`leadFraction must be between 0 and 1 (exclusive), got ${options.leadFraction}`);
    this.lookahead = options.lookaheadIntervals ?? 1;
    this.roundGrants = options.roundGrants ?? true;
    this.maxGrants = options.maxGrantsPerTransaction ?? DEFAULT_MAX_GRANTS_PER_TRANSACTION;
    if (!Number.isInteger(this.maxGrants) || this.maxGrants < 1 || this.maxGrants > MAX_GRANTS_PER_TRANSACTION) {
      throw new AssetIssuanceError(
        `maxGrantsPerTransaction must be a whole number from 1 to ${MAX_GRANTS_PER_TRANSACTION} (a larger batch can pass the per-transaction gas cap), got ${options.maxGrantsPerTransaction}`,
      );
    }
    const intervalMs = this.market.deployment.intervalSeconds * 1000;
    this.tickMs = options.tickMs ?? Math.min(5000, Math.max(100, Math.floor(intervalMs / 20)));
    const metrics = options.metrics ?? new MetricsRegistry();
    this.requests = metrics.counter(
      'veilgrid_dso_asset_requests_total',
      'Asset requests by outcome: accepted, repeat, unreadable, or the refusal reason.',
      ['outcome'],
    );
    for (const outcome of ['accepted', 'repeat', 'unreadable', ...ASSET_REFUSALS]) this.requests.inc({ outcome }, 0);
    this.grantsIssued = metrics.counter(
      'veilgrid_dso_asset_grants_issued_total',
      'Non-zero grants put on chain by this DSO process.',
    );
    metrics.gauge(
      'veilgrid_dso_asset_requests_pending',
      "Accepted asset requests waiting for their interval's issuance.",
      [],
      (gauge) => {
        if (!this.closed) gauge.set(this.store.summary().pending);
      },
    );
    this.silentMeters = metrics.gauge(
      'veilgrid_dso_asset_requests_silent_meters',
      'For the last interval issued: active meters that sent no asset request (every meter asks every interval).',
    );
    this.issuanceLag = metrics.gauge(
      'veilgrid_dso_asset_issuance_lag_seconds',
      "For the last interval issued: from its issuance time to its last batch on chain, by the DSO's clock.",
    );
  }

  private emit(level: 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown> = {}): void {
    this.log(JSON.stringify({ time: new Date().toISOString(), level, component: 'asset-issuance', event, ...fields }));
  }

  // --- time ------------------------------------------------------------------------------------------

  get intervalSeconds(): number {
    return this.market.deployment.intervalSeconds;
  }

  /** The market interval running at nowMs. */
  intervalAt(nowMs: number): number {
    const { genesisTime, intervalSeconds } = this.market.deployment;
    return Math.floor((nowMs / 1000 - genesisTime) / intervalSeconds);
  }

  /** The gate closure of interval d (its start), ms. */
  gateClosureMs(interval: number): number {
    const { genesisTime, intervalSeconds } = this.market.deployment;
    return (genesisTime + interval * intervalSeconds) * 1000;
  }

  /** When interval d is issued: leadFraction of an interval before its gate closure, ms. */
  issueAtMs(interval: number): number {
    return this.gateClosureMs(interval) - Math.round(this.leadFraction * this.intervalSeconds * 1000);
  }

  /** The meter's limits for one interval, Wh: its connection's W times the interval's length. */
  meterLimitWh(limits: { maxImportW: number; maxExportW: number }): { productionWh: number; consumptionWh: number } {
    return {
      productionWh: Math.floor((limits.maxExportW * this.intervalSeconds) / 3600),
      consumptionWh: Math.floor((limits.maxImportW * this.intervalSeconds) / 3600),
    };
  }

  feederLimit(feeder: string): FeederLimitWh {
    return this.options.feederLimits?.[feeder] ?? this.options.defaultFeederLimit ?? DEFAULT_FEEDER_LIMIT;
  }

  // --- requests --------------------------------------------------------------------------------------

  /**
   * Handles one asset request message from topicMeterId's asset topic: checks it, stores it when accepted
   * (synchronously: the caller acknowledges the MQTT message after this returns), and sends the answer that
   * is due now (a refusal, or the outcome of a repeated request that is decided). Throws only when the
   * store fails, so the message is not acknowledged and comes again.
   */
  handleRequest(topicMeterId: string, envelope: Uint8Array): RequestOutcome {
    const nowMs = this.now();
    const result = this.check(topicMeterId, envelope, nowMs);
    if (result.outcome === 'unreadable') {
      this.requests.inc({ outcome: 'unreadable' });
      this.emit('warn', 'asset_request_unreadable', { meterId: topicMeterId, detail: result.detail });
      return result;
    }
    if (result.outcome === 'refused') {
      this.requests.inc({ outcome: result.reason });
      this.store.recordRefusal(topicMeterId, result.interval, result.reason, result.detail, nowMs);
      this.emit('warn', 'asset_request_refused', {
        meterId: topicMeterId,
        interval: result.interval,
        reason: result.reason,
        detail: result.detail,
      });
      this.reply(topicMeterId, { interval: result.interval, issued: false, reason: result.reason });
      return result;
    }
    this.requests.inc({ outcome: result.outcome });
    if (result.outcome === 'repeat') {
      const record = this.store.request(topicMeterId, result.interval)!;
      if (record.status === 'issued') this.reply(topicMeterId, { interval: record.interval, issued: true });
      else if (record.status === 'expired')
        this.reply(topicMeterId, { interval: record.interval, issued: false, reason: record.reason ?? 'too-late' });
    }
    return result;
  }

  private check(topicMeterId: string, envelope: Uint8Array, nowMs: number): RequestOutcome {
    if (envelope.length > MAX_MESSAGE_PAYLOAD_BYTES)
      return {
        outcome: 'unreadable',
        detail: `${envelope.length} bytes, above ${MAX_MESSAGE_PAYLOAD_BYTES}`,
        charge: true,
      };
    let plaintext: Uint8Array;
    try {
      const { ephemeralPublicKey } = decodeEnvelope(envelope);
      plaintext = openEnvelope(
        nodeCryptoPrimitives,
        ecdhSharedX(this.options.dsoPrivateKey, ephemeralPublicKey),
        envelope,
      );
    } catch (err) {
      if (err instanceof SealedEnvelopeError)
        return { outcome: 'unreadable', detail: `${err.reason}: ${err.message}`, charge: true };
      return {
        outcome: 'unreadable',
        detail: `the envelope's ephemeral key is not a point on P-256: ${(err as Error).message}`,
        charge: true,
      };
    }
    let opened: OpenedCertificate;
    let attested = true;
    let request: AssetRequest;
    try {
      try {
        opened = openSignedCertificate(plaintext, ALG_ATECC608_ATTESTED);
      } catch (err) {
        if (!(err instanceof CertificateFormatError)) throw err;
        opened = openSignedCertificate(plaintext); // signed (ES256) rather than attested: read it to answer bad-attestation
        attested = false;
      }
      request = decodeAssetRequest(opened.payload);
    } catch (err) {
      if (err instanceof CertificateFormatError)
        return { outcome: 'unreadable', detail: `not an asset request: ${err.message}`, charge: true };
      throw err;
    }
    const interval = request.interval;
    // Every refusal but the feeder's (another meter's request filled it) counts against the meter's message
    // budget: an honest meter is refused once an interval at most, a flood is dropped unread (message-limits.ts).
    const refuse = (reason: AssetRefusal, detail: string): RequestOutcome => ({
      outcome: 'refused',
      interval,
      reason,
      detail,
      charge: reason !== 'above-feeder-limit',
    });

    if (request.meterId !== topicMeterId)
      return refuse(
        'not-authorized',
        `the request names meter "${request.meterId}" but came on meter "${topicMeterId}"'s topic`,
      );
    // certificates by real time, as the reading verifier checks them (the DSO's clock may be a grid's virtual one)
    const chain = this.registry.checkChain(topicMeterId);
    if (!chain.ok) return refuse('not-authorized', `${chain.reason}: ${chain.detail}`);
    const meter = chain.meter;
    if (!attested)
      return refuse(
        'bad-attestation',
        `the request is signed with alg ES256, not attested by the secure element (alg ${ALG_ATECC608_ATTESTED})`,
      );
    if (!sameBytes(opened.kid, kidOf(nodeSha256, meter.identityKey)))
      return refuse(
        'bad-attestation',
        `the request is attested by key ${Buffer.from(opened.kid).toString('hex')}, not by the meter's identity key`,
      );
    if (!isValidP256Point(request.tradingKey))
      return refuse('bad-attestation', 'the trading key is not a point on P-256');
    if (!verifyAttested(opened, meter.identityKey, request.slot, request.tradingKey)) {
      return refuse(
        'bad-attestation',
        `the identity key's attestation of the trading key in slot ${request.slot} does not verify: not a key made in this meter's secure element, in that slot`,
      );
    }

    const existing = this.store.request(topicMeterId, interval);
    if (existing) {
      const same =
        sameBytes(existing.tradingKey, request.tradingKey) &&
        existing.slot === request.slot &&
        existing.productionWh === request.productionWh &&
        existing.consumptionWh === request.consumptionWh;
      if (same) return { outcome: 'repeat', interval, charge: false };
      return refuse(
        'already-requested',
        `meter "${topicMeterId}" already asked for interval ${interval} (${existing.productionWh} Wh production, ${existing.consumptionWh} Wh consumption on key ${existing.keyId})`,
      );
    }

    const next = this.intervalAt(nowMs) + 1;
    if (this.store.intervalState(interval) !== 'open')
      return refuse('too-late', `interval ${interval}'s issuance has begun`);
    if (nowMs >= this.issueAtMs(interval))
      return refuse(
        'too-late',
        `interval ${interval} is issued at ${new Date(this.issueAtMs(interval)).toISOString()}, now is ${new Date(nowMs).toISOString()}`,
      );
    if (interval > next + this.lookahead)
      return refuse('too-early', `interval ${interval} is more than ${this.lookahead} past the next interval ${next}`);

    const limit = this.meterLimitWh(meter.limits);
    if (request.productionWh > limit.productionWh || request.consumptionWh > limit.consumptionWh) {
      return refuse(
        'above-meter-limit',
        `asked ${request.productionWh} Wh production and ${request.consumptionWh} Wh consumption; the meter's limits (${meter.limits.maxExportW} W export, ${meter.limits.maxImportW} W import) allow ${limit.productionWh} and ${limit.consumptionWh} Wh in a ${this.intervalSeconds} s interval`,
      );
    }
    const grantedProductionWh = this.roundGrants
      ? roundedGrant(request.productionWh, limit.productionWh)
      : request.productionWh;
    const grantedConsumptionWh = this.roundGrants
      ? roundedGrant(request.consumptionWh, limit.consumptionWh)
      : request.consumptionWh;

    const feederId = feederIdOf(meter.feeder, this.options.feederIds);
    const feederLimit = this.feederLimit(meter.feeder);
    const totals = this.store.feederTotals(feederId, interval);
    if (
      totals.productionWh + grantedProductionWh > feederLimit.productionWh ||
      totals.consumptionWh + grantedConsumptionWh > feederLimit.consumptionWh
    ) {
      return refuse(
        'above-feeder-limit',
        `feeder "${meter.feeder}" has ${totals.productionWh} Wh production and ${totals.consumptionWh} Wh consumption approved for interval ${interval}; granting ${grantedProductionWh} and ${grantedConsumptionWh} more would pass its limits ${feederLimit.productionWh} and ${feederLimit.consumptionWh}`,
      );
    }

    this.store.insertRequest({
      meterId: topicMeterId,
      interval,
      feeder: meter.feeder,
      feederId,
      tradingKey: request.tradingKey,
      keyId: keyIdOfPoint(request.tradingKey),
      slot: request.slot,
      productionWh: request.productionWh,
      consumptionWh: request.consumptionWh,
      grantedProductionWh,
      grantedConsumptionWh,
      request: plaintext,
      receivedAtMs: nowMs,
    });
    return { outcome: 'accepted', interval, charge: false };
  }

  private reply(meterId: string, reply: AssetReply, record?: AssetRequestRecord): Promise<void> {
    const publish = this.options.publish;
    if (!publish) return Promise.resolve();
    return publish(assetReplyTopic(meterId), encodeAssetReply(reply)).then(
      () => {
        if (record && !this.closed) this.store.markReplied(record.meterId, record.interval, this.now());
      },
      (err: Error) =>
        this.emit('warn', 'asset_reply_failed', {
          meterId,
          interval: reply.interval,
          reason: err.message,
          note: record ? 'sent again at the next tick' : 'the meter may ask again',
        }),
    );
  }

  // --- the chain -------------------------------------------------------------------------------------

  /**
   * Brings the chain up to the registry and configuration: authorizes active meters not yet authorized (by
   * identity-key hash, one transaction), bans revoked ones that were authorized (naming their trading keys and
   * open offers), and sets the limits of every feeder the registry's meters are on.
   */
  async syncChain(): Promise<void> {
    const nowMs = this.now();
    const meters = this.registry.meters();
    const feeders = new Set<string>([...meters.map((m) => m.feeder), ...Object.keys(this.options.feederLimits ?? {})]);
    for (const feeder of feeders) {
      const feederId = feederIdOf(feeder, this.options.feederIds);
      const limit = this.feederLimit(feeder);
      const known = this.store.feeder(feeder);
      if (
        known &&
        known.feederId === feederId &&
        known.productionWh === limit.productionWh &&
        known.consumptionWh === limit.consumptionWh &&
        known.setAtMs !== undefined
      )
        continue;
      const clash = this.store.feederById(feederId);
      if (clash && clash.feeder !== feeder)
        throw new AssetIssuanceError(
          `feeders "${feeder}" and "${clash.feeder}" both map to chain feeder id ${feederId}: give one of them an id in the configuration (feederIds)`,
        );
      await this.market.setFeederLimit(
        this.options.dso,
        feederId,
        BigInt(limit.productionWh),
        BigInt(limit.consumptionWh),
      );
      this.store.putFeeder({
        feeder,
        feederId,
        productionWh: limit.productionWh,
        consumptionWh: limit.consumptionWh,
        setAtMs: nowMs,
      });
      this.emit('info', 'feeder_limit_set', { feeder, feederId, ...limit });
    }
    const prices = this.options.prices;
    const next = this.intervalAt(nowMs) + 1;
    if (prices && this.pricesCheckedFor !== next) {
      const inForce = await this.pricesAt(next, false);
      if (inForce?.consumption !== prices.consumption || inForce.production !== prices.production) {
        await this.market.setPrices(this.options.dso, next, prices.consumption, prices.production);
        this.emit('info', 'prices_set', { fromInterval: next, ...prices });
      }
      this.pricesCheckedFor = next;
    }
    const toAuthorize: Array<{ meterId: string; meterHash: Hex }> = [];
    for (const meter of meters) {
      const meterHash = meterHashOf(meter.identityKey);
      const onChain = this.store.chainMeter(meter.meterId);
      if (meter.status === 'active') {
        if (
          !onChain ||
          onChain.authorizedAtMs === undefined ||
          onChain.bannedAtMs !== undefined ||
          onChain.meterHash !== meterHash
        )
          toAuthorize.push({ meterId: meter.meterId, meterHash });
      } else if (
        onChain?.bannedAtMs === undefined &&
        (onChain?.authorizedAtMs !== undefined || this.store.keyIdsOfMeter(meter.meterId).length > 0)
      ) {
        try {
          await this.ban(meter.meterId, onChain?.meterHash ?? meterHash);
        } catch (err) {
          // e.g. an offer cleared between reading it open and the ban: tried again at the next tick
          this.emit('error', 'ban_failed', {
            meterId: meter.meterId,
            reason: (err as Error).message.split('\n')[0],
            note: 'tried again at the next tick',
          });
        }
      }
    }
    for (let i = 0; i < toAuthorize.length; i += 500) {
      const chunk = toAuthorize.slice(i, i + 500);
      await this.market.authorize(
        this.options.dso,
        chunk.map((m) => m.meterHash),
      );
      this.store.markAuthorized(chunk, this.now());
      this.emit('info', 'meters_authorized', { meters: chunk.map((m) => m.meterId) });
    }
  }

  /**
   * Bans a meter on chain: its trading keys of recent and coming intervals (from BAN_KEYS_BACK intervals ago:
   * older keys hold nothing an offer could still use, and naming thousands would pass the gas cap) are revoked,
   * and their open offers of uncleared intervals withdrawn.
   */
  private async ban(meterId: string, meterHash: Hex): Promise<void> {
    const since = this.intervalAt(this.now()) - BAN_KEYS_BACK;
    const keyIds = [...new Set(this.store.requestsOfMeter(meterId, since).map((r) => r.keyId))];
    const openOffers: Hex[] = [];
    for (let i = 0; i < keyIds.length; i += 100) {
      const accepted = await this.market.ledger.publicClient.getContractEvents({
        address: this.market.deployment.market,
        abi: this.abi,
        eventName: 'OfferAccepted',
        args: { keyId: keyIds.slice(i, i + 100) },
        fromBlock: BigInt(this.market.deployment.deployedAtBlock),
      });
      for (const log of accepted as unknown as Array<{ args: { interval: number; index: number; digest: Hex } }>) {
        const { interval, index, digest } = log.args;
        const offer = (await this.read('offerAt', [interval, index])) as { state: number };
        const clearing = (await this.read('clearingOf', [interval])) as { cleared: boolean };
        if (offer.state === 1 && !clearing.cleared) openOffers.push(digest);
      }
    }
    await this.market.ban(this.options.dso, meterHash, keyIds, openOffers);
    this.store.markBanned(meterId, meterHash, this.now());
    this.emit('info', 'meter_banned', { meterId, keys: keyIds.length, offersWithdrawn: openOffers.length });
  }

  private read(functionName: string, args: unknown[]): Promise<unknown> {
    return this.market.ledger.publicClient.readContract({
      address: this.market.deployment.market,
      abi: this.abi,
      functionName,
      args,
    });
  }

  /** The DSO's prices in force at an interval (money units per Wh); zero when none are set (then no money is granted). */
  async pricesAt(interval: number): Promise<{ consumption: number; production: number }>;
  async pricesAt(interval: number, orZero: false): Promise<{ consumption: number; production: number } | undefined>;
  async pricesAt(interval: number, orZero = true): Promise<{ consumption: number; production: number } | undefined> {
    try {
      const [consumption, production] = (await this.read('pricesAt', [interval])) as [number, number];
      return { consumption: Number(consumption), production: Number(production) };
    } catch (err) {
      if (revertName(err) === 'NoPrices') {
        if (!orZero) return undefined;
        this.emit('warn', 'no_prices', { interval, note: 'no money is granted with bids for this interval' });
        return { consumption: 0, production: 0 };
      }
      throw err;
    }
  }

  /** AssetIssued events of the given keys on a feeder for interval d: keyId -> where it was issued. */
  private async issuedOnChain(
    feederId: number,
    interval: number,
    keyIds: Hex[],
  ): Promise<Map<Hex, { txHash: Hex; blockNumber: number }>> {
    const found = new Map<Hex, { txHash: Hex; blockNumber: number }>();
    for (let i = 0; i < keyIds.length; i += 200) {
      const logs = await this.market.ledger.publicClient.getContractEvents({
        address: this.market.deployment.market,
        abi: this.abi,
        eventName: 'AssetIssued',
        args: { keyId: keyIds.slice(i, i + 200), feeder: feederId },
        fromBlock: BigInt(this.market.deployment.deployedAtBlock),
      });
      for (const log of logs as unknown as Array<{
        args: { keyId: Hex; first: number };
        transactionHash: Hex;
        blockNumber: bigint;
      }>) {
        if (Number(log.args.first) === interval)
          found.set(log.args.keyId.toLowerCase() as Hex, {
            txHash: log.transactionHash,
            blockNumber: Number(log.blockNumber),
          });
      }
    }
    return found;
  }

  // --- issuance --------------------------------------------------------------------------------------

  /** One pass: the chain's regulatory state, every interval whose issuance time has come, replies not yet acknowledged. */
  tick(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.runTick().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async runTick(): Promise<void> {
    await this.options.chainJobs?.();
    try {
      await this.syncChain();
    } catch (err) {
      // issuance goes on: a feeder whose limit is not on chain yet fails alone (UnknownFeeder), and is retried
      this.emit('error', 'chain_sync_failed', {
        reason: (err as Error).message.split('\n')[0],
        note: 'tried again at the next tick',
      });
    }
    const nowMs = this.now();
    const due = new Set<number>(this.store.unfinishedIntervals());
    for (const interval of this.store.pendingIntervals()) if (nowMs >= this.issueAtMs(interval)) due.add(interval);
    for (const interval of [...due].sort((a, b) => a - b)) await this.issueInterval(interval);
    await this.sendReplies();
  }

  /**
   * Issues an interval: stops taking its requests, prepares its shuffled batches (once), reconciles each with
   * the chain and sends what is not there, then ends the interval and answers its meters.
   */
  async issueInterval(interval: number): Promise<void> {
    this.store.closeInterval(interval, this.now());
    if (this.store.intervalState(interval) !== 'closed') return;
    // A meter revoked since its request was accepted gets nothing (its keys are revoked on chain by the ban).
    for (const r of this.store.requestsOf(interval)) {
      if (r.status !== 'approved') continue;
      const chain = this.registry.checkChain(r.meterId);
      if (!chain.ok) {
        this.store.expireRequest(r.meterId, interval, 'not-authorized');
        this.emit('warn', 'asset_request_withdrawn', {
          meterId: r.meterId,
          interval,
          reason: 'not-authorized',
          detail: chain.detail,
        });
      }
    }
    const prices = await this.pricesAt(interval);
    const batches = this.store.prepareBatches(
      interval,
      this.maxGrants,
      cryptoShuffle,
      (r) => ({
        money: BigInt(r.grantedConsumptionWh) * BigInt(prices.consumption),
        consumptionPrice: prices.consumption,
        productionPrice: prices.production,
      }),
      this.now(),
    );
    let pending = 0;
    for (const batch of batches) {
      if (batch.status === 'issued' || batch.status === 'failed') continue;
      try {
        await this.settleBatch(batch);
      } catch (err) {
        pending++;
        this.emit('error', 'issuance_failed', {
          interval,
          batchId: batch.batchId,
          feederId: batch.feederId,
          reason: (err as Error).message.split('\n').slice(0, 2).join(' '),
          note: 'tried again at the next tick while the gate is open',
        });
      }
    }
    if (pending > 0) return;
    const state = this.store.finishInterval(interval, this.now());
    if (state === 'issued') this.issuanceLag.set(Math.max(0, this.now() - this.issueAtMs(interval)) / 1000);
    // Every meter asks every interval: an active meter that did not is broken, or cut off from the broker.
    const asked = new Set(this.store.requestsOf(interval).map((r) => r.meterId));
    const silent = this.registry
      .meters()
      .filter((m) => m.status === 'active' && !asked.has(m.meterId))
      .map((m) => m.meterId);
    this.silentMeters.set(silent.length);
    this.emit(state === 'issued' ? 'info' : 'error', 'interval_issued', {
      interval,
      state,
      batches: this.store.batchesOf(interval).length,
      requests: asked.size,
      silent: silent.slice(0, 20),
      silentCount: silent.length,
    });
  }

  private async settleBatch(batch: IssuanceBatch): Promise<void> {
    const client = this.market.ledger.publicClient;
    if (batch.status === 'sent' && batch.txHash) {
      const receipt = await client.getTransactionReceipt({ hash: batch.txHash }).catch(() => undefined);
      if (receipt?.status === 'success') {
        this.store.markBatchIssued(
          batch.batchId,
          { txHash: batch.txHash, blockNumber: Number(receipt.blockNumber), gasUsed: Number(receipt.gasUsed) },
          this.now(),
        );
        return;
      }
      if (!receipt) {
        const pendingTx = await client.getTransaction({ hash: batch.txHash }).catch(() => undefined);
        if (pendingTx && pendingTx.blockNumber === null) {
          const mined = await client.waitForTransactionReceipt({
            hash: batch.txHash,
            timeout: Math.max(30, this.intervalSeconds) * 1000,
          });
          if (mined.status === 'success') {
            this.store.markBatchIssued(
              batch.batchId,
              { txHash: batch.txHash, blockNumber: Number(mined.blockNumber), gasUsed: Number(mined.gasUsed) },
              this.now(),
            );
            return;
          }
        }
      }
      this.store.markBatchUnsent(
        batch.batchId,
        receipt ? `transaction ${batch.txHash} reverted` : `transaction ${batch.txHash} is unknown to the node`,
      );
    }
    const requests = this.store.requestsOfBatch(batch.batchId);
    const onChain = await this.issuedOnChain(
      batch.feederId,
      batch.interval,
      requests.map((r) => r.keyId),
    );
    const missing = requests.filter((r) => !onChain.has(r.keyId.toLowerCase() as Hex));
    if (missing.length === 0) {
      const where = onChain.values().next().value!;
      this.store.markBatchIssued(batch.batchId, where, this.now());
      this.emit('info', 'batch_found_on_chain', {
        interval: batch.interval,
        batchId: batch.batchId,
        txHash: where.txHash,
        note: 'issued before a restart: not sent again',
      });
      return;
    }
    if (missing.length < requests.length)
      this.emit('warn', 'batch_partly_on_chain', {
        interval: batch.interval,
        batchId: batch.batchId,
        onChain: requests.length - missing.length,
        sending: missing.length,
      });
    if (this.now() >= this.gateClosureMs(batch.interval)) {
      this.store.markBatchFailed(batch.batchId, 'the gate closed before the batch reached the chain', this.now());
      return;
    }
    const grants: Grant[] = missing.map((r) => ({
      keyX: toHex(r.tradingKey.subarray(1, 33)),
      keyY: toHex(r.tradingKey.subarray(33, 65)),
      production: r.grantedProductionWh,
      consumption: r.grantedConsumptionWh,
      first: r.interval,
      last: r.interval,
      money: r.money ?? 0n,
    }));
    let hash: Hex;
    try {
      // One eth_call finds a revert and its reason (gas estimation would run the batch a dozen times: seconds
      // for 300 grants); the transaction then carries a gas bound, and only the gas used is paid.
      const call = {
        address: this.market.deployment.market,
        abi: this.abi,
        functionName: 'issue',
        args: [batch.feederId, grants],
        account: this.options.dso,
      } as const;
      await client.simulateContract(call);
      const bound = 200_000n + BigInt(grants.length) * ISSUE_GAS_PER_GRANT_BOUND;
      hash = await this.market.ledger.wallet(this.options.dso).writeContract({
        ...call,
        chain: this.market.ledger.chain,
        gas: bound < TRANSACTION_GAS_CAP ? bound : TRANSACTION_GAS_CAP,
      });
    } catch (err) {
      const reverted = revertOf(err);
      if (reverted?.name === 'IssuedTooLate') {
        this.store.markBatchFailed(
          batch.batchId,
          'IssuedTooLate: the gate closed (by the chain clock) before the batch reached the chain',
          this.now(),
        );
        return;
      }
      const revokedKey = reverted?.name === 'GrantToRevokedKey' ? String(reverted.args[0]).toLowerCase() : undefined;
      const holder = revokedKey ? missing.find((r) => r.keyId.toLowerCase() === revokedKey) : undefined;
      if (holder) {
        // banned since the batch was prepared: its grant leaves the batch, the rest is sent
        this.store.expireRequest(holder.meterId, holder.interval, 'not-authorized');
        this.emit('warn', 'asset_request_withdrawn', {
          meterId: holder.meterId,
          interval: holder.interval,
          reason: 'not-authorized',
          detail: `its trading key ${holder.keyId} was revoked on chain`,
        });
        const left = this.store.batchesOf(batch.interval).find((b) => b.batchId === batch.batchId);
        if (left) await this.settleBatch(left);
        return;
      }
      throw err;
    }
    this.store.markBatchSent(batch.batchId, hash, this.now());
    // bounded: a transaction the node dropped must not stall the issuer (the next tick looks it up again)
    const receipt = await client.waitForTransactionReceipt({
      hash,
      timeout: Math.max(30, this.intervalSeconds) * 1000,
    });
    if (receipt.status !== 'success') {
      this.store.markBatchUnsent(batch.batchId, `transaction ${hash} reverted`);
      throw new AssetIssuanceError(
        `issue(${batch.feederId}, ${grants.length} grants) for interval ${batch.interval} reverted in ${hash}`,
      );
    }
    this.store.markBatchIssued(
      batch.batchId,
      { txHash: hash, blockNumber: Number(receipt.blockNumber), gasUsed: Number(receipt.gasUsed) },
      this.now(),
    );
    this.sent.push({
      interval: batch.interval,
      feederId: batch.feederId,
      keyIds: missing.map((r) => r.keyId),
      txHash: hash,
      gasUsed: Number(receipt.gasUsed),
    });
    if (this.sent.length > 100) this.sent.shift();
    this.grantsIssued.inc(undefined, grants.length);
    this.emit('info', 'batch_issued', {
      interval: batch.interval,
      feederId: batch.feederId,
      grants: grants.length,
      txHash: hash,
      gasUsed: Number(receipt.gasUsed),
    });
  }

  /** Answers every decided request whose answer the broker has not acknowledged yet. */
  async sendReplies(): Promise<void> {
    if (!this.options.publish) return;
    await Promise.all(
      this.store
        .unrepliedRequests()
        .map((r) =>
          this.reply(
            r.meterId,
            r.status === 'issued'
              ? { interval: r.interval, issued: true }
              : { interval: r.interval, issued: false, reason: r.reason ?? 'too-late' },
            r,
          ),
        ),
    );
  }

  /**
   * Ticks until closed: at least every tickMs, and just after the next issuance time. The DSO's clock may run
   * faster than real time (a grid on a virtual clock): its rate is measured between ticks, so the tick for
   * an issuance time comes when the DSO's clock reaches it, at any speed.
   */
  start(): void {
    if (this.timer || this.stopping) return;
    this.clockSample = { real: Date.now(), dso: this.now() };
    const run = () => {
      this.tick()
        .catch((err: Error) =>
          this.emit('error', 'issuance_tick_failed', { reason: err.message, note: 'tried again at the next tick' }),
        )
        .finally(() => {
          if (!this.stopping && this.timer) this.timer = setTimeout(run, this.nextTickDelayMs());
        });
    };
    this.timer = setTimeout(run, 0);
  }

  private clockSample: { real: number; dso: number } | undefined;
  /** DSO clock ms per real ms, measured between ticks (undefined until measured: ticks come every 50 ms until then). */
  private clockRate: number | undefined;

  private nextTickDelayMs(): number {
    const real = Date.now();
    const dso = this.now();
    if (this.clockSample && real - this.clockSample.real >= 20) {
      const rate = (dso - this.clockSample.dso) / (real - this.clockSample.real);
      if (Number.isFinite(rate) && rate > 0) this.clockRate = rate;
      this.clockSample = { real, dso };
    }
    if (this.clockRate === undefined) return Math.min(50, this.tickMs);
    const next = this.intervalAt(dso) + 1;
    const issueAt = dso < this.issueAtMs(next) ? this.issueAtMs(next) : this.issueAtMs(next + 1);
    return Math.max(5, Math.min(this.tickMs, Math.ceil((issueAt - dso) / this.clockRate) + 1));
  }

  /** Stops ticking and waits for a tick under way (the store stays open: its owner closes it). */
  async close(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
    this.closed = true;
  }
}
