// A fresh market on the in-process EVM for each test: deployed by the DSO account, prices from the first
// delivery interval, one feeder with room, and helpers to grant assets, sign offers and move the clock.
import { BaseError, ContractFunctionRevertedError, decodeEventLog, toHex, type Hex, type TransactionReceipt } from 'viem';
import { compileContracts } from '../../host-tools/ledger/compile.ts';
import { openLedger } from '../../host-tools/ledger/ledger-client.ts';
import { deployMarket, MarketClient, type Grant } from '../../host-tools/ledger/market.ts';
import { encodeOffer, offerDigest, type OfferFields } from '../../host-tools/ledger/offer-bytes.ts';
import type { TradingKey } from '../../host-tools/ledger/trading-key.ts';

export const INTERVAL_SECONDS = 900;
export const FEEDER = 7;
/** The interval running when a fixture starts; offers go to the next one, whose gate is still open. */
export const START_INTERVAL = 10;
export const DELIVERY = START_INTERVAL + 1;
export const CONSUMPTION_PRICE = 300;
export const PRODUCTION_PRICE = 100;

export async function marketFixture() {
  const ledger = await openLedger({ kind: 'in-process', accounts: 3 });
  const [dso, relayer, anyone] = ledger.accounts;
  const now = Number((await ledger.publicClient.getBlock()).timestamp);
  const deployment = await deployMarket(ledger, dso, { intervalSeconds: INTERVAL_SECONDS, genesisTime: now - START_INTERVAL * INTERVAL_SECONDS });
  const market = new MarketClient(ledger, deployment);
  await market.setPrices(dso, DELIVERY, CONSUMPTION_PRICE, PRODUCTION_PRICE);
  await market.setFeederLimit(dso, FEEDER, 10n ** 15n, 10n ** 15n);
  return {
    ledger,
    market,
    dso,
    relayer,
    anyone,
    /** Moves the chain's clock past the gate closure of `interval` and mines a block there. */
    async passGateClosure(interval: number) {
      const latest = Number((await ledger.publicClient.getBlock()).timestamp);
      const target = deployment.genesisTime + interval * INTERVAL_SECONDS;
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

export type MarketFixture = Awaited<ReturnType<typeof marketFixture>>;

/** A grant of energy assets for one interval, and money, to a trading key. */
export function grantFor(key: TradingKey, interval: number, assets: { production?: number; consumption?: number; money?: bigint }): Grant {
  return {
    keyX: toHex(key.publicKey.x),
    keyY: toHex(key.publicKey.y),
    production: assets.production ?? 0,
    consumption: assets.consumption ?? 0,
    first: interval,
    last: interval,
    money: assets.money ?? 0n,
  };
}

/** The custom error a refused call reverted with: its name and arguments. */
export async function revertOf(call: Promise<unknown>): Promise<{ name: string; args: readonly unknown[] }> {
  try {
    await call;
  } catch (err) {
    const reverted = err instanceof BaseError ? err.walk((e) => e instanceof ContractFunctionRevertedError) : null;
    if (reverted instanceof ContractFunctionRevertedError && reverted.data) return { name: reverted.data.errorName, args: reverted.data.args ?? [] };
    throw err;
  }
  throw new Error('the call was expected to revert and did not');
}

/** The market's events in a receipt, decoded. */
export function eventsOf(receipt: TransactionReceipt): { eventName: string; args: Record<string, unknown> }[] {
  const abi = compileContracts().Market.abi;
  return receipt.logs.map((log) => decodeEventLog({ abi, data: log.data, topics: log.topics }) as unknown as { eventName: string; args: Record<string, unknown> });
}

export type { Hex };
