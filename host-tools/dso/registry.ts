// The DSO's registry of meters, in SQLite: which operators it trusts, each meter's device certificate
// (identity key, mix key, feeder, limits) and status, the key certificates its identity key attested for
// its rotating reading keys, and what it has accepted from each meter so far (for replay detection).
//
// Every certificate is verified before it is stored (operator: self-signed; device: by a trusted
// operator key; key: the meter's SE attests it with the identity key, firmware/src/keys/
// key-attestation.ts), and the verifier re-checks the device certificate against the operator keys trusted at the time of each reading (memoized), so withdrawing an operator's
// trust takes effect at once. Tables are prefixed "registry_", so the registry may share a database
// file (or handle) with the ReadingStore.
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { p256 } from '@noble/curves/nist.js';
import {
  CertificateFormatError,
  decodeDeviceCertificate,
  decodeKeyCertificate,
  decodeOperatorCertificate,
  kidOf,
  openSignedCertificate,
  type DeviceCertificate,
  type DeviceLimits,
  type OpenedCertificate,
} from '../../firmware/src/protocol/certificate.ts';
import { ALG_ATECC608_ATTESTED } from '../../firmware/src/protocol/cose.ts';
import { attestationMessage } from '../../firmware/src/protocol/key-attestation.ts';
import { readingSlotForRotation } from '../../firmware/src/protocol/slot-map.ts';
import { nodeSha256, nodeVerifyEs256 } from '../crypto/node-primitives.ts';
import type { RejectionReason } from './rejection-reasons.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export interface MessageBounds {
  maxRotationStep: number;
  maxValidityIntervals: number;
  maxSeqJump: number;
}

export const DEFAULT_MESSAGE_BOUNDS: MessageBounds = {
  maxRotationStep: 10,
  maxValidityIntervals: 100_000,
  maxSeqJump: 100_000,
};

/** Why the registry refused a certificate: reason is from the DSO's one list (rejection-reasons.ts). */
export class RegistryError extends VeilgridError {
  constructor(
    readonly reason: RejectionReason,
    message: string,
  ) {
    super('RegistryError', reason, message);
  }
}

export interface TrustedOperator {
  operatorId: string;
  /** kidOf(publicKey): how device certificates name the key that signed them. */
  kid: Uint8Array;
  publicKey: Uint8Array;
  /** Unix seconds. */
  notBefore: number;
  notAfter: number;
  certificate: Uint8Array;
  trustedAtMs: number;
}

export type MeterStatus = 'active' | 'revoked';

export interface MeterRecord {
  meterId: string;
  operatorId: string;
  /** The kid of the operator key that signed the device certificate. */
  operatorKid: Uint8Array;
  feeder: string;
  identityKey: Uint8Array;
  mixKey: Uint8Array;
  limits: DeviceLimits;
  /** Unix seconds, from the device certificate. */
  issuedAt: number;
  deviceCertificate: Uint8Array;
  status: MeterStatus;
  revokedReason?: string;
  revokedAtMs?: number;
  registeredAtMs: number;
}

export interface KeyCertificateRecord {
  meterId: string;
  rotation: number;
  publicKey: Uint8Array;
  /** kidOf(publicKey): the kid in the readings this key signs. */
  kid: Uint8Array;
  validFromInterval: number;
  validToInterval: number;
  certificate: Uint8Array;
  addedAtMs: number;
}

/** The newest reading accepted from a meter: later readings must have a higher seq. */
export interface ReplayState {
  rotation: number;
  seq: number;
}

/** new: first time this seq is accepted. duplicate: this seq was accepted with the same content before. */
export type ReadingAcceptance =
  | { outcome: 'new' | 'duplicate' }
  | { outcome: 'replay' | 'out-of-bounds'; detail: string };

export type ChainCheck =
  | { ok: true; meter: MeterRecord; operator: TrustedOperator }
  | { ok: false; reason: 'unknown-meter' | 'revoked' | 'foreign-operator' | 'bad-device-certificate'; detail: string };

export interface MeterRegistryOptions {
  /**
   * How many sequence numbers below the newest accepted one are remembered (with a digest of the
   * reading) so that a redelivered reading is told apart from a replayed or conflicting one. Older
   * sequence numbers are refused as replays. Default 256.
   */
  replayWindow?: number;
  /**
   * Bounds on what one signed message may claim (a stolen or forged key must not lock the genuine meter
   * out for good): a key certificate's rotation at most this many steps past the meter's highest
   * (default 10: rotations whose certificates were lost, forced ones), its validity at most this many
   * intervals (default 100,000: a day of the 1-second intervals the benches run, three years of 15-minute
   * ones), and a reading's seq at most this far past the newest accepted (default 100,000: three years
   * of 15-minute readings dropped behind a full outbox). Out-of-bounds messages are refused and change
   * nothing.
   */
  bounds?: Partial<MessageBounds>;
  /** Passed to SQLite when this registry opens the database file itself (default FULL). */
  synchronous?: 'FULL' | 'NORMAL';
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS registry_operators (
  kid BLOB PRIMARY KEY,
  operator_id TEXT NOT NULL,
  public_key BLOB NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  certificate BLOB NOT NULL,
  trusted_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_meters (
  meter_id TEXT PRIMARY KEY,
  operator_id TEXT NOT NULL,
  operator_kid BLOB NOT NULL,
  feeder TEXT NOT NULL,
  identity_key BLOB NOT NULL,
  mix_key BLOB NOT NULL,
  max_import_w INTEGER NOT NULL,
  max_export_w INTEGER NOT NULL,
  issued_at INTEGER NOT NULL,
  device_certificate BLOB NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  revoked_reason TEXT,
  revoked_at_ms INTEGER,
  registered_at_ms INTEGER NOT NULL,
  highest_rotation INTEGER,
  highest_seq INTEGER
);
CREATE TABLE IF NOT EXISTS registry_key_certificates (
  meter_id TEXT NOT NULL REFERENCES registry_meters (meter_id) ON DELETE CASCADE,
  rotation INTEGER NOT NULL,
  public_key BLOB NOT NULL,
  kid BLOB NOT NULL,
  valid_from_interval INTEGER NOT NULL,
  valid_to_interval INTEGER NOT NULL,
  certificate BLOB NOT NULL,
  added_at_ms INTEGER NOT NULL,
  PRIMARY KEY (meter_id, rotation)
);
CREATE INDEX IF NOT EXISTS registry_key_certificates_by_kid ON registry_key_certificates (meter_id, kid);
CREATE TABLE IF NOT EXISTS registry_accepted_readings (
  meter_id TEXT NOT NULL REFERENCES registry_meters (meter_id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  rotation INTEGER NOT NULL,
  digest BLOB NOT NULL,
  PRIMARY KEY (meter_id, seq)
) WITHOUT ROWID;
`;

interface MeterRow {
  meter_id: string;
  operator_id: string;
  operator_kid: Buffer;
  feeder: string;
  identity_key: Buffer;
  mix_key: Buffer;
  max_import_w: number;
  max_export_w: number;
  issued_at: number;
  device_certificate: Buffer;
  status: MeterStatus;
  revoked_reason: string | null;
  revoked_at_ms: number | null;
  registered_at_ms: number;
  highest_rotation: number | null;
  highest_seq: number | null;
}

interface OperatorRow {
  kid: Buffer;
  operator_id: string;
  public_key: Buffer;
  not_before: number;
  not_after: number;
  certificate: Buffer;
  trusted_at_ms: number;
}

interface KeyCertificateRow {
  meter_id: string;
  rotation: number;
  public_key: Buffer;
  kid: Buffer;
  valid_from_interval: number;
  valid_to_interval: number;
  certificate: Buffer;
  added_at_ms: number;
}

/** A plain Uint8Array (not a Buffer) holding a copy of b, so records compare equal to decoded bytes. */
function bytes(b: Buffer): Uint8Array {
  return new Uint8Array(b);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/** True when publicKey is a point on P-256 (not just 65 bytes starting 04). */
export function isValidP256Point(publicKey: Uint8Array): boolean {
  try {
    p256.Point.fromBytes(publicKey).assertValidity();
    return true;
  } catch {
    return false;
  }
}

/**
 * ES256 verification over a SHA-256 digest the caller computed. High-S signatures are accepted: the
 * ATECC608 does not normalize s, and ECDSA P-256 (unlike Bitcoin's use) does not require low s.
 */
function verifyOpened(opened: OpenedCertificate, publicKey: Uint8Array): boolean {
  return nodeVerifyEs256(publicKey, opened.toBeSigned, opened.signature);
}

/**
 * Does a signed certificate (a key certificate, an asset request) carry the identity key's attestation that
 * the meter's chip holds publicKey in keySlot (firmware/src/protocol/key-attestation.ts)?
 */
export function verifyAttested(
  opened: OpenedCertificate,
  identityKey: Uint8Array,
  keySlot: number,
  publicKey: Uint8Array,
): boolean {
  return nodeVerifyEs256(
    identityKey,
    attestationMessage(nodeSha256, nodeSha256(opened.toBeSigned), keySlot, publicKey),
    opened.signature,
  );
}

function open(certBytes: Uint8Array, what: string, alg?: number): OpenedCertificate {
  try {
    return openSignedCertificate(certBytes, alg);
  } catch (err) {
    if (err instanceof CertificateFormatError) throw new RegistryError('malformed', `${what}: ${err.message}`);
    throw err;
  }
}

function decodeAs<T>(decoder: (b: Uint8Array) => T, payload: Uint8Array, what: string): T {
  try {
    return decoder(payload);
  } catch (err) {
    if (err instanceof CertificateFormatError) throw new RegistryError('malformed', `${what}: ${err.message}`);
    throw err;
  }
}

function prepareStatements(db: Database.Database) {
  return {
    operatorByKid: db.prepare('SELECT * FROM registry_operators WHERE kid = ?'),
    insertOperator:
      db.prepare(`INSERT INTO registry_operators (kid, operator_id, public_key, not_before, not_after, certificate, trusted_at_ms)
      VALUES (?, ?, ?, ?, ?, ?, ?)`),
    meter: db.prepare('SELECT * FROM registry_meters WHERE meter_id = ?'),
    insertMeter:
      db.prepare(`INSERT INTO registry_meters (meter_id, operator_id, operator_kid, feeder, identity_key, mix_key, max_import_w, max_export_w,
      issued_at, device_certificate, status, registered_at_ms) VALUES
      (@meterId, @operatorId, @operatorKid, @feeder, @identityKey, @mixKey, @maxImportW, @maxExportW, @issuedAt, @deviceCertificate, 'active', @registeredAtMs)
      ON CONFLICT (meter_id) DO UPDATE SET operator_id = excluded.operator_id, operator_kid = excluded.operator_kid, feeder = excluded.feeder,
      identity_key = excluded.identity_key, mix_key = excluded.mix_key, max_import_w = excluded.max_import_w, max_export_w = excluded.max_export_w,
      issued_at = excluded.issued_at, device_certificate = excluded.device_certificate, status = 'active', revoked_reason = NULL,
      revoked_at_ms = NULL, registered_at_ms = excluded.registered_at_ms`),
    keyCertificates: db.prepare('SELECT * FROM registry_key_certificates WHERE meter_id = ? ORDER BY rotation'),
    keyCertificateByKid: db.prepare(
      'SELECT * FROM registry_key_certificates WHERE meter_id = ? AND kid = ? ORDER BY rotation DESC LIMIT 1',
    ),
    highestKeyRotation: db.prepare(
      'SELECT MAX(rotation) AS rotation FROM registry_key_certificates WHERE meter_id = ?',
    ),
    insertKeyCertificate:
      db.prepare(`INSERT INTO registry_key_certificates (meter_id, rotation, public_key, kid, valid_from_interval, valid_to_interval, certificate, added_at_ms)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
    acceptedReading: db.prepare('SELECT digest FROM registry_accepted_readings WHERE meter_id = ? AND seq = ?'),
    insertAcceptedReading: db.prepare(
      'INSERT INTO registry_accepted_readings (meter_id, seq, rotation, digest) VALUES (?, ?, ?, ?)',
    ),
    pruneAcceptedReadings: db.prepare('DELETE FROM registry_accepted_readings WHERE meter_id = ? AND seq < ?'),
    setHighest: db.prepare('UPDATE registry_meters SET highest_rotation = ?, highest_seq = ? WHERE meter_id = ?'),
  };
}

export class MeterRegistry {
  readonly db: Database.Database;
  private readonly ownsDatabase: boolean;
  private readonly replayWindow: number;
  private readonly bounds: MessageBounds;
  /** "operatorKid:sha256(deviceCertificate)" of device certificates whose signature was verified. */
  private readonly verifiedDeviceCertificates = new Set<string>();
  private readonly statements: ReturnType<typeof prepareStatements>;

  /** Opens (creating if needed) the database at path, or uses an open handle (e.g. a ReadingStore's db). */
  constructor(database: string | Database.Database, options: MeterRegistryOptions = {}) {
    this.ownsDatabase = typeof database === 'string';
    if (typeof database === 'string') {
      this.db = new Database(database);
      if (database !== ':memory:') this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    } else {
      this.db = database;
    }
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
    this.replayWindow = options.replayWindow ?? 256;
    this.bounds = { ...DEFAULT_MESSAGE_BOUNDS, ...options.bounds };
    if (!Number.isInteger(this.replayWindow) || this.replayWindow < 1)
      throw new Error(`replayWindow must be a whole number ≥ 1 (got ${options.replayWindow})`);
    this.statements = prepareStatements(this.db);
  }

  // --- operators ---------------------------------------------------------------------------------

  /**
   * Trusts an operator: certBytes is its self-signed OperatorCertificate (operator-cert.cbor). Idempotent.
   * An operator may have several trusted keys (a key rollover): each is its own entry, found by kid.
   * Throws RegistryError ('malformed', 'bad-operator-certificate').
   */
  trustOperator(certBytes: Uint8Array, nowMs = Date.now()): TrustedOperator {
    const opened = open(certBytes, 'operator certificate');
    const cert = decodeAs(decodeOperatorCertificate, opened.payload, 'operator certificate');
    if (!isValidP256Point(cert.publicKey))
      throw new RegistryError(
        'bad-operator-certificate',
        `operator certificate of "${cert.operatorId}": its public key is not a point on P-256`,
      );
    const kid = kidOf(nodeSha256, cert.publicKey);
    if (!sameBytes(kid, opened.kid))
      throw new RegistryError(
        'bad-operator-certificate',
        `operator certificate of "${cert.operatorId}" is not self-signed: its kid ${hex(opened.kid)} is not its own key's ${hex(kid)}`,
      );
    if (!verifyOpened(opened, cert.publicKey))
      throw new RegistryError(
        'bad-operator-certificate',
        `operator certificate of "${cert.operatorId}": the self-signature does not verify`,
      );
    const nowSeconds = Math.floor(nowMs / 1000);
    if (cert.notAfter < nowSeconds)
      throw new RegistryError(
        'bad-operator-certificate',
        `operator certificate of "${cert.operatorId}" expired at ${new Date(cert.notAfter * 1000).toISOString()}`,
      );
    const existing = this.operator(kid);
    if (existing) {
      if (sameBytes(existing.certificate, certBytes)) return existing;
      throw new RegistryError(
        'bad-operator-certificate',
        `a different certificate for operator key ${hex(kid)} ("${existing.operatorId}") is already trusted: distrust it first`,
      );
    }
    this.statements.insertOperator.run(
      kid,
      cert.operatorId,
      cert.publicKey,
      cert.notBefore,
      cert.notAfter,
      certBytes,
      nowMs,
    );
    return this.operator(kid)!;
  }

  /** Stops trusting an operator key (by kid) or every key of an operator (by id); returns how many. */
  distrustOperator(operator: string | Uint8Array): number {
    if (typeof operator === 'string')
      return this.db.prepare('DELETE FROM registry_operators WHERE operator_id = ?').run(operator).changes;
    return this.db.prepare('DELETE FROM registry_operators WHERE kid = ?').run(operator).changes;
  }

  operator(kid: Uint8Array): TrustedOperator | undefined {
    const row = this.statements.operatorByKid.get(kid) as OperatorRow | undefined;
    return row && operatorFromRow(row);
  }

  trustedOperators(): TrustedOperator[] {
    return (
      this.db.prepare('SELECT * FROM registry_operators ORDER BY operator_id, not_before').all() as OperatorRow[]
    ).map(operatorFromRow);
  }

  // --- meters ------------------------------------------------------------------------------------

  /**
   * Registers a meter from its DeviceCertificate, after verifying it against a trusted operator key.
   * Registering the same certificate again changes nothing ('unchanged'). A different certificate for a
   * registered meter id is refused ('meter-conflict') unless reprovision is set: then it replaces the old
   * one, reactivates the meter and drops its key certificates (they were signed by the old identity key);
   * the replay state is kept (the meter's seq keeps counting). Throws RegistryError ('malformed',
   * 'foreign-operator', 'bad-device-certificate', 'meter-conflict').
   */
  registerMeter(
    deviceCertBytes: Uint8Array,
    options: { reprovision?: boolean; nowMs?: number } = {},
  ): { meter: MeterRecord; outcome: 'registered' | 'unchanged' | 'reprovisioned' } {
    const nowMs = options.nowMs ?? Date.now();
    const opened = open(deviceCertBytes, 'device certificate');
    const cert = decodeAs(decodeDeviceCertificate, opened.payload, 'device certificate');
    const operator = this.operator(opened.kid);
    if (!operator)
      throw new RegistryError(
        'foreign-operator',
        `device certificate of meter "${cert.meterId}" is signed by operator key ${hex(opened.kid)}, which this DSO does not trust (its operator id says "${cert.operatorId}")`,
      );
    const problem = this.deviceCertificateProblem(operator, opened, cert);
    if (problem)
      throw new RegistryError('bad-device-certificate', `device certificate of meter "${cert.meterId}": ${problem}`);
    for (const [name, key] of [
      ['identityKey', cert.identityKey],
      ['mixKey', cert.mixKey],
    ] as const) {
      if (!isValidP256Point(key))
        throw new RegistryError(
          'bad-device-certificate',
          `device certificate of meter "${cert.meterId}": ${name} is not a point on P-256`,
        );
    }
    const existing = this.meter(cert.meterId);
    if (existing && sameBytes(existing.deviceCertificate, deviceCertBytes))
      return { meter: existing, outcome: 'unchanged' };
    if (existing && !options.reprovision) {
      throw new RegistryError(
        'meter-conflict',
        `meter "${cert.meterId}" is already registered with a different device certificate (issued ${new Date(existing.issuedAt * 1000).toISOString()}): re-provision it explicitly to replace it`,
      );
    }
    this.db.transaction(() => {
      if (existing) this.db.prepare('DELETE FROM registry_key_certificates WHERE meter_id = ?').run(cert.meterId);
      this.statements.insertMeter.run({
        meterId: cert.meterId,
        operatorId: cert.operatorId,
        operatorKid: opened.kid,
        feeder: cert.feeder,
        identityKey: cert.identityKey,
        mixKey: cert.mixKey,
        maxImportW: cert.limits.maxImportW,
        maxExportW: cert.limits.maxExportW,
        issuedAt: cert.issuedAt,
        deviceCertificate: deviceCertBytes,
        registeredAtMs: nowMs,
      });
    })();
    return { meter: this.meter(cert.meterId)!, outcome: existing ? 'reprovisioned' : 'registered' };
  }

  /** Why cert (opened from its COSE form) is not validly signed by operator, or undefined. Memoized. */
  private deviceCertificateProblem(
    operator: TrustedOperator,
    opened: OpenedCertificate,
    cert: DeviceCertificate,
  ): string | undefined {
    if (cert.operatorId !== operator.operatorId)
      return `it names operator "${cert.operatorId}" but is signed by the key of operator "${operator.operatorId}"`;
    if (cert.issuedAt < operator.notBefore || cert.issuedAt > operator.notAfter) {
      return `it was issued at ${new Date(cert.issuedAt * 1000).toISOString()}, outside the operator certificate's validity ${new Date(operator.notBefore * 1000).toISOString()} .. ${new Date(operator.notAfter * 1000).toISOString()}`;
    }
    const memo =
      hex(operator.kid) + ':' + createHash('sha256').update(opened.payload).update(opened.signature).digest('hex');
    if (this.verifiedDeviceCertificates.has(memo)) return undefined;
    if (!verifyOpened(opened, operator.publicKey))
      return `its signature does not verify with the key of operator "${operator.operatorId}" (${hex(operator.kid)})`;
    this.verifiedDeviceCertificates.add(memo);
    return undefined;
  }

  /**
   * The chain above a meter's key certificates, checked now: the meter is registered and active, the
   * operator key that signed its device certificate is still trusted and valid at nowMs, and that
   * signature verifies (memoized, so this costs no EC math after the first time).
   */
  checkChain(meterId: string, nowMs = Date.now()): ChainCheck {
    const meter = this.meter(meterId);
    if (!meter) return { ok: false, reason: 'unknown-meter', detail: `meter "${meterId}" is not registered` };
    if (meter.status === 'revoked')
      return {
        ok: false,
        reason: 'revoked',
        detail: `meter "${meterId}" was revoked at ${new Date(meter.revokedAtMs!).toISOString()}: ${meter.revokedReason}`,
      };
    const operator = this.operator(meter.operatorKid);
    if (!operator)
      return {
        ok: false,
        reason: 'foreign-operator',
        detail: `meter "${meterId}" was provisioned by operator "${meter.operatorId}" (key ${hex(meter.operatorKid)}), which this DSO no longer trusts`,
      };
    const nowSeconds = Math.floor(nowMs / 1000);
    if (nowSeconds < operator.notBefore || nowSeconds > operator.notAfter) {
      return {
        ok: false,
        reason: 'foreign-operator',
        detail: `the certificate of operator "${operator.operatorId}" (key ${hex(operator.kid)}) is not valid now (valid ${new Date(operator.notBefore * 1000).toISOString()} .. ${new Date(operator.notAfter * 1000).toISOString()})`,
      };
    }
    let opened: OpenedCertificate;
    let cert: DeviceCertificate;
    try {
      opened = openSignedCertificate(meter.deviceCertificate);
      cert = decodeDeviceCertificate(opened.payload);
    } catch (err) {
      return {
        ok: false,
        reason: 'bad-device-certificate',
        detail: `the stored device certificate of meter "${meterId}" cannot be read: ${(err as Error).message}`,
      };
    }
    const problem = this.deviceCertificateProblem(operator, opened, cert);
    if (problem)
      return {
        ok: false,
        reason: 'bad-device-certificate',
        detail: `device certificate of meter "${meterId}": ${problem}`,
      };
    return { ok: true, meter, operator };
  }

  /** Revokes a meter: its readings and key certificates are refused from now on. */
  revoke(meterId: string, reason: string, nowMs = Date.now()): MeterRecord {
    if (!reason) throw new Error('revoke needs a reason (it is logged with every refused reading)');
    // An already revoked meter keeps its first reason and time: that is what the audit trail needs.
    this.db
      .prepare(
        `UPDATE registry_meters SET status = 'revoked', revoked_reason = ?, revoked_at_ms = ? WHERE meter_id = ? AND status = 'active'`,
      )
      .run(reason, nowMs, meterId);
    const meter = this.meter(meterId);
    if (!meter) throw new RegistryError('unknown-meter', `cannot revoke meter "${meterId}": it is not registered`);
    return meter;
  }

  /** Deletes a meter and everything about it (e.g. to undo a provisioning that did not finish). */
  removeMeter(meterId: string): boolean {
    return this.db.prepare('DELETE FROM registry_meters WHERE meter_id = ?').run(meterId).changes === 1;
  }

  meter(meterId: string): MeterRecord | undefined {
    const row = this.statements.meter.get(meterId) as MeterRow | undefined;
    return row && meterFromRow(row);
  }

  meters(): MeterRecord[] {
    return (this.db.prepare('SELECT * FROM registry_meters ORDER BY meter_id').all() as MeterRow[]).map(meterFromRow);
  }

  /** How many meters are active and revoked. */
  meterCounts(): Record<MeterStatus, number> {
    const counts: Record<MeterStatus, number> = { active: 0, revoked: 0 };
    for (const row of this.db
      .prepare('SELECT status, COUNT(*) AS n FROM registry_meters GROUP BY status')
      .all() as Array<{ status: MeterStatus; n: number }>)
      counts[row.status] = row.n;
    return counts;
  }

  // --- key certificates --------------------------------------------------------------------------

  /**
   * Stores a KeyCertificate for a meter's new reading key after verifying it with the meter's identity
   * key. The same certificate again is 'unchanged'; otherwise its rotation must be higher than every
   * stored one ('replay' if not: an old certificate sent again, or the SE's counter did not advance).
   * Throws RegistryError ('malformed', 'unknown-meter', 'revoked', 'bad-signature', 'replay').
   */
  addKeyCertificate(
    meterId: string,
    certBytes: Uint8Array,
    nowMs = Date.now(),
  ): { keyCertificate: KeyCertificateRecord; outcome: 'added' | 'unchanged' } {
    const opened = open(certBytes, `key certificate for meter "${meterId}"`, ALG_ATECC608_ATTESTED);
    const cert = decodeAs(decodeKeyCertificate, opened.payload, `key certificate for meter "${meterId}"`);
    if (cert.meterId !== meterId)
      throw new RegistryError(
        'malformed',
        `key certificate arrived for meter "${meterId}" but names meter "${cert.meterId}"`,
      );
    const meter = this.meter(meterId);
    if (!meter)
      throw new RegistryError('unknown-meter', `key certificate for meter "${meterId}", which is not registered`);
    if (meter.status === 'revoked')
      throw new RegistryError(
        'revoked',
        `key certificate for meter "${meterId}", which was revoked: ${meter.revokedReason}`,
      );
    if (!sameBytes(opened.kid, kidOf(nodeSha256, meter.identityKey))) {
      throw new RegistryError(
        'bad-signature',
        `key certificate for meter "${meterId}" is signed by key ${hex(opened.kid)}, not by the meter's identity key (${hex(kidOf(nodeSha256, meter.identityKey))})`,
      );
    }
    if (!isValidP256Point(cert.publicKey))
      throw new RegistryError(
        'malformed',
        `key certificate for meter "${meterId}" (rotation ${cert.rotation}): its public key is not a point on P-256`,
      );
    if (!verifyAttested(opened, meter.identityKey, readingSlotForRotation(cert.rotation), cert.publicKey)) {
      throw new RegistryError(
        'bad-signature',
        `key certificate for meter "${meterId}" (rotation ${cert.rotation}): it is not the secure element's attestation, by the meter's identity key, of a key it holds in slot ${readingSlotForRotation(cert.rotation)}`,
      );
    }
    const sameRotation = this.keyCertificates(meterId).find((k) => k.rotation === cert.rotation);
    if (sameRotation && sameBytes(sameRotation.certificate, certBytes))
      return { keyCertificate: sameRotation, outcome: 'unchanged' };
    const highest = (this.statements.highestKeyRotation.get(meterId) as { rotation: number | null }).rotation;
    if (highest !== null && cert.rotation <= highest) {
      throw new RegistryError(
        'replay',
        `key certificate for meter "${meterId}" has rotation ${cert.rotation}, but rotation ${highest} is already registered: rotations must increase`,
      );
    }
    if (highest !== null && cert.rotation > highest + this.bounds.maxRotationStep) {
      throw new RegistryError(
        'out-of-bounds',
        `key certificate for meter "${meterId}" has rotation ${cert.rotation}, more than ${this.bounds.maxRotationStep} past the registered rotation ${highest}`,
      );
    }
    const validity = cert.validToInterval - cert.validFromInterval + 1;
    if (validity > this.bounds.maxValidityIntervals) {
      throw new RegistryError(
        'out-of-bounds',
        `key certificate for meter "${meterId}" (rotation ${cert.rotation}) is valid for ${validity} intervals (${cert.validFromInterval}..${cert.validToInterval}), more than the ${this.bounds.maxValidityIntervals} allowed`,
      );
    }
    const kid = kidOf(nodeSha256, cert.publicKey);
    this.statements.insertKeyCertificate.run(
      meterId,
      cert.rotation,
      cert.publicKey,
      kid,
      cert.validFromInterval,
      cert.validToInterval,
      certBytes,
      nowMs,
    );
    return {
      keyCertificate: this.keyCertificates(meterId).find((k) => k.rotation === cert.rotation)!,
      outcome: 'added',
    };
  }

  /** A meter's key certificates, oldest rotation first. */
  keyCertificates(meterId: string): KeyCertificateRecord[] {
    return (this.statements.keyCertificates.all(meterId) as KeyCertificateRow[]).map(keyCertificateFromRow);
  }

  /** The meter's key certificate for the reading key with this kid (the newest, if kids ever collide). */
  keyCertificateByKid(meterId: string, kid: Uint8Array): KeyCertificateRecord | undefined {
    const row = this.statements.keyCertificateByKid.get(meterId, kid) as KeyCertificateRow | undefined;
    return row && keyCertificateFromRow(row);
  }

  // --- replay state ------------------------------------------------------------------------------

  /** The newest (highest seq) reading accepted from the meter, or undefined before the first. */
  replayState(meterId: string): ReplayState | undefined {
    const row = this.statements.meter.get(meterId) as MeterRow | undefined;
    if (!row || row.highest_seq === null) return undefined;
    return { rotation: row.highest_rotation!, seq: row.highest_seq };
  }

  /**
   * Records a verified reading (its seq, the rotation of the key that signed it, and a digest of its
   * bytes) unless it is a replay:
   * - seq above the newest accepted: 'new', unless signed with an older rotation than an accepted
   *   reading (the meter never goes back to a retired key) — then 'replay';
   * - seq within the replay window below it: 'duplicate' when that seq was accepted with the same
   *   digest (a redelivery: the ReadingStore de-duplicates it), 'replay' when with a different one, and
   *   'new' when it was never accepted (a late reading filling a gap);
   * - seq further back: 'replay' (too old to tell apart);
   * - seq more than bounds.maxSeqJump past the newest: 'out-of-bounds' (nothing recorded).
   */
  acceptReading(meterId: string, rotation: number, seq: number, digest: Uint8Array): ReadingAcceptance {
    return this.db.transaction((): ReadingAcceptance => {
      const row = this.statements.meter.get(meterId) as MeterRow | undefined;
      if (!row) throw new RegistryError('unknown-meter', `meter "${meterId}" is not registered`);
      const highestSeq = row.highest_seq;
      const highestRotation = row.highest_rotation;
      if (highestSeq !== null && seq > highestSeq + this.bounds.maxSeqJump) {
        return {
          outcome: 'out-of-bounds',
          detail: `seq ${seq} is more than ${this.bounds.maxSeqJump} past the newest accepted seq ${highestSeq}`,
        };
      }
      if (highestSeq === null || highestRotation === null || seq > highestSeq) {
        if (highestRotation !== null && rotation < highestRotation) {
          return {
            outcome: 'replay',
            detail: `seq ${seq} is signed with the key of rotation ${rotation}, but the meter already signed seq ${highestSeq} with rotation ${highestRotation}`,
          };
        }
        this.statements.insertAcceptedReading.run(meterId, seq, rotation, digest);
        this.statements.pruneAcceptedReadings.run(meterId, seq - this.replayWindow);
        this.statements.setHighest.run(rotation, seq, meterId);
        return { outcome: 'new' };
      }
      if (seq < highestSeq - this.replayWindow) {
        return {
          outcome: 'replay',
          detail: `seq ${seq} is older than the replay window (newest accepted seq ${highestSeq}, window ${this.replayWindow})`,
        };
      }
      const accepted = this.statements.acceptedReading.get(meterId, seq) as { digest: Buffer } | undefined;
      if (!accepted) {
        this.statements.insertAcceptedReading.run(meterId, seq, rotation, digest);
        return { outcome: 'new' };
      }
      if (sameBytes(accepted.digest, digest)) return { outcome: 'duplicate' };
      return {
        outcome: 'replay',
        detail: `seq ${seq} was already accepted with different content (newest accepted seq ${highestSeq})`,
      };
    })();
  }

  /** Forgets what was accepted from a meter (e.g. a replaced meter whose seq starts again). */
  resetReplayState(meterId: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM registry_accepted_readings WHERE meter_id = ?').run(meterId);
      this.statements.setHighest.run(null, null, meterId);
    })();
  }

  /** Closes the database if this registry opened it (a shared handle is left to its owner). */
  close(): void {
    if (this.ownsDatabase) this.db.close();
  }
}

function operatorFromRow(row: OperatorRow): TrustedOperator {
  return {
    operatorId: row.operator_id,
    kid: bytes(row.kid),
    publicKey: bytes(row.public_key),
    notBefore: row.not_before,
    notAfter: row.not_after,
    certificate: bytes(row.certificate),
    trustedAtMs: row.trusted_at_ms,
  };
}

function meterFromRow(row: MeterRow): MeterRecord {
  const meter: MeterRecord = {
    meterId: row.meter_id,
    operatorId: row.operator_id,
    operatorKid: bytes(row.operator_kid),
    feeder: row.feeder,
    identityKey: bytes(row.identity_key),
    mixKey: bytes(row.mix_key),
    limits: { maxImportW: row.max_import_w, maxExportW: row.max_export_w },
    issuedAt: row.issued_at,
    deviceCertificate: bytes(row.device_certificate),
    status: row.status,
    registeredAtMs: row.registered_at_ms,
  };
  if (row.revoked_reason !== null) meter.revokedReason = row.revoked_reason;
  if (row.revoked_at_ms !== null) meter.revokedAtMs = row.revoked_at_ms;
  return meter;
}

function keyCertificateFromRow(row: KeyCertificateRow): KeyCertificateRecord {
  return {
    meterId: row.meter_id,
    rotation: row.rotation,
    publicKey: bytes(row.public_key),
    kid: bytes(row.kid),
    validFromInterval: row.valid_from_interval,
    validToInterval: row.valid_to_interval,
    certificate: bytes(row.certificate),
    addedAtMs: row.added_at_ms,
  };
}
