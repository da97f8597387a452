// The meter's rotating reading keys (docs/reading-keys.md): slots 1 and 2 of the secure element take turns.
// Each rotation takes the next value of the SE's monotonic counter 0 as its number r, makes a new
// private key in slot readingSlotForRotation(r) (GenKey: the key never leaves the chip), has the chip
// attest it with the identity key (slot 0) in a KeyCertificate (protocol/key-attestation.ts), records it in Storage, and hands the certificate
// to `publishCertificate` (QoS 1, retained, through the outbox) -- all before the key signs anything.
// The outbox is first-in first-out, so the DSO always receives a certificate before the readings
// signed with its key.
//
// Validity. A key is certified for the intervals validFrom..validFrom+n-1, n = rotationSeconds /
// intervalSeconds rounded up (at least 1). Rotation is lazy: the key for a reading is looked up by the
// reading's interval, and a reading past the current key's validTo starts a rotation with validFrom =
// that interval. So readings queued before a rotation (or published late) are signed by the key whose
// certificate covers their interval. Overlap: the previous key stays in its slot until the rotation
// after next overwrites it, and keeps signing readings for intervals before the new key's validFrom
// (a forced rotation, vgRotateKeys, starts the new key at the current interval, while the just-closed
// interval's reading may still be waiting). On the DSO's side the verifier accepts a reading up to
// DEFAULT_KEY_OVERLAP_INTERVALS (2) intervals past its key's validTo, for readings signed late.
//
// Power cuts. State = the SE's counter 0 (the rotation number, monotonic, in the chip) + one record
// per rotation named "vg.rk<r mod 2>" (main.ts keeps them on raw flash, persist/named-records.ts). A
// rotation writes the name of its own parity, so the record of the rotation before it is kept: a cut
// while writing leaves that record intact and the new one failing the ring's record check (the one
// power-safe record format, persist/power-safe-record.ts). Restore takes the record whose rotation
// equals the counter. If there is none (cut after the counter step, before the record was complete),
// the rotation is done again with a fresh counter value: a rotation number is never reused with a
// different key. At every boot the current certificate is published again (retained, the DSO stores
// it once), which covers a cut between writing the record and queueing the certificate.
//
// SE commands: restore 2 (counter read, identity public key); a rotation 6 (counter increment,
// GenKey, and the attestation: Random, Nonce, GenKey digest, Sign internal).

import { equalBytes } from '../protocol/crypto/bytes.ts';
import { uncompressedPoint } from '../protocol/crypto/p256-point.ts';
import type { Sha256 } from '../protocol/crypto/sha256.ts';
import type { SecureElement } from '../se/secure-element.ts';
import { attestedCertificate, encodeKeyCertificate, kidOf } from '../protocol/certificate.ts';
import { decode, encode, type CborValue } from '../protocol/cbor.ts';
import { bytesToByteString, byteStringToBytes } from '../protocol/byte-string.ts';
import { IDENTITY_SLOT, ROTATION_COUNTER, readingSlotForRotation } from '../protocol/slot-map.ts';
import { VeilgridError } from '../protocol/veilgrid-error.ts';

/** Default rotation period: one day. */
export const DEFAULT_ROTATION_SECONDS = 86400;
export const KEY_RECORD_BASE_NAME = 'vg.rk';
/** 3: CBOR (1 was CRC-32 + JSON, 2 plain JSON: too big for two in a 1 KB page). */
const RECORD_FORMAT = 3;

/** One reading key as the meter uses it. */
export interface ReadingKey {
  rotation: number;
  slot: number;
  /** 65 bytes, uncompressed. */
  publicKey: Uint8Array;
  /** kidOf(publicKey): the kid in every reading this key signs. */
  kid: Uint8Array;
  validFromInterval: number;
  validToInterval: number;
  /** The signed KeyCertificate (COSE_Sign1 by the identity key), as published. */
  certificate: Uint8Array;
}

/**
 * What the keys need of a record store: read and write by name, a write all or nothing across a power
 * cut (persist/named-records.ts, whose records persist/power-safe-record.ts frames and checks).
 */
export interface KeyRecordStorage {
  read(name: string): string | undefined;
  write(name: string, data: string): boolean;
}

export interface ReadingKeysOptions {
  se: SecureElement;
  storage: KeyRecordStorage;
  sha256: Sha256;
  meterId: string;
  intervalSeconds: number;
  rotationSeconds: number;
  /** Stores a key certificate for sending before returning (QoS 1, retained); throws if it cannot. */
  publishCertificate: (certificate: Uint8Array) => void;
  log: (message: string) => void;
}

export class ReadingKeyError extends VeilgridError {
  constructor(message: string) {
    super('ReadingKeyError', 'reading-key', message);
  }
}

/** The Storage file of a rotation's record. */
export function keyRecordName(rotation: number): string {
  return KEY_RECORD_BASE_NAME + (rotation % 2);
}

/**
 * A key record: CBOR [format, rotation, validFrom, validTo, public key, certificate], about 270 bytes, so
 * the records of both slots fit one flash page of the smallest board (1 KB) in a NamedRecords snapshot.
 */
function encodeRecord(key: ReadingKey): string {
  return bytesToByteString(
    encode([RECORD_FORMAT, key.rotation, key.validFromInterval, key.validToInterval, key.publicKey, key.certificate]),
  );
}

/** The key in a record, or undefined if the record is missing or not one of ours. */
function decodeRecord(sha256: Sha256, text: string | undefined): ReadingKey | undefined {
  if (!text) return undefined;
  let raw: CborValue;
  try {
    raw = decode(byteStringToBytes(text));
  } catch (_e) {
    return undefined;
  }
  if (
    !Array.isArray(raw) ||
    raw.length !== 6 ||
    raw[0] !== RECORD_FORMAT ||
    typeof raw[1] !== 'number' ||
    typeof raw[2] !== 'number' ||
    typeof raw[3] !== 'number'
  )
    return undefined;
  const publicKey = raw[4];
  const certificate = raw[5];
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 65 || !(certificate instanceof Uint8Array))
    return undefined;
  return {
    rotation: raw[1],
    slot: readingSlotForRotation(raw[1]),
    publicKey: publicKey,
    kid: kidOf(sha256, publicKey),
    validFromInterval: raw[2],
    validToInterval: raw[3],
    certificate: certificate,
  };
}

export class ReadingKeys {
  private declare readonly options: ReadingKeysOptions;
  private declare readonly periodIntervals: number;
  private declare identityPublicKey: Uint8Array | null;
  private declare currentKey: ReadingKey | null;
  private declare previousKey: ReadingKey | null;
  /** A key made and recorded whose certificate the outbox refused (full): adopted once it takes it. */
  private declare pendingKey: ReadingKey | null;

  constructor(options: ReadingKeysOptions) {
    this.options = options;
    if (!(options.rotationSeconds > 0) || !(options.intervalSeconds > 0)) {
      throw new ReadingKeyError(
        'reading keys: rotationSeconds and intervalSeconds must be positive (got ' +
          options.rotationSeconds +
          ', ' +
          options.intervalSeconds +
          ')',
      );
    }
    this.periodIntervals = Math.max(1, Math.ceil(options.rotationSeconds / options.intervalSeconds));
    this.identityPublicKey = null;
    this.currentKey = null;
    this.previousKey = null;
    this.pendingKey = null;
  }

  /** Intervals one key is certified for. */
  validityIntervals(): number {
    return this.periodIntervals;
  }

  /**
   * Loads the current key from the SE counter and the key records, and queues its certificate again.
   * Returns the current key, or null when there is none yet (the first keyFor makes one).
   */
  restore(): ReadingKey | null {
    const o = this.options;
    const counter = o.se.counter(ROTATION_COUNTER, false);
    const a = decodeRecord(o.sha256, o.storage.read(keyRecordName(counter)));
    const b = counter > 0 ? decodeRecord(o.sha256, o.storage.read(keyRecordName(counter + 1))) : undefined;
    this.currentKey = a && a.rotation === counter ? a : null;
    this.previousKey = this.currentKey && b && b.rotation === counter - 1 ? b : null;
    if (this.currentKey) {
      try {
        o.publishCertificate(this.currentKey.certificate);
      } catch (e) {
        // It was queued when the key was made; this copy only covers a cut right after the record.
        o.log('keys: cannot queue the current key certificate again: ' + ((e as Error).message || e));
      }
      o.log(
        'keys: reading key rotation ' +
          counter +
          ' (slot ' +
          this.currentKey.slot +
          '), intervals ' +
          this.currentKey.validFromInterval +
          '..' +
          this.currentKey.validToInterval,
      );
    } else if (counter > 0) {
      o.log(
        'keys: no complete record of rotation ' +
          counter +
          ' (a power cut during a rotation?); the next reading starts a new one',
      );
    }
    return this.currentKey;
  }

  current(): ReadingKey | null {
    return this.currentKey;
  }

  previous(): ReadingKey | null {
    return this.previousKey;
  }

  /**
   * The key that signs a reading for `interval`: the current key if it covers it (rotating first when
   * the interval is past it), the previous key for an interval before the current key's validFrom.
   */
  keyFor(interval: number): ReadingKey {
    if (this.pendingKey) this.adopt(this.pendingKey);
    const current = this.currentKey;
    if (!current || interval > current.validToInterval) return this.rotate(interval);
    if (interval >= current.validFromInterval) return current;
    const previous = this.previousKey;
    if (previous && interval >= previous.validFromInterval && interval <= previous.validToInterval) return previous;
    this.options.log(
      'keys: no key is certified for interval ' +
        interval +
        ' (current key from ' +
        current.validFromInterval +
        '); signing with the current key',
    );
    return current;
  }

  /**
   * A new reading key certified from validFromInterval: counter step, GenKey, certificate signed by the
   * identity key, record written, certificate queued. Throws (SecureElementError, ReadingKeyError, the
   * outbox's error) and leaves the current key in use when any step fails.
   */
  rotate(validFromInterval: number): ReadingKey {
    const o = this.options;
    const se = o.se;
    if (!this.identityPublicKey) this.identityPublicKey = uncompressedPoint(se.publicKey(IDENTITY_SLOT));
    const rotation = se.counter(ROTATION_COUNTER, true);
    const slot = readingSlotForRotation(rotation);
    const publicKey = uncompressedPoint(se.genKey(slot));
    const validToInterval = validFromInterval + this.periodIntervals - 1;
    const payload = encodeKeyCertificate({
      meterId: o.meterId,
      publicKey: publicKey,
      validFromInterval: validFromInterval,
      validToInterval: validToInterval,
      rotation: rotation,
    });
    // The identity key certifies only what the chip attests: that it holds this key in this slot.
    const certificate = attestedCertificate(
      o.sha256,
      function (nonce) {
        const attested = se.attestKey(IDENTITY_SLOT, slot, nonce);
        if (!equalBytes(uncompressedPoint(attested.publicKey), publicKey)) {
          throw new ReadingKeyError(
            'keys: the secure element attested a different key in slot ' +
              slot +
              ' than GenKey made; rotation ' +
              rotation +
              ' not used',
          );
        }
        return attested.signature;
      },
      this.identityPublicKey,
      payload,
    );
    const key: ReadingKey = {
      rotation: rotation,
      slot: slot,
      publicKey: publicKey,
      kid: kidOf(o.sha256, publicKey),
      validFromInterval: validFromInterval,
      validToInterval: validToInterval,
      certificate: certificate,
    };
    if (!o.storage.write(keyRecordName(rotation), encodeRecord(key))) {
      throw new ReadingKeyError(
        'keys: cannot write ' + keyRecordName(rotation) + ' (Storage full?); rotation ' + rotation + ' not used',
      );
    }
    this.pendingKey = key;
    this.adopt(key);
    return key;
  }

  /**
   * Queues a recorded key's certificate and makes the key current. If the outbox refuses it, the key
   * stays pending (no further counter step or GenKey while the outbox is full) and this throws.
   */
  private adopt(key: ReadingKey): void {
    this.options.publishCertificate(key.certificate);
    this.pendingKey = null;
    // The key in the slot just overwritten (rotation - 2) is gone; the one before stays as the overlap.
    this.previousKey = this.currentKey && this.currentKey.rotation === key.rotation - 1 ? this.currentKey : null;
    this.currentKey = key;
    this.options.log(
      'keys: rotated to reading key rotation ' +
        key.rotation +
        ' (slot ' +
        key.slot +
        '), intervals ' +
        key.validFromInterval +
        '..' +
        key.validToInterval,
    );
  }
}
