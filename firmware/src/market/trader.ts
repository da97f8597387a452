// The meter as a trader (docs/trading.md). Market interval d's gate closes at its start,
// genesisTime + d * intervalSeconds (protocol/market-info.ts, retained on MARKET_INFO_TOPIC); the meter
// trades for d during d - 1:
//
//   1. shortly after d - 1 starts (once the reading of the interval just closed is in the forecast): the
//      forecast for d, a plan (ask a surplus, bid for a deficit, or nothing), a fresh trading key
//      (keys/trading-keys.ts), and the asset request for the plan's Wh, attested and sealed to the DSO
//      (asset-request.ts), QoS 1 on assetRequestTopic. Every meter requests every interval, zero Wh when it
//      has nothing to trade, so the DSO's traffic shows nothing about who trades;
//   2. the DSO's reply on assetReplyTopic: refused (a reason, logged) or issued; issued with a plan: the offer
//      (protocol/offer.ts) for the market the info names, signed by the trading key in the SE, recorded, and
//      published QoS 1 on offerTopic;
//   3. the bridge's receipts (RECEIPT_TOPIC): accepted on chain, or refused with a reason. None by half-way
//      from sending to gate closure: the same offer once more through the same topic (the bridge drops a
//      duplicate, the chain refuses a replay, so a second copy costs nothing);
//      with the mixnet (vg.config mixnet.enabled; options.mix) the signed offer goes to the mix node instead of
//      offerTopic, which sends it in the window's next round and again each round until a receipt settles it;
//   4. after gate closure, the clearing broadcast (CLEARING_TOPIC): the offer's fill, paid and received.
//
// A step that fails (an SE error, a full outbox) is tried again 5 s later while the gate is open. After a reboot
// in d's window the recorded key goes on (keys/trading-keys.ts): unsigned, its request is sent again (the DSO
// answers the same request again as it answered the first; 'already-requested' is taken as no verdict); signed,
// the offer is watched and resent once if no receipt comes, never signed again.
//
// Receipts and clearing results of every meter reach every meter; each message is scanned for the offer's
// digest first and decoded only when it is there, so other meters' traffic is never decoded. Broadcasts
// are read at QoS 0 (a missed receipt costs the one resend; nothing queues at the broker for a meter that is
// away), the DSO's reply at QoS 1 (the broker keeps it across an outage, and it is acknowledged only after
// its handler signed and recorded the offer, so a power cut in between brings it again).
//
// SE commands per interval: asset request 7 (GenKey, the attestation 4, the seal 2), offer 3 (Random, Nonce,
// Sign); 10 when it offers, 7 when not; the identity public key once per boot; a request sent again 6.

import { EARLIEST_VALID_EPOCH } from '../metering/meter.ts';
import type { Clock } from '../platform/clock.ts';
import { decodeAssetReply, type AssetReply } from '../protocol/asset-reply.ts';
import { uncompressedPoint } from '../protocol/crypto/p256-point.ts';
import type { SealPrimitives } from '../protocol/sealed-reading.ts';
import {
  decodeClearing,
  decodeReceipt,
  findFill,
  findReceipt,
  reasonName,
  REASON_BRIDGE_DUPLICATE,
  type AcceptedOffer,
  type Amount,
  type RefusedOffer,
} from '../protocol/market-broadcast.ts';
import { decodeMarketInfo, marketIntervalAt, type MarketInfo } from '../protocol/market-info.ts';
import { encodeOffer, encodeOfferMessage, SIDE_ASK, SIDE_BID } from '../protocol/offer.ts';
import type { Reading } from '../protocol/reading.ts';
import { IDENTITY_SLOT } from '../protocol/slot-map.ts';
import {
  assetReplyTopic,
  assetRequestTopic,
  CLEARING_TOPIC,
  MARKET_INFO_TOPIC,
  offerTopic,
  RECEIPT_TOPIC,
} from '../protocol/topics.ts';
import type { SecureElement } from '../se/secure-element.ts';
import type { TradingKey, TradingKeys } from '../keys/trading-keys.ts';
import { sealedAssetRequest } from './asset-request.ts';
import type { Forecast } from './forecast.ts';
import { planOffer, SIDE_NONE } from './offer-plan.ts';

const CLOCK_RETRY_MS = 5000;
/** A failed step (an SE error, a full outbox) is tried again after this long, while the gate is open. */
const RETRY_MS = 5000;
/** Offers whose clearing the meter still waits for, at most (one per interval: the newest few). */
const MAX_WATCHED = 3;

/** Where signed offers go with the mixnet on, instead of offerTopic (mixnet/mix-node.ts). */
export interface OfferCarrier {
  /** The market's clock, each time the market info changes it: the mixnet's rounds follow it. */
  setMarketClock(clock: { genesisTime: number; intervalSeconds: number }): void;
  /** The signed offer message of `interval`: sent each round of its window until settled. */
  carry(interval: number, message: Uint8Array): void;
  /** Its receipt came (accepted or refused): not sent again. */
  settle(interval: number): void;
}

/** The MQTT client's publish and subscribe (mqtt/client.ts). */
export interface TraderMqtt {
  isConnected(): boolean;
  publish(topic: string, payload: Uint8Array, qos: 0 | 1, retain?: boolean): boolean;
  subscribe(filter: string, qos: 0 | 1, onMessage: (topic: string, payload: Uint8Array) => void): void;
}

export interface TraderOptions {
  meterId: string;
  se: SecureElement;
  keys: TradingKeys;
  forecast: Forecast;
  /** Share of the DSO's price spread the meter keeps as margin (market/offer-plan.ts). */
  priceMarginPercent: number;
  /** 65 bytes 04||x||y: asset requests are sealed to it. */
  dsoPublicKey: Uint8Array;
  primitives: SealPrimitives;
  clock: Clock;
  mqtt: TraderMqtt;
  /** The mixnet's sender (vg.config mixnet.enabled): offers go through it, never on offerTopic. */
  mix?: OfferCarrier;
  log: (message: string) => void;
}

/** What the trader did since boot (counts). */
export interface TraderStats {
  requests: number;
  issued: number;
  refused: number;
  offers: number;
  resent: number;
  accepted: number;
  rejected: number;
  fills: number;
  filledWh: number;
}

interface Watched {
  interval: number;
  digest: Uint8Array;
}

/** Whether `needle` occurs in `haystack` (a broadcast scanned for an offer digest before decoding it). */
export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0];
  const last = haystack.length - needle.length;
  for (let i = 0; i <= last; i++) {
    if (haystack[i] !== first) continue;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
  }
  return false;
}

function amountText(value: Amount): string {
  return typeof value === 'number' ? '' + value : 'more than 2^53';
}

function errorText(e: unknown): string {
  const message = e ? (e as Error).message : undefined;
  return message ? message : String(e);
}

export class Trader {
  declare readonly stats: TraderStats;
  private declare readonly o: TraderOptions;
  private declare info: MarketInfo | null;
  private declare timer: number | null;
  private declare identityPublicKey: Uint8Array | null;
  /** The offer of the interval being traded, until its receipt. */
  private declare pending: Watched | null;
  private declare resendTimer: number | null;
  private declare retryTimer: number | null;
  /** Intervals (in this boot) whose asset request left, whose assets the DSO issued, whose offer was signed, and sent. */
  private declare requested: number;
  private declare issued: number;
  private declare signed: number;
  private declare offered: number;
  /** The interval for which the meter said it waits for the broker (said once). */
  private declare waiting: number;
  /** Offers whose fill the meter waits for. */
  private declare watched: Watched[];

  constructor(options: TraderOptions) {
    this.o = options;
    this.stats = {
      requests: 0,
      issued: 0,
      refused: 0,
      offers: 0,
      resent: 0,
      accepted: 0,
      rejected: 0,
      fills: 0,
      filledWh: 0,
    };
    this.info = null;
    this.timer = null;
    this.identityPublicKey = null;
    this.pending = null;
    this.resendTimer = null;
    this.retryTimer = null;
    this.requested = -1;
    this.issued = -1;
    this.signed = -1;
    this.offered = -1;
    this.waiting = -1;
    this.watched = [];
  }

  /** Restores the trading key and subscribes; trading starts once the market info arrives. */
  start(): void {
    const self = this;
    const o = this.o;
    o.keys.restore();
    o.mqtt.subscribe(MARKET_INFO_TOPIC, 0, function (topic, payload) {
      self.onMarketInfo(payload);
    });
    o.mqtt.subscribe(assetReplyTopic(o.meterId), 1, function (topic, payload) {
      self.onReply(payload);
    });
    o.mqtt.subscribe(RECEIPT_TOPIC, 0, function (topic, payload) {
      self.onReceipt(payload);
    });
    o.mqtt.subscribe(CLEARING_TOPIC, 0, function (topic, payload) {
      self.onClearing(payload);
    });
  }

  /** A closed metering interval of `seconds`: into the forecast. */
  observe(reading: Reading, seconds: number): void {
    this.o.forecast.observe(reading.interval * seconds, seconds, reading.importWh, reading.exportWh, reading.flags);
  }

  private gateClosure(interval: number): number {
    const info = this.info as MarketInfo;
    return info.genesisTime + interval * info.intervalSeconds;
  }

  private onMarketInfo(payload: Uint8Array): void {
    let info: MarketInfo;
    try {
      info = decodeMarketInfo(payload);
    } catch (e) {
      this.o.log('market: market info not understood: ' + errorText(e));
      return;
    }
    const old = this.info;
    this.info = info;
    if (old && old.genesisTime === info.genesisTime && old.intervalSeconds === info.intervalSeconds) return;
    if (this.o.mix) this.o.mix.setMarketClock(info);
    this.o.log(
      'market: ' +
        info.domain.market +
        ' on chain ' +
        info.domain.chainId +
        ', ' +
        info.intervalSeconds +
        ' s intervals, prices ' +
        info.productionPrice +
        '..' +
        info.consumptionPrice,
    );
    this.schedule();
  }

  /** Trades for the next interval now (unless done), and sets the timer for the window after. */
  private schedule(): void {
    const self = this;
    const o = this.o;
    const info = this.info as MarketInfo;
    if (this.timer !== null) o.clock.clearTimeout(this.timer);
    const now = o.clock.now();
    let waitMs = CLOCK_RETRY_MS;
    if (now >= EARLIEST_VALID_EPOCH) {
      const d = marketIntervalAt(info, now) + 1;
      this.trade(d);
      // The next window opens at d's gate closure; start a little after it, once the meter has closed and
      // signed its reading of the interval that just ended (a tenth of an interval, at most 5 s).
      waitMs = (this.gateClosure(d) - now + Math.min(5, info.intervalSeconds / 10)) * 1000;
    }
    this.timer = o.clock.setTimeout(
      function () {
        self.timer = null;
        self.schedule();
      },
      Math.max(1, Math.ceil(waitMs)),
    );
  }

  private trade(d: number): void {
    const o = this.o;
    const info = this.info as MarketInfo;
    let key = o.keys.current();
    if (key && key.interval > d) {
      o.log(
        'market: the newest trading key is for interval ' +
          key.interval +
          ', after ' +
          d +
          ' (the clock went back?): not trading',
      );
      return;
    }
    if (!key || key.interval < d) {
      // Off the broker: no new key and no request to wait in the outbox (where it would take a reading's room
      // through an outage and reach the DSO too late); tried again every few seconds while d's gate is open.
      if (!o.mqtt.isConnected()) {
        if (this.waiting !== d) o.log('market: interval ' + d + ': waiting for the broker');
        this.waiting = d;
        this.retryLater(d);
        return;
      }
      // A signed offer of the interval whose gate just closed (recorded before a reboot): watch for its fill.
      if (key && key.interval === d - 1 && key.signature && !this.watching(d - 1))
        this.watch(d - 1, o.primitives.sha256(this.offerBytes(key)));
      if (this.pending && this.pending.interval < d) {
        o.log('market: no receipt for the offer of interval ' + this.pending.interval + ' before its gate closed');
        this.stopPending();
      }
      try {
        key = o.keys.create(
          d,
          planOffer(o.forecast.surplusWh(this.gateClosure(d), info.intervalSeconds), info, o.priceMarginPercent),
        );
      } catch (e) {
        this.failed(d, e);
        return;
      }
    }
    // After a reboot in d's window the same key and plan go on.
    this.advance(key);
  }

  /**
   * Takes the interval's key one step on: its asset request sent (again after a reboot, where it may or may
   * not have left: the DSO answers the same request again as the first), its offer made once the
   * assets are issued, a signed offer watched. A step that fails (the SE, a full outbox) is tried again.
   */
  private advance(key: TradingKey): void {
    const o = this.o;
    try {
      if (!key.signature && this.requested !== key.interval) {
        if (!this.identityPublicKey) this.identityPublicKey = uncompressedPoint(o.se.publicKey(IDENTITY_SLOT));
        const request = sealedAssetRequest(o.se, o.primitives, this.identityPublicKey, o.dsoPublicKey, {
          meterId: o.meterId,
          tradingKey: key.publicKey,
          slot: key.slot,
          interval: key.interval,
          productionWh: key.side === SIDE_ASK ? key.wh : 0,
          consumptionWh: key.side === SIDE_BID ? key.wh : 0,
        });
        o.mqtt.publish(assetRequestTopic(o.meterId), request, 1);
        this.requested = key.interval;
        this.stats.requests++;
        o.log(
          'market: interval ' +
            key.interval +
            ': asset request sent (' +
            (key.side === SIDE_NONE
              ? 'nothing to trade'
              : (key.side === SIDE_ASK ? 'ask ' : 'bid ') + key.wh + ' Wh at ' + key.limitPrice) +
            ', key in slot ' +
            key.slot +
            ')',
        );
      }
      if (!key.signature && this.issued === key.interval && key.side !== SIDE_NONE) {
        o.keys.recordOffer(key, o.se.sign(key.slot, o.primitives.sha256(this.offerBytes(key))));
        this.signed = key.interval;
        key = o.keys.current() as TradingKey;
      }
      if (!key.signature) return;
      const bytes = this.offerBytes(key);
      // Signed in this boot: sent now. Signed before a reboot: it may have left; sent again only if no receipt
      // comes; through the mixnet at once, where a round sends one packet whether it carries the offer or not.
      if ((this.signed === key.interval || o.mix) && this.offered !== key.interval) {
        this.publishOffer(bytes);
        this.offered = key.interval;
        this.stats.offers++;
      }
      if (!this.pending || this.pending.interval !== key.interval) this.watchOffer(key, o.primitives.sha256(bytes));
    } catch (e) {
      this.failed(key.interval, e);
    }
  }

  /** A step for interval d failed: said, and tried again in a few seconds while d's gate is open. */
  private failed(d: number, e: unknown): void {
    const again = this.o.clock.now() + RETRY_MS / 1000 < this.gateClosure(d);
    this.o.log('market: interval ' + d + ': ' + errorText(e) + (again ? ' -- trying again' : ''));
    if (again) this.retryLater(d);
  }

  private retryLater(d: number): void {
    const self = this;
    const o = this.o;
    if (this.retryTimer !== null || o.clock.now() + RETRY_MS / 1000 >= this.gateClosure(d)) return;
    this.retryTimer = o.clock.setTimeout(function () {
      self.retryTimer = null;
      const key = o.keys.current();
      if (key && key.interval === d) self.advance(key);
      else self.trade(d);
    }, RETRY_MS);
  }

  private onReply(payload: Uint8Array): void {
    const o = this.o;
    let reply: AssetReply;
    try {
      reply = decodeAssetReply(payload);
    } catch (e) {
      o.log('market: asset reply not understood: ' + errorText(e));
      return;
    }
    const key = o.keys.current();
    if (!key || reply.interval !== key.interval) {
      o.log(
        'market: asset reply for interval ' +
          reply.interval +
          ' ignored (trading ' +
          (key ? key.interval : 'none') +
          ')',
      );
      return;
    }
    if (!reply.issued) {
      // A request sent again after a reboot: the DSO kept the first, whose answer stands.
      if (reply.reason === 'already-requested') return;
      this.stats.refused++;
      o.log('market: interval ' + key.interval + ': the DSO refused the assets: ' + reply.reason);
      return;
    }
    this.stats.issued++;
    this.issued = key.interval;
    if (key.signature || key.side === SIDE_NONE || !this.info) return;
    if (o.clock.now() >= this.gateClosure(key.interval)) {
      o.log('market: interval ' + key.interval + ': assets issued after its gate closed: no offer');
      return;
    }
    this.advance(key);
  }

  /** The 113 signed bytes of the key's offer (one offer per key: seq 0). */
  private offerBytes(key: TradingKey): Uint8Array {
    return encodeOffer((this.info as MarketInfo).domain, {
      side: key.side === SIDE_ASK ? 'ask' : 'bid',
      interval: key.interval,
      wh: key.wh,
      limitPrice: key.limitPrice,
      seq: 0,
      key: { x: key.publicKey.subarray(1, 33), y: key.publicKey.subarray(33, 65) },
    });
  }

  private publishOffer(bytes: Uint8Array): void {
    const o = this.o;
    const key = o.keys.current() as TradingKey;
    const message = encodeOfferMessage(bytes, key.signature as Uint8Array);
    if (o.mix) o.mix.carry(key.interval, message);
    else o.mqtt.publish(offerTopic(o.meterId), message, 1);
  }

  /**
   * Waits for the signed offer's receipt and its fill, resending once half-way to gate closure on the direct
   * path (the mix node resends by itself, every round until settled).
   */
  private watchOffer(key: TradingKey, digest: Uint8Array): void {
    const self = this;
    const o = this.o;
    this.stopPending();
    const pending = { interval: key.interval, digest: digest };
    this.pending = pending;
    this.watch(key.interval, digest);
    if (o.mix) return;
    const now = o.clock.now();
    this.resendTimer = o.clock.setTimeout(
      function () {
        self.resendTimer = null;
        const current = o.keys.current();
        if (self.pending !== pending || !current || current.interval !== pending.interval || !self.info) return;
        try {
          self.publishOffer(self.offerBytes(current));
          self.stats.resent++;
          o.log('market: interval ' + pending.interval + ': no receipt yet, offer sent again');
        } catch (e) {
          o.log('market: interval ' + pending.interval + ': cannot send the offer again: ' + errorText(e));
        }
      },
      Math.max(1, Math.ceil(((this.gateClosure(key.interval) - now) / 2) * 1000)),
    );
  }

  private stopPending(): void {
    if (this.pending && this.o.mix) this.o.mix.settle(this.pending.interval);
    if (this.resendTimer !== null) this.o.clock.clearTimeout(this.resendTimer);
    this.resendTimer = null;
    this.pending = null;
  }

  private watching(interval: number): boolean {
    for (let i = 0; i < this.watched.length; i++) if (this.watched[i].interval === interval) return true;
    return false;
  }

  private watch(interval: number, digest: Uint8Array): void {
    if (this.watching(interval)) return;
    this.watched.push({ interval: interval, digest: digest });
    if (this.watched.length > MAX_WATCHED) this.watched.shift();
  }

  private onReceipt(payload: Uint8Array): void {
    const o = this.o;
    const pending = this.pending;
    if (!pending || !containsBytes(payload, pending.digest)) return;
    let found: AcceptedOffer | RefusedOffer | undefined;
    try {
      found = findReceipt(decodeReceipt(payload), pending.digest);
    } catch (e) {
      o.log('market: receipt not understood: ' + errorText(e));
      return;
    }
    if (!found) return;
    const accepted = (found as AcceptedOffer).index !== undefined;
    const reason = (found as RefusedOffer).reason;
    if (accepted) {
      this.stats.accepted++;
      o.log(
        'market: interval ' + pending.interval + ': offer on chain (book index ' + (found as AcceptedOffer).index + ')',
      );
    } else if (reason === REASON_BRIDGE_DUPLICATE) {
      o.log('market: interval ' + pending.interval + ': the bridge already had the offer');
    } else {
      this.stats.rejected++;
      o.log('market: interval ' + pending.interval + ': offer refused: ' + reasonName(reason) + ' (' + reason + ')');
    }
    this.stopPending();
  }

  private onClearing(payload: Uint8Array): void {
    const o = this.o;
    for (let i = 0; i < this.watched.length; i++) {
      const w = this.watched[i];
      if (!containsBytes(payload, w.digest)) continue;
      try {
        const part = decodeClearing(payload);
        const fill = findFill(part, w.digest);
        if (!fill || part.interval !== w.interval) continue;
        this.watched.splice(i, 1);
        this.stats.fills++;
        this.stats.filledWh += fill.fillWh;
        o.log(
          'market: interval ' +
            w.interval +
            ' cleared at ' +
            part.price +
            ': ' +
            fill.fillWh +
            ' Wh filled, paid ' +
            amountText(fill.paid) +
            ', received ' +
            amountText(fill.received),
        );
      } catch (e) {
        o.log('market: clearing result not understood: ' + errorText(e));
      }
      return;
    }
  }
}
