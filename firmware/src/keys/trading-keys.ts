// The meter's trading keys (docs/trading.md, docs/secure-element.md "Trading keys"): a fresh P-256 key for
// every delivery interval it trades in, made by GenKey inside the secure element in the next slot of the
// trading ring (protocol/slot-map.ts TRADING_RING, nextTradingSlot: 11 slots taken in turn, so each slot's
// EEPROM is rewritten once every 11 intervals). The private key never leaves the chip; the chip signs the
// interval's offer with it (Sign external) and the identity key attests it in the asset request.
//
// Power cuts. One record, "vg.tk" (on the raw-flash NamedRecords ring that also holds the reading keys' records),
// names the newest key: [format, interval, slot, public key, side, wh, limit price, offer signature or null].
// It is written after GenKey and before the key is used or shown to anyone (the asset request naming it is
// published after the record), and written again once the interval's offer is signed. So after a reboot:
//   - the record's interval is the one being traded: the same key, its plan and, if made, its offer go on
//     (a key is used for one interval only, and the key of an offer in flight is not lost);
//   - a later interval: GenKey in nextTradingSlot(record's slot), so the slot of the newest recorded key is never
//     overwritten by the next interval's key; a cut between that GenKey and its record leaves the old record,
//     and the next try makes a key in that same next slot again, which nobody has seen.
// A record's write is all or nothing (persist/power-safe-record.ts), so a cut leaves the previous record.
//
// SE commands: a new key 1 (GenKey); restore 0.

import { decode, encode, type CborValue } from '../protocol/cbor.ts';
import { uncompressedPoint } from '../protocol/crypto/p256-point.ts';
import { TRADING_RING, nextTradingSlot } from '../protocol/slot-map.ts';
import { VeilgridError } from '../protocol/veilgrid-error.ts';
import { bytesToByteString, byteStringToBytes } from '../protocol/byte-string.ts';
import type { SecureElement } from '../se/secure-element.ts';
import type { KeyRecordStorage } from './reading-keys.ts';

export const TRADING_KEY_RECORD = 'vg.tk';
const RECORD_FORMAT = 1;

/** What the meter plans to offer with a key: side (0 none, 1 ask, 2 bid), Wh and limit price. */
export interface TradePlan {
  side: number;
  wh: number;
  limitPrice: number;
}

/** One interval's trading key as recorded. */
export interface TradingKey extends TradePlan {
  /** The delivery interval (market interval number) it trades in, and only that one. */
  interval: number;
  slot: number;
  /** 65 bytes, 04 || x || y. */
  publicKey: Uint8Array;
  /** The signature r || s of the interval's offer once the SE made it; null before. */
  signature: Uint8Array | null;
}

export interface TradingKeysOptions {
  se: SecureElement;
  storage: KeyRecordStorage;
  log: (message: string) => void;
}

export class TradingKeyError extends VeilgridError {
  constructor(message: string) {
    super('TradingKeyError', 'trading-key', message);
  }
}

function encodeRecord(key: TradingKey): string {
  return bytesToByteString(
    encode([RECORD_FORMAT, key.interval, key.slot, key.publicKey, key.side, key.wh, key.limitPrice, key.signature]),
  );
}

/** The key in a record, or null if the record is missing or not one of ours. */
function decodeRecord(text: string | undefined): TradingKey | null {
  if (!text) return null;
  let raw: CborValue;
  try {
    raw = decode(byteStringToBytes(text));
  } catch (_e) {
    return null;
  }
  if (!Array.isArray(raw) || raw.length !== 8 || raw[0] !== RECORD_FORMAT) return null;
  for (let i = 1; i < 7; i++) if (i !== 3 && typeof raw[i] !== 'number') return null;
  const publicKey = raw[3];
  const signature = raw[7];
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 65 || TRADING_RING.indexOf(raw[2] as number) < 0)
    return null;
  if (signature !== null && !(signature instanceof Uint8Array && signature.length === 64)) return null;
  return {
    interval: raw[1] as number,
    slot: raw[2] as number,
    publicKey: publicKey,
    side: raw[4] as number,
    wh: raw[5] as number,
    limitPrice: raw[6] as number,
    signature: signature as Uint8Array | null,
  };
}

export class TradingKeys {
  private declare readonly options: TradingKeysOptions;
  private declare key: TradingKey | null;

  constructor(options: TradingKeysOptions) {
    this.options = options;
    this.key = null;
  }

  /** The newest recorded key, from the record store (no SE command). */
  restore(): TradingKey | null {
    this.key = decodeRecord(this.options.storage.read(TRADING_KEY_RECORD));
    if (this.key)
      this.options.log(
        'market: trading key for interval ' +
          this.key.interval +
          ' in slot ' +
          this.key.slot +
          (this.key.signature ? ', offer signed' : ''),
      );
    return this.key;
  }

  /** The newest key made (or restored), or null. */
  current(): TradingKey | null {
    return this.key;
  }

  /**
   * A new key for `interval` with its plan: GenKey in the next trading slot, then the record. Throws
   * (TradingKeyError, SecureElementError) and keeps the current key when `interval` is not after the
   * current key's, or a step fails; the key must not be used then.
   */
  create(interval: number, plan: TradePlan): TradingKey {
    const current = this.key;
    if (current && interval <= current.interval) {
      throw new TradingKeyError(
        'market: interval ' +
          interval +
          ' already had its trading key (the newest is for interval ' +
          current.interval +
          '): a key trades in one interval only',
      );
    }
    const slot = current ? nextTradingSlot(current.slot) : TRADING_RING[0];
    const key: TradingKey = {
      interval: interval,
      slot: slot,
      publicKey: uncompressedPoint(this.options.se.genKey(slot)),
      side: plan.side,
      wh: plan.wh,
      limitPrice: plan.limitPrice,
      signature: null,
    };
    this.write(key);
    this.key = key;
    return key;
  }

  /** Records the signature of the key's offer (the key must be the current one). Throws if it cannot be written. */
  recordOffer(key: TradingKey, signature: Uint8Array): void {
    if (key !== this.key)
      throw new TradingKeyError(
        'market: the key for interval ' + key.interval + ' is no longer the current trading key',
      );
    const signed: TradingKey = {
      interval: key.interval,
      slot: key.slot,
      publicKey: key.publicKey,
      side: key.side,
      wh: key.wh,
      limitPrice: key.limitPrice,
      signature: signature,
    };
    this.write(signed);
    this.key = signed;
  }

  private write(key: TradingKey): void {
    if (!this.options.storage.write(TRADING_KEY_RECORD, encodeRecord(key))) {
      throw new TradingKeyError(
        'market: cannot write ' +
          TRADING_KEY_RECORD +
          ' (the records ring is full?); the key for interval ' +
          key.interval +
          ' is not used',
      );
    }
  }
}
