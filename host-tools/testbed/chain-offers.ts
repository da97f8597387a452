// The offers on the testbed's chain as the observer's linker sees them (offer-linker.ts ChainOffer: which
// submitOffers transaction carried each, its place in it, when the bridge sent that transaction, from the
// bridge's log, and the message's bytes, which the transaction's calldata holds: read here from the bridge's
// queue, where the same bytes are), and, for judging the linker only, which meter really sent each: the DSO
// issued the offer's trading key to that meter.
import type { Abi, Hex } from 'viem';
import { decodeOffer, OFFER_LENGTH } from '../../firmware/src/protocol/offer.ts';
import type { Bridge } from '../bridge/bridge.ts';
import type { AssetStore } from '../dso/asset-store.ts';
import type { MeterRegistry } from '../dso/registry.ts';
import { compileContracts } from '../ledger/compile.ts';
import type { MarketClient } from '../ledger/market.ts';
import { keyIdOf } from '../ledger/trading-key.ts';
import type { ChainOffer } from '../observer/offer-linker.ts';
import { payloadHash } from '../observer/broker-observer.ts';

export interface ChainOffersOfRun {
  offers: ChainOffer[];
  /** Offer id → the meter whose trading key signed it. */
  senders: Map<string, string>;
}

interface OfferLog {
  eventName: 'OfferAccepted' | 'OfferRejected';
  transactionHash: Hex;
  logIndex: number;
  args: { digest: Hex; keyId?: Hex };
}

export async function chainOffersOfRun(run: {
  market: MarketClient;
  bridge: Bridge;
  bridgeLog: string[];
  registry: MeterRegistry;
  assets: AssetStore;
}): Promise<ChainOffersOfRun> {
  const { market } = run;
  const abi = compileContracts().Market.abi as Abi;
  const base = {
    address: market.deployment.market,
    abi,
    fromBlock: BigInt(market.deployment.deployedAtBlock ?? 0),
  } as const;
  const logs = [
    ...((await market.ledger.publicClient.getContractEvents({
      ...base,
      eventName: 'OfferAccepted',
    })) as unknown as OfferLog[]),
    ...((await market.ledger.publicClient.getContractEvents({
      ...base,
      eventName: 'OfferRejected',
    })) as unknown as OfferLog[]),
  ];
  // Each transaction's first sending by the bridge, under every hash it went by (replacements keep the nonce).
  const nonceOf = new Map<string, number>();
  const sentMs = new Map<number, number>();
  for (const line of run.bridgeLog) {
    const e = JSON.parse(line) as { event: string; time: string; nonce?: number; hash?: string };
    if ((e.event !== 'batch_sent' && e.event !== 'batch_replaced') || e.nonce === undefined || !e.hash) continue;
    nonceOf.set(e.hash.toLowerCase(), e.nonce);
    if (!sentMs.has(e.nonce)) sentMs.set(e.nonce, Date.parse(e.time));
  }
  logs.sort((a, b) => a.logIndex - b.logIndex);
  const offers: ChainOffer[] = [];
  const keyIds = new Map<string, string>();
  const positions = new Map<number, number>();
  for (const l of logs) {
    const nonce = nonceOf.get(l.transactionHash.toLowerCase());
    if (nonce === undefined) continue; // not this bridge's transaction
    const position = positions.get(nonce) ?? 0;
    positions.set(nonce, position + 1);
    const id = l.args.digest.toLowerCase();
    const message = queuedMessage(run.bridge, l.args.digest);
    offers.push({
      id,
      batch: nonce,
      position,
      submittedMs: sentMs.get(nonce)!,
      ...(message ? { messageHash: payloadHash(message) } : {}),
    });
    // OfferRejected names only the digest: then the key is the message's.
    const keyId = l.args.keyId ?? (message ? keyIdOf(decodeOffer(message.subarray(0, OFFER_LENGTH)).key) : undefined);
    if (keyId) keyIds.set(id, keyId.toLowerCase());
  }
  const meterOfKey = new Map<string, string>();
  for (const meter of run.registry.meters())
    for (const request of run.assets.requestsOfMeter(meter.meterId))
      meterOfKey.set(request.keyId.toLowerCase(), meter.meterId);
  const senders = new Map<string, string>();
  for (const [id, keyId] of keyIds) {
    const meter = meterOfKey.get(keyId);
    if (meter) senders.set(id, meter);
  }
  return { offers, senders };
}

/** The offer message (signed bytes, signature) of a digest, as the bridge queued and sent it. */
function queuedMessage(bridge: Bridge, digest: Hex): Uint8Array | undefined {
  try {
    return bridge.store.messagesOf([Buffer.from(digest.slice(2), 'hex')])[0];
  } catch {
    return undefined; // pruned or never queued here
  }
}
