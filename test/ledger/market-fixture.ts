// A fresh market on the in-process EVM for each test (prices from the first delivery interval, one feeder with
// room), and helpers to read reverts and decode events.
import { BaseError, ContractFunctionRevertedError, decodeEventLog, type TransactionReceipt } from 'viem';
import { compileContracts } from '../../host-tools/ledger/compile.ts';
import { openDevelopmentMarket, type DevelopmentMarket } from '../../host-tools/ledger/development-market.ts';

export const INTERVAL_SECONDS = 900;
export const FEEDER = 7;
/** The interval running when a fixture starts; offers go to the next one, whose gate is still open. */
export const START_INTERVAL = 10;
export const DELIVERY = START_INTERVAL + 1;
export const CONSUMPTION_PRICE = 300;
export const PRODUCTION_PRICE = 100;

export function marketFixture() {
  return openDevelopmentMarket({
    intervalSeconds: INTERVAL_SECONDS,
    startInterval: START_INTERVAL,
    prices: { consumption: CONSUMPTION_PRICE, production: PRODUCTION_PRICE },
    feeder: { id: FEEDER, production: 10n ** 15n, consumption: 10n ** 15n },
  });
}

export type MarketFixture = DevelopmentMarket;

/** The custom error a refused call reverted with: its name and arguments. */
export async function revertOf(call: Promise<unknown>): Promise<{ name: string; args: readonly unknown[] }> {
  try {
    await call;
  } catch (err) {
    const reverted = err instanceof BaseError ? err.walk((e) => e instanceof ContractFunctionRevertedError) : null;
    if (reverted instanceof ContractFunctionRevertedError && reverted.data)
      return { name: reverted.data.errorName, args: reverted.data.args ?? [] };
    throw err;
  }
  throw new Error('the call was expected to revert and did not');
}

/** The market's events in a receipt, decoded. */
export function eventsOf(receipt: TransactionReceipt): { eventName: string; args: Record<string, unknown> }[] {
  const abi = compileContracts().Market.abi;
  return receipt.logs.map(
    (log) =>
      decodeEventLog({ abi, data: log.data, topics: log.topics }) as unknown as {
        eventName: string;
        args: Record<string, unknown>;
      },
  );
}
