// Asset requests as a meter makes them (certificate kind 4, attested by the identity key over the trading key,
// sealed to the DSO), and a DSO issuer over an in-process market with a registry of test meters and a clock the
// test moves. The identity key is a noble key standing in for the secure element (verifier-fixtures.ts), or the
// emulated ATECC608 (asset-issuance.test.ts).
import { attestedCertificate, encodeAssetRequest, type DeviceLimits } from '../../firmware/src/protocol/certificate.ts';
import { attestationMessage } from '../../firmware/src/protocol/key-attestation.ts';
import { TRADING_RING } from '../../firmware/src/protocol/slot-map.ts';
import { keccak256 } from 'viem';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import type { TradingKey } from '../../host-tools/ledger/trading-key.ts';
import { AssetIssuer, type IssuanceOptions } from '../../host-tools/dso/asset-issuance.ts';
import { AssetStore } from '../../host-tools/dso/asset-store.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { openDevelopmentMarket, type DevelopmentMarket } from '../../host-tools/ledger/development-market.ts';
import { decodeAssetReply, type AssetReply } from '../../firmware/src/protocol/asset-reply.ts';
import {
  keyPair,
  makeMeter,
  makeOperator,
  seal,
  type KeyPair,
  type TestMeter,
  type TestOperator,
} from '../unit/verifier-fixtures.ts';

/** Polls until check() holds (real time), or throws with what describe() says. */
export async function until(check: () => boolean, what: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const INTERVAL_SECONDS = 900;
/** The market's interval when a fixture starts; requests go to the next one. */
export const START_INTERVAL = 10;
export const DELIVERY = START_INTERVAL + 1;
export const CONSUMPTION_PRICE = 300;
export const PRODUCTION_PRICE = 100;
/** 7 kW export, 11 kW import over 900 s: 1,750 and 2,750 Wh. */
export const LIMITS: DeviceLimits = { maxImportW: 11_000, maxExportW: 7_000 };

/** A meter's trading key (a noble key standing in for its SE slot) as the market's test helpers sign with it. */
export function asTradingKey(pair: KeyPair): TradingKey {
  return {
    publicKey: { x: pair.publicKey.subarray(1, 33), y: pair.publicKey.subarray(33, 65) },
    keyId: keccak256(pair.publicKey.subarray(1)),
    sign: (message) => pair.signDigest(nodeSha256(message)),
  };
}

export interface RequestFields {
  interval: number;
  productionWh?: number;
  consumptionWh?: number;
  slot?: number;
  /** Who attests (default the meter's identity key). */
  signer?: Pick<KeyPair, 'publicKey' | 'signDigest'>;
  /** The slot the attestation covers (default: the request's slot). */
  attestedSlot?: number;
  meterId?: string;
  tradingKey?: KeyPair;
}

/** An asset request's signed (attested) bytes, as the meter's SE makes them. */
export function attestedRequest(meter: TestMeter, fields: RequestFields): { signed: Uint8Array; tradingKey: KeyPair } {
  const tradingKey = fields.tradingKey ?? keyPair();
  const slot = fields.slot ?? TRADING_RING[0];
  const payload = encodeAssetRequest({
    meterId: fields.meterId ?? meter.meterId,
    tradingKey: tradingKey.publicKey,
    slot,
    interval: fields.interval,
    productionWh: fields.productionWh ?? 0,
    consumptionWh: fields.consumptionWh ?? 0,
  });
  const signer = fields.signer ?? meter.identity;
  const signed = attestedCertificate(
    nodeSha256,
    (nonce) =>
      signer.signDigest(
        nodeSha256(attestationMessage(nodeSha256, nonce, fields.attestedSlot ?? slot, tradingKey.publicKey)),
      ),
    signer.publicKey,
    payload,
  );
  return { signed, tradingKey };
}

export interface IssuanceFixture {
  dev: DevelopmentMarket;
  operator: TestOperator;
  registry: MeterRegistry;
  store: AssetStore;
  issuer: AssetIssuer;
  dsoKey: KeyPair;
  /** Replies published, in order, decoded. */
  replies: Array<{ meterId: string; reply: AssetReply }>;
  /** The DSO's clock: ms since the epoch; starts 5 s into START_INTERVAL. */
  clock: { ms: number };
  meter(meterId: string, options?: { feeder?: string; limits?: DeviceLimits }): TestMeter;
  /** Seals signed to the DSO and hands it to the issuer as from topicMeterId. */
  send(topicMeterId: string, signed: Uint8Array): ReturnType<AssetIssuer['handleRequest']>;
  /** A request from meter for fields.interval, sent; returns the outcome and the trading key. */
  request(
    meter: TestMeter,
    fields: RequestFields,
  ): { outcome: ReturnType<AssetIssuer['handleRequest']>; tradingKey: KeyPair };
  /** Moves the DSO's clock to the issuance time of interval d. */
  toIssueTime(interval: number): void;
  /** A new issuer over a new store on the same database file (a restarted DSO). */
  restart(options?: IssuanceOptions): AssetIssuer;
  close(): Promise<void>;
}

export async function issuanceFixture(
  options: IssuanceOptions & { assetsDb?: string; dev?: DevelopmentMarket } = {},
): Promise<IssuanceFixture> {
  const dev =
    options.dev ??
    (await openDevelopmentMarket({
      intervalSeconds: INTERVAL_SECONDS,
      startInterval: START_INTERVAL,
      prices: { consumption: CONSUMPTION_PRICE, production: PRODUCTION_PRICE },
      feeder: { id: 7, production: 10n ** 12n, consumption: 10n ** 12n },
    }));
  const operator = makeOperator();
  const registry = new MeterRegistry(':memory:');
  registry.trustOperator(operator.certificate);
  const dsoKey = keyPair();
  const replies: IssuanceFixture['replies'] = [];
  const clock = { ms: (dev.market.deployment.genesisTime + START_INTERVAL * INTERVAL_SECONDS + 5) * 1000 };
  const publish = async (topic: string, payload: Uint8Array) => {
    replies.push({ meterId: topic.split('/')[2], reply: decodeAssetReply(payload) });
  };
  let store = new AssetStore(options.assetsDb ?? ':memory:');
  const make = (s: AssetStore, extra: IssuanceOptions = {}) =>
    new AssetIssuer({
      registry,
      store: s,
      market: dev.market,
      dso: dev.dso,
      dsoPrivateKey: dsoKey.privateKey,
      publish,
      now: () => clock.ms,
      log: () => {},
      ...options,
      ...extra,
    });
  let issuer = make(store);
  const fixture: IssuanceFixture = {
    dev,
    operator,
    registry,
    get store() {
      return store;
    },
    get issuer() {
      return issuer;
    },
    dsoKey,
    replies,
    clock,
    meter(meterId, meterOptions = {}) {
      const meter = makeMeter(operator, meterId, { limits: LIMITS, ...meterOptions });
      registry.registerMeter(meter.deviceCertificate);
      return meter;
    },
    send(topicMeterId, signed) {
      return issuer.handleRequest(topicMeterId, seal(dsoKey.publicKey, signed));
    },
    request(meter, fields) {
      const { signed, tradingKey } = attestedRequest(meter, fields);
      return { outcome: fixture.send(meter.meterId, signed), tradingKey };
    },
    toIssueTime(interval) {
      clock.ms = issuer.issueAtMs(interval);
    },
    restart(extra = {}) {
      if (!options.assetsDb) throw new Error('restart needs a database file');
      store = new AssetStore(options.assetsDb);
      issuer = make(store, extra);
      return issuer;
    },
    async close() {
      await issuer.close();
      store.close();
      registry.close();
    },
  };
  return fixture;
}
