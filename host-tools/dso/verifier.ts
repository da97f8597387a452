// The DSO's check of a reading as it arrives from the broker: open the envelope sealed to the DSO, then
// walk the chain operator -> device certificate -> key certificate -> reading, and refuse replays.
//
//   envelope --ECDH(DSO private key, ephemeral key), HKDF, MAC, AES--> COSE_Sign1 (ES256, kid)
//   kid --> the meter's key certificate (registry) --> identity key --> device certificate --> operator
//
// Order of checks (the first failure is the reason): oversize (before any decoding), bad-envelope, bad-mac (nothing is trusted before
// the MAC), malformed (COSE form), unknown-meter / revoked / foreign-operator / bad-device-certificate
// (the meter named by the topic and its chain), unknown-key (kid), bad-signature, malformed (the
// reading itself, or a reading naming another meter than its topic), key-not-valid-for-interval,
// out-of-bounds (an interval not yet over by the DSO's clock, a seq far past the newest), replay.
// The signature is checked before the reading is decoded, so nothing unauthenticated is interpreted.
//
// A redelivered reading (same seq, same content) is accepted with duplicate: true; the ReadingStore
// de-duplicates it. ReadingVerifier wraps this with metrics and one JSON log line per rejection.
import { createECDH } from 'node:crypto';
import {
  CoseError,
  HEADER_KID,
  decodeSign1,
  sign1ToBeSigned,
  type DecodedSign1,
} from '../../firmware/src/protocol/cose.ts';
import { KID_BYTES } from '../../firmware/src/protocol/certificate.ts';
import { decodeEnvelope, openEnvelope, SealedEnvelopeError } from '../../firmware/src/protocol/sealed-reading.ts';
import { decodeReading, ReadingFormatError, type Reading } from '../../firmware/src/protocol/reading.ts';
import { nodeCryptoPrimitives, nodeSha256, nodeVerifyEs256 } from '../crypto/node-primitives.ts';
import { MAX_MESSAGE_PAYLOAD_BYTES } from './message-limits.ts';
import { MetricsRegistry, type Counter } from '../service/metrics.ts';
import { RegistryError, type MeterRegistry } from './registry.ts';
import { REJECTION_REASONS, type RejectionReason } from './rejection-reasons.ts';

export type VerificationResult =
  | { ok: true; reading: Reading; rotation: number; duplicate: boolean }
  | { ok: false; reason: RejectionReason; detail: string };

export interface SignedReadingMessage {
  /** The meter id in the topic the envelope arrived on (protocol/topics.ts meterIdFromReadingTopic). */
  topicMeterId: string;
  envelope: Uint8Array;
}

/**
 * A key certificate covers readings of intervals validFromInterval..validToInterval; a reading up to
 * this many intervals after validToInterval is still accepted, so readings signed just before a
 * rotation (and queued in the meter's outbox) are not lost if the meter's clock or rotation runs late.
 */
export const DEFAULT_KEY_OVERLAP_INTERVALS = 2;

/** Clock skew allowed between a meter (SNTP) and the DSO when a reading's interval must be over. */
export const CLOCK_TOLERANCE_SECONDS = 300;

export interface VerifyOptions {
  overlapIntervals?: number;
  /**
   * The grid's interval length. With it, a reading for an interval that has not ended by the DSO's
   * clock (plus CLOCK_TOLERANCE_SECONDS) is refused: a meter sends a reading once its interval is over,
   * and a shifted clock (SNTP is unauthenticated) must not let readings claim the future.
   */
  intervalSeconds?: number;
}

function reject(reason: RejectionReason, detail: string): VerificationResult {
  return { ok: false, reason, detail };
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/**
 * x of ECDH(dsoPrivateKey, publicKey): the 32 bytes the meter's SE computes on its side. node:crypto
 * (OpenSSL) rather than noble here: it is about ten times faster, and this runs for every reading.
 */
export function ecdhSharedX(dsoPrivateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(dsoPrivateKey);
  return new Uint8Array(ecdh.computeSecret(publicKey));
}

/**
 * Verifies one reading envelope against the registry and, when it is accepted, records its seq there
 * (replay state). dsoPrivateKey: the 32-byte P-256 key whose public half the meters seal readings to.
 */
export function verifySignedReading(
  registry: MeterRegistry,
  dsoPrivateKey: Uint8Array,
  message: SignedReadingMessage,
  nowMs = Date.now(),
  options: VerifyOptions = {},
): VerificationResult {
  const meterId = message.topicMeterId;
  if (message.envelope.length > MAX_MESSAGE_PAYLOAD_BYTES) {
    return reject(
      'oversize',
      `the envelope is ${message.envelope.length} bytes, more than the ${MAX_MESSAGE_PAYLOAD_BYTES} a reading may have: not read`,
    );
  }

  let plaintext: Uint8Array;
  try {
    const { ephemeralPublicKey } = decodeEnvelope(message.envelope);
    let shared: Uint8Array;
    try {
      shared = ecdhSharedX(dsoPrivateKey, ephemeralPublicKey);
    } catch (err) {
      return reject('bad-envelope', `the envelope's ephemeral key is not a point on P-256: ${(err as Error).message}`);
    }
    plaintext = openEnvelope(nodeCryptoPrimitives, shared, message.envelope);
  } catch (err) {
    if (err instanceof SealedEnvelopeError) return reject(err.reason, err.message);
    throw err;
  }

  let signed: DecodedSign1;
  try {
    signed = decodeSign1(plaintext);
  } catch (err) {
    if (err instanceof CoseError)
      return reject('malformed', `the envelope does not hold a signed reading: ${err.message}`);
    throw err;
  }
  const kid = signed.protectedHeader.get(HEADER_KID);
  if (!(kid instanceof Uint8Array) || kid.length !== KID_BYTES) {
    return reject(
      'malformed',
      `the signed reading has no ${KID_BYTES}-byte kid (label 4) in its protected header, so its key cannot be found`,
    );
  }

  const chain = registry.checkChain(meterId, nowMs);
  if (!chain.ok) return reject(chain.reason, chain.detail);

  const keyCertificate = registry.keyCertificateByKid(meterId, kid);
  if (!keyCertificate) {
    const known = registry.keyCertificates(meterId).map((k) => `${hex(k.kid)} (rotation ${k.rotation})`);
    return reject(
      'unknown-key',
      `meter "${meterId}" has no key certificate for kid ${hex(kid)}; known: ${known.length > 0 ? known.join(', ') : 'none'}`,
    );
  }
  if (
    !nodeVerifyEs256(keyCertificate.publicKey, sign1ToBeSigned(signed.protectedBytes, signed.payload), signed.signature)
  ) {
    return reject(
      'bad-signature',
      `the signature does not verify with meter "${meterId}"'s reading key ${hex(kid)} (rotation ${keyCertificate.rotation})`,
    );
  }

  let reading: Reading;
  try {
    reading = decodeReading(signed.payload);
  } catch (err) {
    if (err instanceof ReadingFormatError)
      return reject('malformed', `signed payload is not a reading: ${err.message}`);
    throw err;
  }
  if (reading.meterId !== meterId) {
    return reject(
      'malformed',
      `the topic names meter "${meterId}" but the signed reading is from meter "${reading.meterId}"`,
    );
  }

  const overlap = options.overlapIntervals ?? DEFAULT_KEY_OVERLAP_INTERVALS;
  if (
    reading.interval < keyCertificate.validFromInterval ||
    reading.interval > keyCertificate.validToInterval + overlap
  ) {
    return reject(
      'key-not-valid-for-interval',
      `reading seq ${reading.seq} is for interval ${reading.interval}, but key ${hex(kid)} (rotation ${keyCertificate.rotation}) is valid for intervals ${keyCertificate.validFromInterval}..${keyCertificate.validToInterval} (+${overlap} overlap)`,
    );
  }

  if (options.intervalSeconds) {
    const endsAt = (reading.interval + 1) * options.intervalSeconds;
    const latest = Math.floor(nowMs / 1000) + CLOCK_TOLERANCE_SECONDS;
    if (endsAt > latest) {
      return reject(
        'out-of-bounds',
        `reading seq ${reading.seq} is for interval ${reading.interval}, which ends at ${new Date(endsAt * 1000).toISOString()}, after the DSO's clock (${new Date(nowMs).toISOString()}) plus ${CLOCK_TOLERANCE_SECONDS} s`,
      );
    }
  }

  const acceptance = registry.acceptReading(meterId, keyCertificate.rotation, reading.seq, nodeSha256(signed.payload));
  if (acceptance.outcome === 'replay' || acceptance.outcome === 'out-of-bounds')
    return reject(acceptance.outcome, `meter "${meterId}": ${acceptance.detail}`);
  return { ok: true, reading, rotation: keyCertificate.rotation, duplicate: acceptance.outcome === 'duplicate' };
}

export type KeyCertificateResult =
  | { ok: true; rotation: number; outcome: 'added' | 'unchanged' }
  | { ok: false; reason: RejectionReason; detail: string };

/**
 * A key certificate that arrived on its own (the meter publishes one before first use of a new reading
 * key): checks the meter's chain is still good, then verifies and stores it (registry.addKeyCertificate).
 */
export function acceptKeyCertificate(
  registry: MeterRegistry,
  meterId: string,
  certBytes: Uint8Array,
  nowMs = Date.now(),
): KeyCertificateResult {
  if (certBytes.length > MAX_MESSAGE_PAYLOAD_BYTES) {
    return {
      ok: false,
      reason: 'oversize',
      detail: `the key certificate is ${certBytes.length} bytes, more than the ${MAX_MESSAGE_PAYLOAD_BYTES} one may have: not read`,
    };
  }
  const chain = registry.checkChain(meterId, nowMs);
  if (!chain.ok) return { ok: false, reason: chain.reason, detail: chain.detail };
  try {
    const { keyCertificate, outcome } = registry.addKeyCertificate(meterId, certBytes, nowMs);
    return { ok: true, rotation: keyCertificate.rotation, outcome };
  } catch (err) {
    if (err instanceof RegistryError) return { ok: false, reason: err.reason, detail: err.message };
    throw err;
  }
}

export interface ReadingVerifierOptions {
  registry: MeterRegistry;
  dsoPrivateKey: Uint8Array;
  /** Where the verifier's metrics go (served on /metrics). Default: a registry of its own. */
  metrics?: MetricsRegistry;
  /** Receives one JSON object per line (no newline). Default: written to stderr. */
  log?: (line: string) => void;
  overlapIntervals?: number;
  /** The grid's interval length, for the bound on readings from the future (VerifyOptions). */
  intervalSeconds?: number;
}

/** verifySignedReading and acceptKeyCertificate with counters on /metrics and a JSON log line per rejection. */
export class ReadingVerifier {
  readonly metrics: MetricsRegistry;
  private readonly registry: MeterRegistry;
  private readonly dsoPrivateKey: Uint8Array;
  private readonly log: (line: string) => void;
  private readonly overlapIntervals?: number;
  private readonly intervalSeconds?: number;
  private readonly verified: Counter;
  private readonly duplicates: Counter;
  private readonly rejected: Counter;
  private readonly keyCertificatesAccepted: Counter;
  private readonly keyCertificatesRejected: Counter;

  constructor(options: ReadingVerifierOptions) {
    this.registry = options.registry;
    this.dsoPrivateKey = options.dsoPrivateKey;
    this.log = options.log ?? ((line) => process.stderr.write(line + '\n'));
    this.overlapIntervals = options.overlapIntervals;
    this.intervalSeconds = options.intervalSeconds;
    const metrics = (this.metrics = options.metrics ?? new MetricsRegistry());
    this.verified = metrics.counter(
      'veilgrid_dso_readings_verified_total',
      'Readings that passed verification and were new.',
    );
    this.duplicates = metrics.counter(
      'veilgrid_dso_readings_duplicate_total',
      'Verified readings already accepted before (redeliveries), left to the reading store to de-duplicate.',
    );
    this.rejected = metrics.counter(
      'veilgrid_dso_readings_rejected_total',
      'Readings refused by the verifier, by reason.',
      ['reason'],
    );
    for (const reason of REJECTION_REASONS) this.rejected.inc({ reason }, 0);
    this.keyCertificatesAccepted = metrics.counter(
      'veilgrid_dso_key_certificates_accepted_total',
      'Key certificates (new reading keys) verified and stored.',
    );
    this.keyCertificatesRejected = metrics.counter(
      'veilgrid_dso_key_certificates_rejected_total',
      'Key certificates refused, by reason.',
      ['reason'],
    );
    metrics.gauge('veilgrid_dso_meters', 'Registered meters, by status.', ['status'], (gauge) => {
      const counts = this.registry.meterCounts();
      gauge.set(counts.active, { status: 'active' });
      gauge.set(counts.revoked, { status: 'revoked' });
    });
  }

  verify(message: SignedReadingMessage, nowMs = Date.now()): VerificationResult {
    const result = verifySignedReading(this.registry, this.dsoPrivateKey, message, nowMs, {
      overlapIntervals: this.overlapIntervals,
      intervalSeconds: this.intervalSeconds,
    });
    if (result.ok) {
      (result.duplicate ? this.duplicates : this.verified).inc();
    } else {
      this.rejected.inc({ reason: result.reason });
      this.warn('reading_rejected', message.topicMeterId, result.reason, result.detail);
    }
    return result;
  }

  acceptKeyCertificate(meterId: string, certBytes: Uint8Array, nowMs = Date.now()): KeyCertificateResult {
    const result = acceptKeyCertificate(this.registry, meterId, certBytes, nowMs);
    if (result.ok) {
      if (result.outcome === 'added') this.keyCertificatesAccepted.inc();
    } else {
      this.keyCertificatesRejected.inc({ reason: result.reason });
      this.warn('key_certificate_rejected', meterId, result.reason, result.detail);
    }
    return result;
  }

  private warn(event: string, meterId: string, reason: string, detail: string): void {
    this.log(
      JSON.stringify({
        time: new Date().toISOString(),
        level: 'warn',
        component: 'verifier',
        event,
        meterId,
        reason,
        detail,
      }),
    );
  }
}
