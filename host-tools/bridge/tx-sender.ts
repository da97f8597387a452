// The bridge's transactions from its one relayer account: nonces it allocates itself (so a batch can be signed
// and stored before it is sent), EIP-1559 fees from the node, replacement of a transaction left pending with
// higher fees under the same nonce, and sends that survive a node that is down (the signed bytes are simply
// sent again). Offer batches are stored by the caller (bridge-store.ts) between sign() and broadcast();
// clearing and settlement transactions are not stored: they are idempotent by the chain's state (the bridge
// asks clearingOf before each), so after a crash the bridge just asks again.
import { encodeFunctionData, keccak256, type Abi, type Hex } from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';
import { TRANSACTION_GAS_CAP, type Ledger } from '../ledger/ledger-client.ts';
import type { Attempt } from './bridge-store.ts';

export type BroadcastResult = 'sent' | 'known' | 'nonce-used';

/** Replacement fees: at least 10 % above the old ones (geth's and anvil's rule); 25 % and one wei. */
export function bumpedFees(a: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }) {
  return {
    maxFeePerGas: (a.maxFeePerGas * 125n) / 100n + 1n,
    maxPriorityFeePerGas: (a.maxPriorityFeePerGas * 125n) / 100n + 1n,
  };
}

function messageOf(err: unknown): string {
  const e = err as { details?: string; shortMessage?: string; message?: string };
  return `${e.details ?? ''} ${e.shortMessage ?? ''} ${e.message ?? ''}`.toLowerCase();
}

export class TxSender {
  private nextNonce: number | undefined;

  constructor(
    private readonly ledger: Ledger,
    readonly account: PrivateKeyAccount,
    private readonly market: Hex,
    private readonly abi: Abi,
    /** The highest nonce stored for a batch, so a restart never reuses one (-1 for none). */
    private readonly storedNonce: () => number,
  ) {}

  /** Forget the local nonce: the next allocation asks the node again (after a failed send). */
  resetNonce(): void {
    this.nextNonce = undefined;
  }

  async allocateNonce(): Promise<number> {
    if (this.nextNonce === undefined) {
      const pending = await this.ledger.publicClient.getTransactionCount({
        address: this.account.address,
        blockTag: 'pending',
      });
      this.nextNonce = Math.max(pending, this.storedNonce() + 1);
    }
    return this.nextNonce++;
  }

  async fees(): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
    const fees = await this.ledger.publicClient.estimateFeesPerGas();
    return { maxFeePerGas: fees.maxFeePerGas!, maxPriorityFeePerGas: fees.maxPriorityFeePerGas! };
  }

  data(functionName: string, args: unknown[]): Hex {
    return encodeFunctionData({ abi: this.abi, functionName, args } as never);
  }

  /** Signs a call to the market; nothing is sent. */
  async sign(
    data: Hex,
    gas: bigint,
    nonce: number,
    fees: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint },
  ): Promise<Attempt> {
    const raw = await this.account.signTransaction({
      chainId: this.ledger.chain.id,
      type: 'eip1559',
      to: this.market,
      data,
      nonce,
      gas: gas < TRANSACTION_GAS_CAP ? gas : TRANSACTION_GAS_CAP,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
    });
    return { hash: keccak256(raw), raw, ...fees, sentMs: Date.now() };
  }

  /**
   * Sends signed bytes. 'known': the node has them already; 'nonce-used': the nonce is taken (this or another
   * transaction of the account was mined). Throws when the node cannot be reached or refuses otherwise.
   */
  async broadcast(raw: Hex): Promise<BroadcastResult> {
    try {
      await this.ledger.publicClient.sendRawTransaction({ serializedTransaction: raw });
      return 'sent';
    } catch (err) {
      const text = messageOf(err);
      if (text.includes('already known') || text.includes('already imported') || text.includes('known transaction'))
        return 'known';
      if (
        text.includes('nonce too low') ||
        text.includes('nonce is too low') ||
        text.includes('is lower than the current nonce')
      )
        return 'nonce-used';
      throw err;
    }
  }

  async receipt(hash: Hex) {
    try {
      return await this.ledger.publicClient.getTransactionReceipt({ hash });
    } catch (err) {
      if ((err as Error).name === 'TransactionReceiptNotFoundError') return undefined;
      throw err;
    }
  }

  /** Does the node hold this transaction (pending or mined)? */
  async known(hash: Hex): Promise<boolean> {
    try {
      await this.ledger.publicClient.getTransaction({ hash });
      return true;
    } catch (err) {
      if ((err as Error).name === 'TransactionNotFoundError') return false;
      throw err;
    }
  }

  /** The account's mined transaction count. */
  minedNonce(): Promise<number> {
    return this.ledger.publicClient.getTransactionCount({ address: this.account.address, blockTag: 'latest' });
  }

  /**
   * Signs, sends and waits for one transaction that needs no record (clear, settle): resolves with its receipt,
   * replacing it with higher fees when it stays pending past replaceAfterMs. Not asked as an eth_call first: on an
   * idle development chain the latest block can be older than the gate closure, so such a call says GateOpen
   * while the transaction, mined in a new block, would pass (the caller backs off after a failure instead).
   */
  async sendAndWait(
    functionName: string,
    args: unknown[],
    gas: bigint,
    options: { replaceAfterMs: number; pollMs: number; stopped: () => boolean },
  ) {
    const data = this.data(functionName, args);
    let nonce: number;
    let attempt: Attempt;
    try {
      nonce = await this.allocateNonce();
      attempt = await this.sign(data, gas, nonce, await this.fees());
      if ((await this.broadcast(attempt.raw)) === 'nonce-used')
        throw new Error(
          `nonce ${nonce} is already used: another transaction of ${this.account.address} was mined (is a second process using this account?)`,
        );
    } catch (err) {
      this.resetNonce();
      throw err;
    }
    const hashes = [attempt.hash];
    // Polls for the receipt from 10 ms, doubling to pollMs: a node mining at once answers within a poll or two,
    // one with block times is not asked more than every pollMs for long.
    let waitMs = 10;
    for (;;) {
      for (const hash of hashes) {
        const receipt = await this.receipt(hash);
        if (receipt) return receipt;
      }
      if (options.stopped()) throw new Error(`stopped while ${functionName} (${attempt.hash}) was pending`);
      if (Date.now() - attempt.sentMs > options.replaceAfterMs) {
        attempt = await this.sign(data, gas, nonce, bumpedFees(attempt));
        hashes.push(attempt.hash);
        if ((await this.broadcast(attempt.raw)) === 'nonce-used') {
          for (const hash of hashes) {
            const receipt = await this.receipt(hash);
            if (receipt) return receipt;
          }
          this.resetNonce();
          throw new Error(`nonce ${nonce} of ${functionName} was used by another transaction`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      waitMs = Math.min(options.pollMs, waitMs * 2);
    }
  }
}
