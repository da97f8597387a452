// A market ready to trade on the in-process EVM: deployed by development account 0 (the DSO), the clock placed
// in a chosen interval, prices and one feeder set. Tests, benchmarks and in-process runs start from here.
import { toHex } from 'viem';
import { openLedger } from './ledger-client.ts';
import { deployMarket, MarketClient } from './market.ts';
import { encodeOffer, type OfferFields } from '../../firmware/src/protocol/offer.ts';
import { offerDigest } from './offer-digest.ts';
import type { TradingKey } from './trading-key.ts';

export interface DevelopmentMarketOptions {
  intervalSeconds: number;
  /** The interval running when the market starts; the next one's gate is still open. */
  startInterval: number;
  prices: { consumption: number; production: number };
  feeder: { id: number; production: bigint; consumption: bigint };
  accounts?: number;
}

export async function openDevelopmentMarket(options: DevelopmentMarketOptions) {
  const ledger = await openLedger({ kind: 'in-process', accounts: options.accounts ?? 3 });
  const [dso, relayer, anyone] = ledger.accounts;
  const now = Number((await ledger.publicClient.getBlock()).timestamp);
  const deployment = await deployMarket(ledger, dso, {
    intervalSeconds: options.intervalSeconds,
    genesisTime: now - options.startInterval * options.intervalSeconds,
  });
  const market = new MarketClient(ledger, deployment);
  await market.setPrices(dso, options.startInterval + 1, options.prices.consumption, options.prices.production);
  await market.setFeederLimit(dso, options.feeder.id, options.feeder.production, options.feeder.consumption);
  return {
    ledger,
    market,
    dso,
    relayer,
    anyone,
    /** Moves the chain's clock to the gate closure of `interval` (if not past it) and mines a block there. */
    async passGateClosure(interval: number) {
      const latest = Number((await ledger.publicClient.getBlock()).timestamp);
      const target = deployment.genesisTime + interval * options.intervalSeconds;
      if (latest < target) await ledger.request('evm_increaseTime', [target - latest]);
      await ledger.request('evm_mine');
    },
    /** Signs an offer with key for this market; returns the bytes, signature and digest. */
    offer(key: TradingKey, fields: Omit<OfferFields, 'key' | 'seq'> & { seq?: number }) {
      const signedBytes = encodeOffer(market.domain, { seq: 0, ...fields, key: key.publicKey });
      return { signedBytes, signature: key.sign(signedBytes), digest: toHex(offerDigest(signedBytes)) };
    },
  };
}

export type DevelopmentMarket = Awaited<ReturnType<typeof openDevelopmentMarket>>;
