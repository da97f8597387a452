// The ledger bridge (`veilgrid bridge`, issue 10 item 5; docs/bridge.md): meters' offers from the broker to the
// market contract, the chain's answers back to every meter.
//
//   broker ──offers──▶ check (offer-check.ts) ──▶ SQLite queue ──▶ submitOffers batches ──▶ chain
//   broker ◀─receipts── OfferAccepted / OfferRejected of each batch's receipt ◀──────────────┘
//   broker ◀─clearing── after each gate closure: clear, settle until settled, Settled events
//   mixnet ──onion packets──▶ exit (mix-exit.ts: peel, replay, dummy) ──offers──▶ the same check and queue
//
// Three loops that never throw out: the MQTT client's message handler (check, store, then acknowledge), the
// chain loop (clock, revoked keys, in-flight batches, new batches, clearing, market info; a failing ledger makes
// it back off and try again) and the publish loop (receipts and clearing results owed in the store, marked
// published on PUBACK). Crash safety is the store's (bridge-store.ts) and the order of its writes.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { decodeEventLog, toHex, type Abi, type Hex, type TransactionReceipt } from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';
import { compileContracts } from '../ledger/compile.ts';
import { TRANSACTION_GAS_CAP } from '../ledger/ledger-client.ts';
import type { ClearingResult, MarketClient } from '../ledger/market.ts';
import { MetricsRegistry } from '../service/metrics.ts';
import { startServiceHttpServer, type ServiceHttpServer } from '../service/http-server.ts';
import { acknowledgeAfterHandling } from '../service/mqtt-intake.ts';
import { amountFromBigint } from './amount.ts';
import { chainOrder } from './batch-order.ts';
import { BridgeStore, type Outcome, type PendingBatch } from './bridge-store.ts';
import { checkOfferMessage, sha256 } from './offer-check.ts';
import { ensureExitKey, EXIT_KEY_FILE, type ExitKey } from './exit-key.ts';
import { MixExit } from './mix-exit.ts';
import { keyIdOf } from '../ledger/trading-key.ts';
import { TxSender, bumpedFees } from './tx-sender.ts';
import { MessageBudgets, type MessageBudget } from '../dso/message-limits.ts';
import {
  encodeClearing,
  encodeReceipts,
  reasonName,
  REASON_BRIDGE_GATE_CLOSED,
  REASON_REPLAYED,
  type Receipt,
} from '../../firmware/src/protocol/market-broadcast.ts';
import { encodeMarketInfo } from '../../firmware/src/protocol/market-info.ts';
import { mixSlotAt, SLOTS_PER_ROUND } from '../../firmware/src/protocol/mix-schedule.ts';
import {
  decodeOffer,
  OFFER_LENGTH,
  OFFER_MESSAGE_LENGTH,
  splitOfferMessage,
  type Offer,
} from '../../firmware/src/protocol/offer.ts';
import {
  CLEARING_TOPIC,
  MARKET_INFO_TOPIC,
  MIX_EXIT_TOPIC,
  OFFER_TOPIC_FILTER,
  RECEIPT_TOPIC,
  meterIdFromOfferTopic,
} from '../../firmware/src/protocol/topics.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

/** The contract takes any number of offers per transaction; about 95.6 k gas each, so 100 stays well under the cap. */
export const MAX_BATCH = 100;
/** Gas bound of a submitOffers transaction: a bound, not an estimate (only the gas used is paid). */
const BATCH_GAS_BASE = 200_000n;
const BATCH_GAS_PER_OFFER = 125_000n;
const SETTLE_GAS_BASE = 200_000n;
const SETTLE_GAS_PER_OFFER = 70_000n;
const PAYLOAD_LOG_BYTES = 32;
/** Offers of this many intervals before the last one published are kept (a day of 15-minute intervals). */
const KEEP_INTERVALS = 96;
/** The bridge's own refusals are kept this long after they arrived (duplicates of them are recognised meanwhile). */
const KEEP_REFUSALS_MS = 24 * 3600_000;

export class BridgeError extends VeilgridError {
  constructor(message: string, cause?: unknown) {
    super('BridgeError', 'bridge', message, cause);
  }
}

export interface BridgeOptions {
  market: MarketClient;
  /** The account that pays for every transaction (any funded account; trading keys never hold ether). */
  relayer: PrivateKeyAccount;
  /** The SQLite queue, created if absent; one per market. */
  db: string;
  /**
   * The mixnet's exit key (exit-key.ts). Default: ensureExitKey(EXIT_KEY_FILE in the db's folder), made there
   * on first start. Its public half is `bridge.exit` and goes to the DSO (`veilgrid dso serve --exit-key`).
   */
  exitKey?: ExitKey;
  /** The exit's bounds (docs/bridge.md, "The mixnet's exit"): mix-exit.ts's defaults. */
  mix?: { windowPackets?: number; keyBudget?: number };
  /** e.g. mqtt://127.0.0.1:1883 */
  brokerUrl: string;
  username?: string;
  password?: string;
  /** A stable id gives a persistent session (the broker keeps offers while the bridge is away). Default: the user name. */
  clientId?: string;
  /** Where /metrics and /healthz listen (default 127.0.0.1, a free port); false: no HTTP endpoint. */
  http?: { host?: string; port?: number } | false;
  /** One JSON object per line. Default: stderr. */
  log?: (line: string) => void;
  /**
   * Each meter's budget of refused and duplicate messages (default METER_MESSAGE_BUDGET, as at the DSO): past it,
   * the meter's messages are dropped unread and unanswered until it refills, so one meter cannot make the bridge
   * verify or broadcast without end. Valid new offers are never charged.
   */
  budget?: MessageBudget;
  /** Offers per submitOffers transaction, 1..MAX_BATCH (default MAX_BATCH). */
  batchSize?: number;
  /** Batches sent and not yet mined at once (default 4). */
  maxPendingBatches?: number;
  /** How often the chain loop runs, ms (default 250). */
  tickMs?: number;
  /** A transaction still pending after this long is replaced with 25 % higher fees (default 30 s). */
  replaceAfterMs?: number;
  /** Offers settled per settle transaction (default 200). */
  settleChunk?: number;
  /** Clear and settle intervals after their gate closure (default true). */
  clearing?: boolean;
  /** The first interval to clear when the queue is new (default: the chain's current interval). */
  firstInterval?: number;
  /**
   * For crash tests: the process kills itself (SIGKILL) the n-th time it reaches this point (CRASH_POINTS),
   * so a test can place a crash exactly where a random kill rarely lands.
   */
  crashAt?: { point: CrashPoint; nth: number };
}

/** Where a crash test may make the bridge die: between each write and the step that depends on it. */
export const CRASH_POINTS = [
  'offer-stored',
  'batch-recorded',
  'batch-sent',
  'batch-finished',
  'receipt-published',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export interface BridgeStats {
  /** Offer messages taken from the broker. */
  received: number;
  /** New offers queued for the chain. */
  queued: number;
  /** Offers the bridge refused itself, by reason name (malformed, bad-signature, duplicate, ...). */
  dropped: Record<string, number>;
  /** Offers on chain (including those another relayer had put there: alreadyOnChain). */
  accepted: number;
  /** Offers the contract refused, by the contract's reason name. */
  rejectedOnChain: Record<string, number>;
  /** Offers whose submission the chain answered Replayed while OfferAccepted shows them on chain: not refusals. */
  alreadyOnChain: number;
  batches: number;
  replacements: number;
  receiptsPublished: number;
  intervalsPublished: number;
  lastClearedInterval?: number;
  /** Trading keys known to be revoked on chain (KeyRevoked events read so far). */
  revokedKeys: number;
  /** Trading keys with assets issued for an interval whose gate is open (AssetIssued events read so far). */
  issuedKeys: number;
  /** Onion packets at the exit, by outcome (MIX_OUTCOMES): offer, dummy, or why dropped. */
  mix: Record<string, number>;
}

/** What became of an onion packet at the exit: the exit's drops, then the offer path's (docs/bridge.md). */
export const MIX_OUTCOMES = [
  'offer',
  'dummy',
  'bad-length',
  'bad-version',
  'window-full',
  'bad-key',
  'bad-mac',
  'bad-payload',
  'replayed',
  'not-for-the-exit',
  'unknown-type',
  'bad-offer',
  'no-asset',
  'rate-limited',
  'store-failed',
] as const;
export type MixOutcome = (typeof MIX_OUTCOMES)[number];

export interface Bridge {
  readonly stats: Readonly<BridgeStats>;
  readonly store: BridgeStore;
  readonly metrics: MetricsRegistry;
  readonly http?: ServiceHttpServer;
  readonly mqttConnected: boolean;
  readonly ledgerUp: boolean;
  /** The exit's public key (x || y, 64 bytes) and relay id (kidOf, 8 bytes): what the DSO's directory head names. */
  readonly exit: { publicKey: Uint8Array; relayId: Uint8Array };
  /** Resolves once predicate(stats) holds (checked after every message and every loop turn). */
  waitFor(predicate: (stats: BridgeStats) => boolean, timeoutMs?: number): Promise<BridgeStats>;
  /** Stops the loops after their current step, disconnects cleanly and closes the store. */
  close(): Promise<void>;
}

function isConnectionError(err: unknown): boolean {
  const text = `${(err as Error).name} ${(err as Error).message}`;
  return /HttpRequestError|fetch failed|ECONNREFUSED|ECONNRESET|socket hang up|timed out|TimeoutError|other side closed|UND_ERR/i.test(
    text,
  );
}

function firstLine(err: unknown): string {
  const e = err as { shortMessage?: string; message?: string };
  return (e.shortMessage ?? e.message ?? String(err)).split('\n')[0];
}

const hexOf = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const { market } = options;
  const deployment = market.deployment;
  const ledger = market.ledger;
  const abi = compileContracts().Market.abi as Abi;
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (level: 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown> = {}) =>
    log(JSON.stringify({ time: new Date().toISOString(), level, component: 'bridge', event, ...fields }));
  const batchSize = Math.max(1, Math.min(MAX_BATCH, options.batchSize ?? MAX_BATCH));
  const maxPending = Math.max(1, options.maxPendingBatches ?? 4);
  const tickMs = options.tickMs ?? 250;
  const replaceAfterMs = options.replaceAfterMs ?? 30_000;
  const settleChunk = options.settleChunk ?? 200;
  const fromBlock = BigInt(deployment.deployedAtBlock);

  const exitKey = options.exitKey ?? ensureExitKey(path.join(path.dirname(options.db), EXIT_KEY_FILE));
  const mixExit = new MixExit({ privateKey: exitKey.privateKey, ...options.mix });
  const store = new BridgeStore(options.db, market.domain);
  let crashCount = 0;
  const crashPoint = (point: CrashPoint) => {
    if (options.crashAt?.point === point && ++crashCount >= options.crashAt.nth) process.kill(process.pid, 'SIGKILL');
  };
  const sender = new TxSender(ledger, options.relayer, deployment.market, abi, () => store.highestNonce());
  emit('info', 'queue_opened', {
    db: options.db,
    queued: store.count('queued'),
    inFlight: store.count('in-flight'),
    pendingBatches: store.pendingBatches().length,
    highestNonce: store.highestNonce(),
  });

  // ---- metrics ----
  const metrics = new MetricsRegistry();
  const stats: BridgeStats = {
    received: 0,
    queued: 0,
    dropped: {},
    accepted: 0,
    rejectedOnChain: {},
    alreadyOnChain: 0,
    batches: 0,
    replacements: 0,
    receiptsPublished: 0,
    intervalsPublished: 0,
    revokedKeys: 0,
    issuedKeys: 0,
    mix: {},
  };
  const received = metrics.counter('veilgrid_bridge_offers_received_total', 'Offer messages taken from the broker.');
  const droppedCounter = metrics.counter(
    'veilgrid_bridge_offers_dropped_total',
    'Offers the bridge refused before the chain saw them, by reason (docs/bridge.md: malformed, bad-signature, duplicate, wrong-market, gate-closed, revoked-key; rate-limited: dropped unread, no receipt).',
    ['reason'],
  );
  for (const reason of [
    'malformed',
    'bad-signature',
    'duplicate',
    'wrong-market',
    'gate-closed',
    'revoked-key',
    'rate-limited',
  ])
    droppedCounter.inc({ reason }, 0);
  const mixCounter = metrics.counter(
    'veilgrid_bridge_mix_packets_total',
    'Onion packets at the mixnet exit (veilgrid/mix/exit), by outcome: offer (handed to the offer path), dummy, or why dropped (docs/bridge.md).',
    ['outcome'],
  );
  for (const outcome of MIX_OUTCOMES) mixCounter.inc({ outcome }, 0);
  const acceptedCounter = metrics.counter(
    'veilgrid_bridge_offers_accepted_total',
    'Offers on chain after a batch of this bridge (OfferAccepted), including offers another relayer had already put there.',
  );
  const rejectedCounter = metrics.counter(
    'veilgrid_bridge_offers_rejected_on_chain_total',
    "Offers the contract refused (OfferRejected), by the contract's reason.",
    ['reason'],
  );
  const txCounter = metrics.counter(
    'veilgrid_bridge_transactions_total',
    'Transactions sent, by kind (submitOffers, clear, settle, replacement).',
    ['kind'],
  );
  const publishedCounter = metrics.counter(
    'veilgrid_bridge_broadcasts_published_total',
    'Messages published to the meters, by topic kind (receipt, clearing, info).',
    ['kind'],
  );
  const ledgerErrors = metrics.counter(
    'veilgrid_bridge_ledger_errors_total',
    'Turns of the chain loop that failed (ledger unreachable or an unexpected answer).',
  );
  let ledgerUp = true;
  let client: MqttClient | undefined;
  metrics.gauge(
    'veilgrid_bridge_queue_offers',
    'Offers in the queue by state: queued (not sent), in-flight (in a transaction not yet mined).',
    ['state'],
    (g) => {
      g.set(store.count('queued'), { state: 'queued' });
      g.set(store.count('in-flight'), { state: 'in-flight' });
    },
  );
  metrics.gauge(
    'veilgrid_bridge_ledger_up',
    'Whether the last turn of the chain loop reached the ledger (1) or not (0).',
    [],
    (g) => g.set(ledgerUp ? 1 : 0),
  );
  metrics.gauge('veilgrid_bridge_broker_connected', 'Whether the bridge is connected to the broker.', [], (g) =>
    g.set(client?.connected ? 1 : 0),
  );
  metrics.gauge(
    'veilgrid_bridge_revoked_keys',
    'Trading keys the bridge knows to be revoked on chain (their offers are dropped as revoked-key).',
    [],
    (g) => g.set(stats.revokedKeys),
  );
  metrics.gauge(
    'veilgrid_bridge_issued_keys',
    'Trading keys with assets issued for an open interval (AssetIssued): an offer through the mixnet from any other key is dropped as no-asset.',
    [],
    (g) => g.set(stats.issuedKeys),
  );
  metrics.gauge(
    'veilgrid_bridge_last_cleared_interval',
    'The last interval whose clearing result the bridge recorded (-1: none yet).',
    [],
    (g) => g.set(stats.lastClearedInterval ?? -1),
  );

  const drop = (reason: string) => {
    stats.dropped[reason] = (stats.dropped[reason] ?? 0) + 1;
    droppedCounter.inc({ reason });
  };

  // ---- waiters ----
  const waiters: Array<{ predicate: (s: BridgeStats) => boolean; resolve: (s: BridgeStats) => void }> = [];
  const settleWaiters = () => {
    for (let i = waiters.length - 1; i >= 0; i--)
      if (waiters[i].predicate(stats)) waiters.splice(i, 1)[0].resolve(structuredClone(stats));
  };

  // ---- the chain's clock, revoked keys ----
  let clockOffset = 0; // seconds the chain's latest block is ahead of this machine's clock (tests move the chain's clock)
  const chainNow = () => Date.now() / 1000 + clockOffset;
  const gateClosure = (interval: number) => deployment.genesisTime + interval * deployment.intervalSeconds;
  const revokedKeys = new Set<string>();
  /** Trading keys the DSO issued assets to (AssetIssued), with the intervals: the exit's cheap pre-check. */
  const issuedKeys = new Map<string, { first: number; last: number }>();
  let scannedBlock = fromBlock - 1n;
  let latestBlock = fromBlock;
  const checkContext = { domain: market.domain, gateClosure, now: chainNow, revokedKeys };

  // ---- the message handler: check, store, then acknowledge ----
  const budgets = new MessageBudgets(options.budget);
  const limitedMeters = new Set<string>();
  const handleOffer = (topic: string, payload: Uint8Array) => {
    stats.received++;
    received.inc();
    const meterId = meterIdFromOfferTopic(topic);
    const source = meterId ?? topic;
    if (budgets.exhausted(source)) {
      drop('rate-limited');
      if (!limitedMeters.has(source)) {
        limitedMeters.add(source);
        emit('warn', 'offer_dropped', {
          topic,
          meterId,
          reason: 'rate-limited',
          detail: `"${source}" sent more refused or duplicate messages than its budget allows: its messages are dropped unread and unanswered until the budget refills (counted on /metrics, logged once per episode)`,
        });
      }
      return;
    }
    limitedMeters.delete(source);
    const queuedBefore = stats.queued;
    handleChecked(topic, meterId, payload);
    if (stats.queued === queuedBefore) budgets.charge(source); // refused or a duplicate
  };
  const handleChecked = (topic: string, meterId: string | undefined, payload: Uint8Array) => {
    // A copy of an offer the bridge holds (whatever its signature) is a duplicate: no second verify. Its outcome,
    // once known, is published again (the sender may have missed it); while it is pending, its receipt will come.
    if (payload.length === OFFER_MESSAGE_LENGTH) {
      const digest = sha256(payload.subarray(0, OFFER_LENGTH));
      if (store.has(digest)) return duplicate(topic, meterId, digest, store.republishOffer(digest));
    }
    const check = checkOfferMessage(payload, checkContext);
    if (!check.ok) {
      const messageHash = sha256(payload);
      if (!store.refuse(messageHash, check.digest, check.reason))
        return duplicate(topic, meterId, check.digest, store.republishRefusal(messageHash));
      const name = reasonName(check.reason)!;
      drop(name);
      emit('warn', 'offer_refused', {
        topic,
        meterId,
        reason: name,
        detail: check.detail,
        digest: hexOf(check.digest),
        bytes: payload.length,
        payloadHex: hexOf(payload.subarray(0, PAYLOAD_LOG_BYTES)),
      });
      return;
    }
    if (!store.queue({ digest: check.digest, message: payload, interval: check.offer.interval }))
      return duplicate(topic, meterId, check.digest, store.republishOffer(check.digest));
    stats.queued++;
    crashPoint('offer-stored');
  };
  const duplicate = (topic: string, meterId: string | undefined, digest: Uint8Array, answered: boolean) => {
    drop('duplicate');
    emit('info', 'offer_duplicate', {
      topic,
      meterId,
      digest: hexOf(digest),
      note: answered ? 'its outcome is published again' : 'still pending: its receipt will come',
    });
  };

  // ---- the mixnet's exit: onion packets (QoS 0) peeled, their offers into the same path as above ----
  /** The offer window running at chain time t (s): the market interval whose gate closes next. */
  const windowAt = (t: number) => Math.floor((t - deployment.genesisTime) / deployment.intervalSeconds) + 1;
  const takeMixPacket = (packet: Uint8Array): { outcome: MixOutcome; detail?: string } => {
    const result = mixExit.take(packet, windowAt(chainNow()));
    if (result.outcome !== 'offer') return result;
    const message = result.message;
    let offer: Offer;
    try {
      if (message.length !== OFFER_MESSAGE_LENGTH)
        throw new Error(`an offer message is ${OFFER_MESSAGE_LENGTH} bytes, got ${message.length}`);
      offer = decodeOffer(splitOfferMessage(message).signedBytes);
    } catch (err) {
      return { outcome: 'bad-offer', detail: (err as Error).message };
    }
    // Nobody can tell who sent a packet, so what one sender may cost is bounded by the key in its offer: a key
    // the DSO issued nothing to would be refused on chain (gas spent for nothing) and is dropped here unanswered,
    // and an issued key may cause only so many refusals or duplicates per window.
    const keyId = keyIdOf(offer.key).toLowerCase();
    const grant = issuedKeys.get(keyId);
    if (!grant || offer.interval < grant.first || offer.interval > grant.last)
      return {
        outcome: 'no-asset',
        detail: `no AssetIssued for key ${keyId} and interval ${offer.interval}: the chain would refuse it`,
      };
    if (mixExit.keyExhausted(keyId))
      return {
        outcome: 'rate-limited',
        detail: `key ${keyId} caused its window's budget of refused or duplicate offers`,
      };
    stats.received++;
    received.inc();
    const queuedBefore = stats.queued;
    handleChecked(MIX_EXIT_TOPIC, undefined, message);
    if (stats.queued === queuedBefore) mixExit.chargeKey(keyId);
    return { outcome: 'offer' };
  };
  /** Counts of this round-slot (mix-schedule.ts), logged once when the next slot begins: a flood makes one line a slot. */
  let mixSlot = { name: '', counts: {} as Record<string, number>, details: {} as Record<string, string> };
  const mixSlotName = () => {
    const slot = mixSlotAt(deployment, chainNow() * 1000);
    return slot ? `${slot.interval}.${slot.round}.${slot.slot}` : `between-rounds.${windowAt(chainNow())}`;
  };
  const logMixSlot = (closing = false) => {
    const name = closing ? '' : mixSlotName();
    if (name === mixSlot.name) return;
    if (Object.keys(mixSlot.counts).length > 0)
      emit('info', 'mix_exit_slot', { slot: mixSlot.name, packets: mixSlot.counts, dropped: mixSlot.details });
    mixSlot = { name, counts: {}, details: {} };
  };
  const handleMixPacket = (packet: Uint8Array) => {
    let result: { outcome: MixOutcome; detail?: string };
    try {
      result = takeMixPacket(packet);
    } catch (err) {
      // The store failed (disk full?): no PUBACK to hold back at QoS 0; the sender, without a receipt, resends.
      result = { outcome: 'store-failed', detail: (err as Error).message };
      emit('error', 'store_failed', { topic: MIX_EXIT_TOPIC, reason: result.detail, note: 'the sender resends it' });
    }
    stats.mix[result.outcome] = (stats.mix[result.outcome] ?? 0) + 1;
    mixCounter.inc({ outcome: result.outcome });
    logMixSlot();
    mixSlot.counts[result.outcome] = (mixSlot.counts[result.outcome] ?? 0) + 1;
    if (result.detail !== undefined) mixSlot.details[result.outcome] ??= result.detail;
  };

  // ---- batches ----
  const replayedLookup = async (digests: Hex[]): Promise<Map<string, { interval: number; index: number }>> => {
    const found = new Map<string, { interval: number; index: number }>();
    if (digests.length === 0) return found;
    const logs = await ledger.publicClient.getContractEvents({
      address: deployment.market,
      abi,
      eventName: 'OfferAccepted',
      args: { digest: digests },
      fromBlock,
    } as never);
    for (const l of logs as unknown as Array<{ args: { digest: Hex; interval: number; index: number } }>)
      found.set(l.args.digest.toLowerCase(), { interval: Number(l.args.interval), index: Number(l.args.index) });
    return found;
  };

  const outcomesOf = async (receipt: TransactionReceipt, digests: Uint8Array[]): Promise<Outcome[]> => {
    if (receipt.status !== 'success') {
      emit('warn', 'batch_reverted', {
        hash: receipt.transactionHash,
        offers: digests.length,
        note: 'its offers go back to the queue',
      });
      return [];
    }
    const accepted = new Map<string, { interval: number; index: number }>();
    const rejected = new Map<string, number>();
    for (const entry of receipt.logs) {
      if (entry.address.toLowerCase() !== deployment.market.toLowerCase()) continue;
      try {
        const event = decodeEventLog({ abi, data: entry.data, topics: entry.topics }) as unknown as {
          eventName: string;
          args: Record<string, unknown>;
        };
        if (event.eventName === 'OfferAccepted')
          accepted.set((event.args.digest as Hex).toLowerCase(), {
            interval: Number(event.args.interval),
            index: Number(event.args.index),
          });
        if (event.eventName === 'OfferRejected')
          rejected.set((event.args.digest as Hex).toLowerCase(), Number(event.args.reason));
      } catch {
        // not one of the market's events this bridge reads
      }
    }
    const replayed = [...rejected].filter(([, reason]) => reason === REASON_REPLAYED).map(([d]) => d as Hex);
    const onChain = await replayedLookup(replayed);
    const outcomes: Outcome[] = [];
    for (const digest of digests) {
      const key = toHex(digest).toLowerCase();
      const a = accepted.get(key) ?? (rejected.get(key) === REASON_REPLAYED ? onChain.get(key) : undefined);
      if (a)
        outcomes.push({ digest, accepted: true, interval: a.interval, index: a.index, replayed: !accepted.has(key) });
      else if (rejected.has(key)) outcomes.push({ digest, accepted: false, reason: rejected.get(key)! });
    }
    return outcomes;
  };

  const finish = (batch: PendingBatch, outcomes: Outcome[], how: string, hash?: Hex) => {
    store.finishBatch(batch.id, outcomes);
    crashPoint('batch-finished');
    let accepted = 0;
    for (const o of outcomes) {
      if (o.accepted) {
        accepted++;
        stats.accepted++;
        acceptedCounter.inc();
        if (o.replayed) stats.alreadyOnChain++;
      } else {
        const name = reasonName(o.reason) ?? String(o.reason);
        stats.rejectedOnChain[name] = (stats.rejectedOnChain[name] ?? 0) + 1;
        rejectedCounter.inc({ reason: name });
        emit('warn', 'offer_rejected_on_chain', { digest: hexOf(o.digest), reason: name, hash });
      }
    }
    emit('info', 'batch_done', {
      nonce: batch.nonce,
      hash,
      how,
      offers: batch.digests.length,
      accepted,
      rejected: outcomes.length - accepted,
      requeued: batch.digests.length - outcomes.length,
    });
  };

  /** Finishes the batch if any of its transactions was mined; true then. */
  const finishIfMined = async (batch: PendingBatch): Promise<boolean> => {
    for (const attempt of batch.attempts) {
      const receipt = await sender.receipt(attempt.hash);
      if (receipt) {
        finish(batch, await outcomesOf(receipt, batch.digests), 'mined', attempt.hash);
        return true;
      }
    }
    return false;
  };

  /** Brings every in-flight batch forward: its receipt, a replacement, the same bytes sent again, or reconciliation. */
  const resolveBatches = async () => {
    for (const batch of store.pendingBatches()) {
      if (stopped) return;
      if (await finishIfMined(batch)) continue;
      const latest = batch.attempts[batch.attempts.length - 1];
      if (await sender.known(latest.hash)) {
        if (Date.now() - latest.sentMs < replaceAfterMs) continue;
        const replacement = await sender.sign(
          sender.data('submitOffers', batchArgs(batch.digests)),
          batchGas(batch.digests.length),
          batch.nonce,
          bumpedFees(latest),
        );
        store.addAttempt(batch.id, replacement);
        stats.replacements++;
        txCounter.inc({ kind: 'replacement' });
        emit('info', 'batch_replaced', {
          nonce: batch.nonce,
          old: latest.hash,
          hash: replacement.hash,
          maxFeePerGas: String(replacement.maxFeePerGas),
        });
        await sender.broadcast(replacement.raw);
        continue;
      }
      // The node does not know the transaction: never sent (a kill between store and send), or lost.
      const result = await sender.broadcast(latest.raw);
      if (result !== 'nonce-used') {
        emit('info', 'batch_resent', { nonce: batch.nonce, hash: latest.hash, result });
        continue;
      }
      // The nonce was used: by an attempt mined meanwhile, or by another transaction; then the chain's events say.
      if (await finishIfMined(batch)) continue;
      sender.resetNonce();
      const onChain = await replayedLookup(batch.digests.map((d) => toHex(d)));
      const outcomes: Outcome[] = [];
      for (const digest of batch.digests) {
        const a = onChain.get(toHex(digest).toLowerCase());
        if (a) outcomes.push({ digest, accepted: true, interval: a.interval, index: a.index, replayed: true });
      }
      finish(batch, outcomes, 'reconciled with OfferAccepted events (nonce used by another transaction)');
    }
  };

  const batchArgs = (digests: Uint8Array[]) => {
    const messages = store.messagesOf(digests);
    return [
      messages.map((m) => toHex(m.subarray(0, OFFER_LENGTH))),
      messages.map((m) => toHex(m.subarray(OFFER_LENGTH))),
    ];
  };
  const batchGas = (n: number) => BATCH_GAS_BASE + BigInt(n) * BATCH_GAS_PER_OFFER;

  const submit = async () => {
    // While a mix round's packets are on their way (slots 0-2), offers wait: a round's offers go on chain together
    // at its last slot, so a batch holds many senders' offers, in an order (batch-order.ts) that says nothing of
    // when each came.
    const slot = mixSlotAt(deployment, chainNow() * 1000);
    if (slot && slot.slot < SLOTS_PER_ROUND - 1) return;
    for (;;) {
      if (stopped) return;
      if (store.pendingBatches().length >= maxPending) return;
      const offers = chainOrder(store.queued()).slice(0, batchSize);
      if (offers.length === 0) return;
      const nonce = await sender.allocateNonce();
      let attempt;
      try {
        const data = sender.data('submitOffers', [
          offers.map((o) => toHex(o.message.subarray(0, OFFER_LENGTH))),
          offers.map((o) => toHex(o.message.subarray(OFFER_LENGTH))),
        ]);
        attempt = await sender.sign(data, batchGas(offers.length), nonce, await sender.fees());
      } catch (err) {
        sender.resetNonce();
        throw err;
      }
      const id = store.recordBatch(
        nonce,
        offers.map((o) => o.digest),
        attempt,
      );
      crashPoint('batch-recorded');
      stats.batches++;
      txCounter.inc({ kind: 'submitOffers' });
      emit('info', 'batch_sent', { nonce, hash: attempt.hash, offers: offers.length });
      try {
        const result = await sender.broadcast(attempt.raw);
        crashPoint('batch-sent');
        if (result === 'nonce-used') sender.resetNonce();
      } catch (err) {
        sender.resetNonce();
        // Stored: the next turn sends the same bytes again, or finds them mined.
        if (isConnectionError(err)) throw err;
        emit('warn', 'batch_send_failed', { nonce, hash: attempt.hash, reason: firstLine(err), batch: id });
      }
      await resolveBatches();
    }
  };

  // ---- clearing ----
  const clearingOf = async (interval: number) =>
    (await ledger.publicClient.readContract({
      address: deployment.market,
      abi,
      functionName: 'clearingOf',
      args: [interval],
    })) as { result: ClearingResult; cleared: boolean; settledUpTo: number };
  const sendOptions = { replaceAfterMs, pollMs: Math.max(20, Math.min(250, tickMs)), stopped: () => stopped };

  const clearingMessages = async (interval: number, result: ClearingResult, offers: number) => {
    const accepted = (await ledger.publicClient.getContractEvents({
      address: deployment.market,
      abi,
      eventName: 'OfferAccepted',
      args: { interval },
      fromBlock,
    } as never)) as unknown as Array<{ args: { index: number; digest: Hex } }>;
    const settled = (await ledger.publicClient.getContractEvents({
      address: deployment.market,
      abi,
      eventName: 'Settled',
      args: { interval },
      fromBlock,
    } as never)) as unknown as Array<{ args: { index: number; fillWh: number; paid: bigint; received: bigint } }>;
    const digestAt = new Map(accepted.map((l) => [Number(l.args.index), l.args.digest]));
    const fills = settled
      .map((l) => l.args)
      .sort((a, b) => Number(a.index) - Number(b.index))
      .map((s) => ({
        digest: new Uint8Array(Buffer.from(digestAt.get(Number(s.index))!.slice(2), 'hex')),
        fillWh: Number(s.fillWh),
        paid: amountFromBigint(s.paid),
        received: amountFromBigint(s.received),
      }));
    return encodeClearing(
      { interval, price: Number(result.price), volumeWh: amountFromBigint(BigInt(result.volumeWh)), offers },
      fills,
    );
  };

  /** Logs a failure once while it repeats (a step retried every turn must not flood the log). */
  const lastFailure = new Map<string, string>();
  const warnOnce = (step: string, event: string, fields: { reason: string } & Record<string, unknown>) => {
    if (lastFailure.get(step) === fields.reason) return;
    lastFailure.set(step, fields.reason);
    emit('warn', event, fields);
  };

  /** Clears and settles one interval whose gate closed; true when its result is recorded (or it is skipped). */
  const clearOne = async (interval: number): Promise<boolean> => {
    const startedMs = Date.now();
    let state = await clearingOf(interval);
    if (!state.cleared) {
      let result: ClearingResult;
      try {
        result = await market.computeClearing(interval);
      } catch (err) {
        if (isConnectionError(err)) throw err;
        const offers = await market.offerCount(interval);
        emit(offers === 0 ? 'info' : 'error', 'interval_not_clearable', {
          interval,
          offers,
          reason: firstLine(err),
          note: offers === 0 ? 'no offers: skipped' : 'skipped: nobody can clear it (e.g. no prices in force)',
        });
        store.recordInterval(interval, undefined);
        return true;
      }
      try {
        txCounter.inc({ kind: 'clear' });
        await sender.sendAndWait('clear', [interval, result], TRANSACTION_GAS_CAP, sendOptions);
      } catch (err) {
        if (isConnectionError(err)) throw err;
        warnOnce(`clear ${interval}`, 'clear_failed', {
          interval,
          reason: firstLine(err),
          note: 'asking the chain again next turn',
        });
      }
      state = await clearingOf(interval);
      if (!state.cleared) return false;
    }
    const offers = await market.offerCount(interval);
    while (Number(state.settledUpTo) < offers) {
      if (stopped) return false;
      try {
        txCounter.inc({ kind: 'settle' });
        await sender.sendAndWait(
          'settle',
          [interval, settleChunk],
          SETTLE_GAS_BASE + BigInt(settleChunk) * SETTLE_GAS_PER_OFFER,
          sendOptions,
        );
      } catch (err) {
        if (isConnectionError(err)) throw err;
        warnOnce(`settle ${interval}`, 'settle_failed', {
          interval,
          reason: firstLine(err),
          note: 'asking the chain again next turn',
        });
        const again = await clearingOf(interval);
        if (Number(again.settledUpTo) === Number(state.settledUpTo)) return false;
      }
      state = await clearingOf(interval);
    }
    const settledMs = Date.now();
    const messages = await clearingMessages(interval, state.result, offers);
    store.recordInterval(interval, messages);
    stats.lastClearedInterval = interval;
    emit('info', 'interval_settled', {
      interval,
      price: Number(state.result.price),
      volumeWh: String(state.result.volumeWh),
      offers,
      messages: messages.length,
      afterGateClosureMs: Math.round(startedMs - gateClosure(interval) * 1000 + clockOffset * 1000),
      clearAndSettleMs: settledMs - startedMs,
      eventsMs: Date.now() - settledMs,
    });
    return true;
  };

  /** When (this machine's ms) the next interval to clear has its gate closure: the chain loop wakes up then. */
  let nextClosureMs = Infinity;
  /** After a failed clear or settle: when to try the interval again (1 s, doubling to 30 s), so no revert repeats every turn. */
  let retry = { interval: -1, atMs: 0, delayMs: 0 };
  const clearDue = async () => {
    let next = Number(store.meta('next-interval') ?? NaN);
    if (Number.isNaN(next)) {
      next =
        options.firstInterval ??
        Math.max(0, Math.floor((chainNow() - deployment.genesisTime) / deployment.intervalSeconds));
      store.setMeta('next-interval', String(next));
    }
    nextClosureMs = (gateClosure(next) - clockOffset) * 1000;
    while (!stopped && gateClosure(next) <= chainNow()) {
      if (retry.interval === next && Date.now() < retry.atMs) return;
      if (!(await clearOne(next))) {
        const delayMs = retry.interval === next ? Math.min(30_000, retry.delayMs * 2) : 1000;
        retry = { interval: next, atMs: Date.now() + delayMs, delayMs };
        return;
      }
      next++;
      store.setMeta('next-interval', String(next));
      nextClosureMs = (gateClosure(next) - clockOffset) * 1000;
    }
  };

  // ---- market info (retained): what to sign offers for, the clock, the prices of the next interval ----
  let infoPublishedFor: string | undefined;
  const publishMarketInfo = async () => {
    if (!client?.connected) return;
    const next = Math.max(0, Math.floor((chainNow() - deployment.genesisTime) / deployment.intervalSeconds)) + 1;
    let prices: readonly [number, number];
    try {
      prices = (await ledger.publicClient.readContract({
        address: deployment.market,
        abi,
        functionName: 'pricesAt',
        args: [next],
      })) as readonly [number, number];
    } catch (err) {
      if (isConnectionError(err)) throw err;
      // No prices in force: meters have no outside option and cannot trade. Said once, not every turn.
      warnOnce('market-info', 'no_prices', {
        reason: `the market has no DSO prices for interval ${next}`,
        note: 'market info not published: meters cannot trade until the DSO sets prices (veilgrid dso serve --issuance with "prices")',
      });
      return;
    }
    const key = `${next}:${prices[0]}:${prices[1]}`;
    if (key === infoPublishedFor) return;
    const payload = encodeMarketInfo({
      domain: market.domain,
      intervalSeconds: deployment.intervalSeconds,
      genesisTime: deployment.genesisTime,
      fromInterval: next,
      consumptionPrice: Number(prices[0]),
      productionPrice: Number(prices[1]),
    });
    infoPublishedFor = key;
    client.publish(MARKET_INFO_TOPIC, Buffer.from(payload), { qos: 1, retain: true }, (err) => {
      if (err) infoPublishedFor = undefined;
      else publishedCounter.inc({ kind: 'info' });
    });
  };

  // ---- the chain loop ----
  let stopped = false;
  let lastOutage: string | undefined;
  let backoffMs = tickMs;
  const chainTurn = async () => {
    const block = await ledger.publicClient.getBlock();
    latestBlock = block.number;
    clockOffset = Math.max(0, Number(block.timestamp) - Date.now() / 1000);
    if (latestBlock > scannedBlock) {
      const revoked = (await ledger.publicClient.getContractEvents({
        address: deployment.market,
        abi,
        eventName: 'KeyRevoked',
        fromBlock: scannedBlock + 1n,
        toBlock: latestBlock,
      } as never)) as unknown as Array<{ args: { keyId: Hex } }>;
      for (const r of revoked) revokedKeys.add(r.args.keyId.toLowerCase());
      stats.revokedKeys = revokedKeys.size;
      const issued = (await ledger.publicClient.getContractEvents({
        address: deployment.market,
        abi,
        eventName: 'AssetIssued',
        fromBlock: scannedBlock + 1n,
        toBlock: latestBlock,
      } as never)) as unknown as Array<{ args: { keyId: Hex; first: number; last: number } }>;
      for (const i of issued) {
        const keyId = i.args.keyId.toLowerCase();
        const known = issuedKeys.get(keyId);
        issuedKeys.set(keyId, {
          first: Math.min(Number(i.args.first), known?.first ?? Infinity),
          last: Math.max(Number(i.args.last), known?.last ?? -1),
        });
      }
      scannedBlock = latestBlock;
    }
    // Grants whose intervals' gates have all closed: their offers are refused as gate-closed anyway.
    const open = windowAt(chainNow());
    for (const [keyId, grant] of issuedKeys) if (grant.last < open) issuedKeys.delete(keyId);
    stats.issuedKeys = issuedKeys.size;
    await resolveBatches();
    const expired = store.expireQueued((interval) => gateClosure(interval) <= chainNow(), REASON_BRIDGE_GATE_CLOSED);
    for (const digest of expired) {
      drop('gate-closed');
      emit('warn', 'offer_refused', {
        reason: 'gate-closed',
        digest: hexOf(digest),
        detail: 'its gate closed while it waited in the queue (the ledger was slow or down)',
      });
    }
    await submit();
    if (options.clearing !== false) await clearDue();
    await publishMarketInfo();
  };

  const chainLoop = (async () => {
    while (!stopped) {
      try {
        await chainTurn();
        if (!ledgerUp || lastOutage) emit('info', 'ledger_back', { after: lastOutage });
        ledgerUp = true;
        lastOutage = undefined;
        backoffMs = tickMs;
      } catch (err) {
        ledgerErrors.inc();
        const reason = firstLine(err);
        if (isConnectionError(err)) ledgerUp = false;
        if (reason !== lastOutage)
          emit(
            isConnectionError(err) ? 'warn' : 'error',
            isConnectionError(err) ? 'ledger_unreachable' : 'chain_turn_failed',
            {
              reason,
              note: `retrying every ${Math.round(Math.min(10_000, backoffMs * 2) / 1000)} s or sooner; offers stay queued`,
            },
          );
        lastOutage = reason;
        backoffMs = Math.min(10_000, backoffMs * 2);
      }
      settleWaiters();
      // A turn right at the next gate closure (plus a few ms for the node's clock), not up to a tick later.
      const untilClosure = nextClosureMs + 20 - Date.now();
      await sleep(ledgerUp ? (untilClosure > 0 ? Math.min(tickMs, untilClosure) : tickMs) : backoffMs);
    }
  })();

  // ---- the publish loop: receipts and clearing results owed ----
  const publish = (topic: string, payload: Uint8Array) =>
    new Promise<void>((resolve, reject) =>
      client!.publish(topic, Buffer.from(payload), { qos: 1 }, (err) => (err ? reject(err) : resolve())),
    );

  const publishTurn = async () => {
    if (!client?.connected) return;
    const rows = store.unpublished(400);
    if (rows.length > 0) {
      const receipt: Receipt = { accepted: [], refused: [] };
      for (const r of rows) {
        if (r.state === 'accepted') receipt.accepted.push({ digest: r.digest, interval: r.interval!, index: r.index! });
        else receipt.refused.push({ digest: r.digest, reason: r.reason! });
      }
      for (const message of encodeReceipts(receipt)) {
        await publish(RECEIPT_TOPIC, message);
        publishedCounter.inc({ kind: 'receipt' });
      }
      crashPoint('receipt-published');
      store.markPublished(rows);
      stats.receiptsPublished += rows.length;
    }
    for (const { interval, messages } of store.unpublishedIntervals()) {
      for (const message of messages) {
        await publish(CLEARING_TOPIC, message);
        publishedCounter.inc({ kind: 'clearing' });
      }
      store.markIntervalPublished(interval);
      stats.intervalsPublished++;
      emit('info', 'clearing_published', { interval, messages: messages.length });
      const pruned = store.prune(interval - KEEP_INTERVALS, Date.now() - KEEP_REFUSALS_MS);
      if (pruned.offers + pruned.refusals > 0)
        emit('info', 'queue_pruned', { beforeInterval: interval - KEEP_INTERVALS, ...pruned });
    }
  };

  const publishLoop = (async () => {
    while (!stopped) {
      logMixSlot();
      try {
        await publishTurn();
      } catch (err) {
        if (!stopped)
          emit('warn', 'publish_failed', {
            reason: firstLine(err),
            note: 'kept in the queue: published again once the broker takes it',
          });
      }
      settleWaiters();
      await sleep(Math.min(100, tickMs));
    }
  })();

  // ---- MQTT ----
  const clientOptions: IClientOptions = {
    protocolVersion: 4,
    clientId: options.clientId ?? options.username ?? `veilgrid-bridge-${randomBytes(4).toString('hex')}`,
    clean: (options.clientId ?? options.username) === undefined,
    username: options.username,
    password: options.password,
    reconnectPeriod: 1000,
  };
  client = mqtt.connect(options.brokerUrl, clientOptions);
  acknowledgeAfterHandling(
    client,
    options.brokerUrl,
    emit,
    (topic, payload) => {
      const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.length);
      if (topic === MIX_EXIT_TOPIC) handleMixPacket(bytes);
      else handleOffer(topic, bytes);
    },
    settleWaiters,
  );

  const stopLoops = async () => {
    stopped = true;
    await Promise.all([chainLoop, publishLoop]);
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(new BridgeError(`the bridge cannot connect to ${options.brokerUrl}: ${err.message}`));
      client!.once('error', onError);
      client!.once('connect', () => {
        client!.subscribe(OFFER_TOPIC_FILTER, { qos: 1 }, (err, granted) => {
          client!.removeListener('error', onError);
          if (err)
            return reject(new BridgeError(`the bridge cannot subscribe to ${OFFER_TOPIC_FILTER}: ${err.message}`));
          if (granted?.[0]?.qos !== 1)
            return reject(
              new BridgeError(
                `the broker did not grant ${OFFER_TOPIC_FILTER} with QoS 1: offers could be lost; check the broker's ACL for the bridge user`,
              ),
            );
          // The mixnet's traffic is QoS 0 (docs/mixnet.md): a lost packet is resent by its sender.
          client!.subscribe(MIX_EXIT_TOPIC, { qos: 0 }, (mixErr, mixGranted) => {
            if (mixErr || mixGranted?.[0]?.qos !== 0)
              return reject(
                new BridgeError(
                  `the broker did not grant ${MIX_EXIT_TOPIC} (${mixErr?.message ?? `granted ${mixGranted?.[0]?.qos}`}): the mixnet's offers would not reach the bridge; check the broker's ACL for the bridge user`,
                ),
              );
            resolve();
          });
        });
      });
    });
  } catch (err) {
    await client.endAsync(true);
    await stopLoops();
    store.close();
    throw err;
  }

  let http: ServiceHttpServer | undefined;
  if (options.http !== false) {
    try {
      http = await startServiceHttpServer({
        name: 'bridge',
        metrics,
        host: options.http?.host,
        port: options.http?.port ?? 0,
        health: () => {
          const problems = [];
          if (!client?.connected) problems.push(`not connected to the broker at ${options.brokerUrl}`);
          if (!ledgerUp)
            problems.push(`the ledger at ${deployment.rpcUrl ?? 'in process'} does not answer (${lastOutage})`);
          return problems.length === 0 ? { ok: true } : { ok: false, detail: problems.join('; ') };
        },
      });
    } catch (err) {
      await client.endAsync();
      await stopLoops();
      store.close();
      throw new BridgeError((err as Error).message);
    }
  }
  emit('info', 'bridge_started', {
    brokerUrl: options.brokerUrl,
    market: deployment.market,
    chainId: deployment.chainId,
    relayer: options.relayer.address,
    batchSize,
    exitRelayId: hexOf(exitKey.relayId),
    http: http?.url,
    clientId: clientOptions.clientId,
  });

  let closing: Promise<void> | undefined;
  return {
    stats,
    store,
    metrics,
    http,
    get mqttConnected() {
      return client!.connected;
    },
    get ledgerUp() {
      return ledgerUp;
    },
    exit: { publicKey: exitKey.publicKey, relayId: exitKey.relayId },
    waitFor(predicate, timeoutMs = 60_000) {
      if (predicate(stats)) return Promise.resolve(structuredClone(stats));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.findIndex((w) => w.resolve === done);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`bridge: condition not reached within ${timeoutMs} ms; stats ${JSON.stringify(stats)}`));
        }, timeoutMs);
        const done = (s: BridgeStats) => {
          clearTimeout(timer);
          resolve(s);
        };
        waiters.push({ predicate, resolve: done });
      });
    },
    close() {
      closing ??= (async () => {
        await stopLoops();
        await client!.endAsync();
        logMixSlot(true);
        await http?.close();
        store.close();
        emit('info', 'bridge_stopped', { received: stats.received, accepted: stats.accepted });
      })();
      return closing;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
