// The market contract from the host: deploy it, record where it is, and call it. Services built on the market
// (DSO issuance, the bridge, clearing triggers, billing) call these methods; docs/ledger.md lists them.
import fs from 'node:fs';
import path from 'node:path';
import { toHex, type Hex, type TransactionReceipt } from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';
import { compileContracts } from './compile.ts';
import { openLedger, TRANSACTION_GAS_CAP, type Ledger } from './ledger-client.ts';
import { REASON_BRIDGE_MALFORMED, RECEIPT_REASONS } from '../../firmware/src/protocol/market-broadcast.ts';
import type { MarketDomain, TradingPublicKey } from '../../firmware/src/protocol/offer.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

/** Where a market is deployed: the file `veilgrid ledger` writes and other services read. */
export interface MarketDeployment {
  chainId: number;
  rpcUrl?: string;
  market: Hex;
  dso: Hex;
  intervalSeconds: number;
  genesisTime: number;
  deployedAtBlock: number;
}

/** One grant of an issuance batch (Market.Grant): Wh per interval over [first, last], and money units. */
export interface Grant {
  keyX: Hex;
  keyY: Hex;
  production: number;
  consumption: number;
  first: number;
  last: number;
  money: bigint;
}

/** A grant of energy assets for one interval (Wh) and money to a trading key. */
export function grantFor(
  key: TradingPublicKey,
  interval: number,
  assets: { production?: number; consumption?: number; money?: bigint },
): Grant {
  return {
    keyX: toHex(key.x),
    keyY: toHex(key.y),
    production: assets.production ?? 0,
    consumption: assets.consumption ?? 0,
    first: interval,
    last: interval,
    money: assets.money ?? 0n,
  };
}

export interface Cut {
  index: number;
  limitPrice: number;
  fillWh: number;
}

/** A clearing result (Market.Result). */
export interface ClearingResult {
  price: number;
  volumeWh: bigint;
  ask: Cut;
  bid: Cut;
}

export interface Holding {
  production: bigint;
  consumption: bigint;
  productionLocked: bigint;
  consumptionLocked: bigint;
}

/**
 * Refusal reasons in the contract's numbering (Market.Refusal), for events and errors: None, then the names the
 * receipts give the contract's codes (protocol/market-broadcast.ts: the codes below the bridge's own).
 */
export const REFUSALS: readonly string[] = [
  'None',
  ...RECEIPT_REASONS.slice(1, REASON_BRIDGE_MALFORMED).filter((name) => name !== ''),
];

export class DeploymentFileError extends VeilgridError {
  constructor(message: string) {
    super('DeploymentFileError', 'deployment-file', message);
  }
}

/** Settling one offer costs 28k–35k gas (bench/ledger-gas.ts); twice that bounds it with room. */
const SETTLE_GAS_PER_OFFER_BOUND = 70_000n;

export async function deployMarket(
  ledger: Ledger,
  dso: PrivateKeyAccount,
  options: { intervalSeconds: number; genesisTime: number; rpcUrl?: string },
): Promise<MarketDeployment> {
  const { Market } = compileContracts();
  const hash = await ledger.wallet(dso).deployContract({
    abi: Market.abi,
    bytecode: Market.bytecode,
    args: [options.intervalSeconds, BigInt(options.genesisTime)],
  });
  const receipt = await ledger.publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== 'success' || !receipt.contractAddress)
    throw new Error(`deploying the market failed in transaction ${hash}`);
  return {
    chainId: ledger.chain.id,
    rpcUrl: options.rpcUrl,
    market: receipt.contractAddress,
    dso: dso.address,
    intervalSeconds: options.intervalSeconds,
    genesisTime: options.genesisTime,
    deployedAtBlock: Number(receipt.blockNumber),
  };
}

export function writeDeployment(file: string, deployment: MarketDeployment): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(deployment, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

export function readDeployment(file: string): MarketDeployment {
  let parsed: Partial<MarketDeployment>;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<MarketDeployment>;
  } catch (err) {
    throw new DeploymentFileError(
      `cannot read the market deployment file ${file}: ${(err as Error).message} (veilgrid ledger serve writes it)`,
    );
  }
  if (
    typeof parsed.market !== 'string' ||
    typeof parsed.chainId !== 'number' ||
    typeof parsed.intervalSeconds !== 'number' ||
    typeof parsed.genesisTime !== 'number'
  ) {
    throw new DeploymentFileError(
      `${file} is not a market deployment file (it needs market, chainId, intervalSeconds, genesisTime)`,
    );
  }
  return parsed as MarketDeployment;
}

/**
 * The market a deployment file names, reached over its RPC URL with the given signing keys: how a service
 * in its own process finds the ledger `veilgrid ledger serve` or `deploy` set up. Refuses a file whose chain
 * or contract is not what the node has, so a stale file fails at start, not at the first transaction.
 */
export async function openDeployedMarket(file: string, privateKeys: Hex[]): Promise<MarketClient> {
  const deployment = readDeployment(file);
  if (!deployment.rpcUrl)
    throw new DeploymentFileError(`${file} names no rpcUrl: give the node's URL to the service instead`);
  const ledger = await openLedger({ kind: 'rpc', url: deployment.rpcUrl, privateKeys });
  if (ledger.chain.id !== deployment.chainId) {
    throw new DeploymentFileError(
      `${file} is for chain ${deployment.chainId} but ${deployment.rpcUrl} serves chain ${ledger.chain.id}: the file is stale (a restarted development node?)`,
    );
  }
  const code = await ledger.publicClient.getCode({ address: deployment.market });
  if (!code || code === '0x')
    throw new DeploymentFileError(
      `no contract at ${deployment.market} on ${deployment.rpcUrl}: the file is stale (deploy again)`,
    );
  return new MarketClient(ledger, deployment);
}

export class MarketClient {
  readonly domain: MarketDomain;
  private readonly abi = compileContracts().Market.abi;

  constructor(
    readonly ledger: Ledger,
    readonly deployment: MarketDeployment,
  ) {
    this.domain = { chainId: deployment.chainId, market: deployment.market };
  }

  /** Sends one transaction and waits for it; a refusal throws viem's error carrying the contract's error. */
  private async send(
    account: PrivateKeyAccount,
    functionName: string,
    args: unknown[],
    gas?: bigint,
  ): Promise<TransactionReceipt> {
    const hash = await this.ledger
      .wallet(account)
      .writeContract({ address: this.deployment.market, abi: this.abi, functionName, args, gas });
    const receipt = await this.ledger.publicClient.waitForTransactionReceipt({ hash });
    if (receipt.status !== 'success') throw new Error(`${functionName} reverted in transaction ${hash}`);
    return receipt;
  }

  private read<T>(functionName: string, args: unknown[]): Promise<T> {
    return this.ledger.publicClient.readContract({
      address: this.deployment.market,
      abi: this.abi,
      functionName,
      args,
    }) as Promise<T>;
  }

  // regulatory transactions (the DSO's account)
  authorize(dso: PrivateKeyAccount, meterHashes: Hex[]) {
    return this.send(dso, 'authorize', [meterHashes]);
  }
  ban(dso: PrivateKeyAccount, meterHash: Hex, keyIds: Hex[], openOfferDigests: Hex[]) {
    return this.send(dso, 'ban', [meterHash, keyIds, openOfferDigests]);
  }
  setPrices(dso: PrivateKeyAccount, fromInterval: number, consumption: number, production: number) {
    return this.send(dso, 'setPrices', [fromInterval, consumption, production]);
  }
  setFeederLimit(dso: PrivateKeyAccount, feeder: number, production: bigint, consumption: bigint) {
    return this.send(dso, 'setFeederLimit', [feeder, production, consumption]);
  }
  issue(dso: PrivateKeyAccount, feeder: number, grants: Grant[]) {
    return this.send(dso, 'issue', [feeder, grants]);
  }
  /** Records the SHA-256 of the relay directory's signed head for an epoch above the last one. */
  anchorDirectory(dso: PrivateKeyAccount, epoch: number, headHash: Hex) {
    return this.send(dso, 'anchorDirectory', [epoch, headHash]);
  }

  // offers (any relayer's account; the trading key's signature is what counts)
  submitOffer(relayer: PrivateKeyAccount, signedBytes: Uint8Array, signature: Uint8Array) {
    return this.send(relayer, 'submitOffer', [toHex(signedBytes), toHex(signature)]);
  }
  submitOffers(relayer: PrivateKeyAccount, offers: { signedBytes: Uint8Array; signature: Uint8Array }[]) {
    return this.send(relayer, 'submitOffers', [
      offers.map((o) => toHex(o.signedBytes)),
      offers.map((o) => toHex(o.signature)),
    ]);
  }
  rescind(relayer: PrivateKeyAccount, signedBytes: Uint8Array, signature: Uint8Array) {
    return this.send(relayer, 'rescind', [toHex(signedBytes), toHex(signature)]);
  }

  // clearing and settlement (anyone)
  computeClearing(interval: number): Promise<ClearingResult> {
    return this.read('computeClearing', [interval]);
  }
  /** Clears an interval with a result computed by an eth_call, which the contract then verifies in one pass. */
  async clear(account: PrivateKeyAccount, interval: number, result?: ClearingResult) {
    return this.send(account, 'clear', [interval, result ?? (await this.computeClearing(interval))]);
  }
  clearByComputing(account: PrivateKeyAccount, interval: number) {
    return this.send(account, 'clearByComputing', [interval]);
  }
  /**
   * Settles the next maxOffers offers (≤ 250 stays well under the cap: about 28k–35k gas each). The gas limit is
   * a bound, not an estimate: EDR's eth_estimateGas returned more than the cap for some 200–250-offer chunks
   * that used under 7 M gas when sent (anvil's estimates were right: bench/RESULTS.md), and only the gas used is paid.
   */
  settle(account: PrivateKeyAccount, interval: number, maxOffers: number) {
    const bound = 200_000n + BigInt(maxOffers) * SETTLE_GAS_PER_OFFER_BOUND;
    return this.send(
      account,
      'settle',
      [interval, maxOffers],
      bound < TRANSACTION_GAS_CAP ? bound : TRANSACTION_GAS_CAP,
    );
  }

  // reads
  async holding(keyId: Hex, interval: number): Promise<Holding> {
    const [production, consumption, productionLocked, consumptionLocked] = await this.read<bigint[]>('holdings', [
      keyId,
      interval,
    ]);
    return { production, consumption, productionLocked, consumptionLocked };
  }
  async money(keyId: Hex): Promise<{ free: bigint; locked: bigint }> {
    const [free, locked] = await this.read<bigint[]>('money', [keyId]);
    return { free, locked };
  }
  async currentInterval(): Promise<number> {
    return Number(await this.read<number>('currentInterval', []));
  }
  async directoryAnchor(): Promise<{ epoch: number; headHash: Hex }> {
    const [epoch, headHash] = await Promise.all([
      this.read<number>('directoryEpoch', []),
      this.read<Hex>('directoryHeadHash', []),
    ]);
    return { epoch: Number(epoch), headHash };
  }
  async offerCount(interval: number): Promise<number> {
    return Number(await this.read<bigint>('offerCount', [interval]));
  }
}
