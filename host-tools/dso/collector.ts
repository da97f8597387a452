// The DSO's reading collector: subscribes to every meter's readings over MQTT (QoS 1), decodes and
// checks each one, and stores it in a ReadingStore. A reading is acknowledged to the broker only after
// it is stored, so a collector crash loses nothing: the broker redelivers, and the store de-duplicates.
// Bad messages are logged (one JSON line each, with the reason) and acknowledged; they never stop it.
// Before anything is decoded, messages above MAX_MESSAGE_PAYLOAD_BYTES, and messages of a meter that
// has spent its budget of refused messages (message-limits.ts), are dropped unread and counted, so one
// meter cannot stall the others.
//
// With a `verifier` (what the testbed and a real DSO use), reading payloads are sealed, signed readings:
// each is opened and checked by the ReadingVerifier (chain, key, signature, replay) and only a verified
// reading is stored; the collector also subscribes to the meters' key certificates (retained, published
// before a key's first use) and hands them to the verifier, before subscribing to readings. Without a
// verifier, payloads are plain reading CBOR (the storage path's own tests and benchmark use that).
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { decodeReading, ReadingFormatError } from '../../firmware/src/protocol/reading.ts';
import {
  KEY_CERTIFICATE_TOPIC_FILTER,
  READING_TOPIC_FILTER,
  meterIdFromKeyCertificateTopic,
  meterIdFromReadingTopic,
} from '../../firmware/src/protocol/topics.ts';
import type { Reading } from '../../firmware/src/protocol/reading.ts';
import { MAX_MESSAGE_PAYLOAD_BYTES, MessageBudgets, type MessageBudget } from './message-limits.ts';
import { MetricsRegistry } from '../service/metrics.ts';
import { acknowledgeAfterHandling } from '../service/mqtt-intake.ts';
import type { ReadingStore } from './reading-store.ts';
import type { ReadingVerifier } from './verifier.ts';

export interface CollectorOptions {
  /** e.g. mqtt://127.0.0.1:1883 */
  brokerUrl: string;
  db: ReadingStore;
  /** Receives one JSON object per line (no newline). Default: written to stderr. */
  log?: (line: string) => void;
  /**
   * A stable client id gives the collector a persistent session (clean session off): the broker then
   * keeps QoS 1 readings for it while it is away. Brokers that enforce logins require it to be the user
   * name. Default: the user name (or a random id without one) with a clean session.
   */
  clientId?: string;
  username?: string;
  password?: string;
  /** Verifies sealed, signed readings and takes key certificates; absent: payloads are plain readings. */
  verifier?: ReadingVerifier;
  /** Where the dropped-message counter goes (served on /metrics). Default: a registry of its own. */
  metrics?: MetricsRegistry;
  /** Each meter's message budget; default METER_MESSAGE_BUDGET. */
  budget?: MessageBudget;
  /**
   * More meter topics to take on the same session (QoS 1, acknowledged after handle returns; e.g. asset
   * requests, dso/asset-issuance.ts). Each message passes the size cap and its meter's budget first (the
   * meter id from meterIdFromTopic); handle throws only when its store fails, and says whether the message
   * was refused (charged to the meter's budget).
   */
  intakes?: CollectorIntake[];
}

export interface CollectorIntake {
  filter: string;
  meterIdFromTopic(topic: string): string | undefined;
  handle(meterId: string, payload: Uint8Array): { refused: boolean };
}

export interface CollectorStats {
  /** New readings stored. */
  received: number;
  /** Readings already stored, delivered again (QoS 1 redelivery or a meter resending). */
  duplicates: number;
  /** Messages that are not a valid reading for their topic: malformed, naming another meter, or refused by the verifier. */
  rejected: number;
  /** With a verifier only: readings it accepted (new or redelivered). */
  verified?: number;
  /** With a verifier only: new key certificates it accepted (one per reading-key rotation). */
  keyCertificates?: number;
  /** Valid readings whose (meter, seq) is already stored with different content: the first one is kept. */
  conflicts: number;
  /** Messages dropped unread: larger than MAX_MESSAGE_PAYLOAD_BYTES, or past their meter's message budget. */
  dropped: { oversize: number; rateLimited: number };
}

export interface Collector {
  /** Counts so far; updated as each message is handled. */
  readonly stats: Readonly<CollectorStats>;
  /** Connected to the broker now (false while it reconnects). */
  readonly connected: boolean;
  /** Resolves once predicate(stats) holds, checking now and after every handled message. */
  waitFor(predicate: (stats: CollectorStats) => boolean): Promise<CollectorStats>;
  /** Publishes with QoS 1 on the collector's session (retained when asked); resolves on the broker's PUBACK. */
  publish(topic: string, payload: Uint8Array, retain?: boolean): Promise<void>;
  /** Unsubscribes nothing (the session may be persistent) and disconnects cleanly. */
  close(): Promise<void>;
}

const PAYLOAD_LOG_BYTES = 64;

/** Connects, subscribes to READING_TOPIC_FILTER with QoS 1 and resolves once the subscription is granted. */
export async function startCollector(options: CollectorOptions): Promise<Collector> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (level: 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown> = {}) =>
    log(JSON.stringify({ time: new Date().toISOString(), level, component: 'collector', event, ...fields }));

  const stats: CollectorStats = {
    received: 0,
    duplicates: 0,
    rejected: 0,
    conflicts: 0,
    dropped: { oversize: 0, rateLimited: 0 },
  };
  const droppedCounter = (options.metrics ?? new MetricsRegistry()).counter(
    'veilgrid_dso_messages_dropped_total',
    "Messages dropped before any decoding, by reason: oversize (above the size cap) or rate-limited (past the meter's message budget).",
    ['reason'],
  );
  for (const reason of ['oversize', 'rate-limited']) droppedCounter.inc({ reason }, 0);
  const budgets = new MessageBudgets(options.budget);
  /** Meters whose budget ran dry, logged once per episode (a flood must not become a log flood). */
  const limitedMeters = new Set<string>();
  if (options.verifier) {
    stats.verified = 0;
    stats.keyCertificates = 0;
  }
  const waiters: Array<{ predicate: (s: CollectorStats) => boolean; resolve: (s: CollectorStats) => void }> = [];
  const snapshot = (): CollectorStats => ({ ...stats, dropped: { ...stats.dropped } });
  const settleWaiters = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].predicate(stats)) waiters.splice(i, 1)[0].resolve(snapshot());
    }
  };

  const reject = (topic: string, payload: Buffer, reason: string) => {
    stats.rejected++;
    emit('warn', 'reading_rejected', {
      topic,
      reason,
      bytes: payload.length,
      payloadHex:
        payload.subarray(0, PAYLOAD_LOG_BYTES).toString('hex') + (payload.length > PAYLOAD_LOG_BYTES ? '...' : ''),
    });
  };

  /**
   * Drops what must not be read: oversized messages, and messages of a meter whose budget is spent (the
   * meter id of the topic, which the broker's ACL ties to the sender's login). True when dropped.
   */
  const dropUnread = (topic: string, meterId: string, payload: Buffer): boolean => {
    if (payload.length > MAX_MESSAGE_PAYLOAD_BYTES) {
      stats.dropped.oversize++;
      droppedCounter.inc({ reason: 'oversize' });
      emit('warn', 'message_dropped', {
        topic,
        meterId,
        reason: 'oversize',
        bytes: payload.length,
        detail: `${payload.length} bytes, more than the ${MAX_MESSAGE_PAYLOAD_BYTES} a reading or key certificate may have: dropped unread`,
      });
      return true;
    }
    if (budgets.exhausted(meterId)) {
      stats.dropped.rateLimited++;
      droppedCounter.inc({ reason: 'rate-limited' });
      if (!limitedMeters.has(meterId)) {
        limitedMeters.add(meterId);
        emit('warn', 'message_dropped', {
          topic,
          meterId,
          reason: 'rate-limited',
          detail: `meter "${meterId}" sent more refused messages than its budget allows: its messages are dropped unread until the budget refills (counted on /metrics, logged once per episode)`,
        });
      }
      return true;
    }
    limitedMeters.delete(meterId);
    return false;
  };

  /** Key certificates the verifier refused (it counts them on /metrics; the budget needs them here). */
  let refusedKeyCertificates = 0;

  /**
   * Handles one message, charging its meter's budget when it was refused; throws only when the store
   * fails (then the message is not acknowledged).
   */
  const handle = (topic: string, payload: Buffer) => {
    for (const intake of options.intakes ?? []) {
      const intakeMeterId = intake.meterIdFromTopic(topic);
      if (intakeMeterId === undefined) continue;
      if (dropUnread(topic, intakeMeterId, payload)) return;
      if (intake.handle(intakeMeterId, new Uint8Array(payload.buffer, payload.byteOffset, payload.length)).refused)
        budgets.charge(intakeMeterId);
      return;
    }
    const meterId = meterIdFromReadingTopic(topic) ?? meterIdFromKeyCertificateTopic(topic) ?? topic;
    if (dropUnread(topic, meterId, payload)) return;
    const refusedBefore = stats.rejected + refusedKeyCertificates;
    read(topic, payload);
    if (stats.rejected + refusedKeyCertificates > refusedBefore) budgets.charge(meterId);
  };

  const read = (topic: string, payload: Buffer) => {
    const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.length);
    const verifier = options.verifier;
    const certificateMeterId = meterIdFromKeyCertificateTopic(topic);
    if (verifier && certificateMeterId !== undefined) {
      // The verifier logs and counts a refused certificate itself; a repeated one (retained, or
      // republished at the meter's boot) is stored once.
      const result = verifier.acceptKeyCertificate(certificateMeterId, bytes);
      if (!result.ok) refusedKeyCertificates++;
      else if (result.outcome === 'added') stats.keyCertificates = (stats.keyCertificates ?? 0) + 1;
      return;
    }
    const topicMeterId = meterIdFromReadingTopic(topic);
    if (topicMeterId === undefined)
      return reject(topic, payload, `"${topic}" is not a reading topic (veilgrid/meters/<meterId>/readings)`);
    let reading: Reading;
    if (verifier) {
      const result = verifier.verify({ topicMeterId, envelope: bytes });
      if (!result.ok) {
        stats.rejected++; // the verifier logged it, with its reason, and counted it on /metrics
        return;
      }
      stats.verified = (stats.verified ?? 0) + 1;
      reading = result.reading;
    } else {
      try {
        reading = decodeReading(bytes);
      } catch (err) {
        if (err instanceof ReadingFormatError) return reject(topic, payload, err.message);
        throw err;
      }
    }
    if (reading.meterId !== topicMeterId) {
      return reject(
        topic,
        payload,
        `the topic names meter "${topicMeterId}" but the reading is from meter "${reading.meterId}"`,
      );
    }
    const outcome = options.db.insert(reading);
    if (outcome === 'stored') stats.received++;
    else if (outcome === 'duplicate') stats.duplicates++;
    else {
      stats.conflicts++;
      emit('error', 'reading_conflict', {
        topic,
        reason: `meter "${reading.meterId}" sent seq ${reading.seq} again with different content; the first one is kept`,
        stored: options.db.get(reading.meterId, reading.seq),
        received: reading,
      });
    }
  };

  const clientOptions: IClientOptions = {
    protocolVersion: 4,
    clientId: options.clientId ?? options.username ?? `veilgrid-collector-${randomBytes(4).toString('hex')}`,
    clean: options.clientId === undefined,
    username: options.username,
    password: options.password,
    reconnectPeriod: 1000,
  };
  const client: MqttClient = mqtt.connect(options.brokerUrl, clientOptions);
  acknowledgeAfterHandling(client, options.brokerUrl, emit, handle, settleWaiters);

  try {
    await new Promise<void>((resolve, rejectStart) => {
      const onError = (err: Error) =>
        rejectStart(new Error(`collector cannot connect to ${options.brokerUrl}: ${err.message}`));
      client.once('error', onError);
      client.once('connect', () => {
        // Key certificates first: the retained ones arrive before any reading that needs them.
        const filters = [
          ...(options.verifier ? [KEY_CERTIFICATE_TOPIC_FILTER, READING_TOPIC_FILTER] : [READING_TOPIC_FILTER]),
          ...(options.intakes ?? []).map((i) => i.filter),
        ];
        client.subscribe(filters, { qos: 1 }, (err, granted) => {
          client.removeListener('error', onError);
          if (err)
            return rejectStart(new Error(`collector cannot subscribe to ${READING_TOPIC_FILTER}: ${err.message}`));
          const refused = filters.find((filter, i) => granted?.[i]?.qos !== 1);
          if (refused !== undefined) {
            return rejectStart(
              new Error(
                `broker did not grant ${refused} with QoS 1: readings could be lost; check the broker's ACL for the collector`,
              ),
            );
          }
          resolve();
        });
      });
    });
  } catch (err) {
    await client.endAsync(true);
    throw err;
  }
  emit('info', 'collector_subscribed', {
    brokerUrl: options.brokerUrl,
    filter: READING_TOPIC_FILTER,
    verified: options.verifier !== undefined,
    clientId: clientOptions.clientId,
  });

  return {
    stats,
    get connected() {
      return client.connected;
    },
    waitFor(predicate) {
      if (predicate(stats)) return Promise.resolve(snapshot());
      return new Promise((resolve) => waiters.push({ predicate, resolve }));
    },
    async publish(topic, payload, retain) {
      await client.publishAsync(topic, Buffer.from(payload), { qos: 1, retain: retain === true });
    },
    async close() {
      await client.endAsync();
    },
  };
}
