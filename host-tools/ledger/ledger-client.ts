// One way for every service to reach a ledger (docs/ledger.md, "Runtimes"): an in-process EVM (EDR through
// Hardhat 2.x, Osaka rules, no set-up) or any EVM JSON-RPC URL (`veilgrid ledger`'s anvil, a Besu QBFT
// network). Either way the caller gets viem clients and local accounts that sign their own transactions, so
// nothing depends on a node holding keys.
import { createRequire } from 'node:module';
import {
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  http,
  keccak256,
  stringToBytes,
  type Chain,
  type EIP1193Provider,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
} from 'viem';
import { privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export type LedgerTarget =
  /**
   * An EVM inside this process; `accounts` development accounts are funded in its genesis. `genesisTime`
   * (Unix seconds, default now) dates its genesis block: a grid on a virtual clock starts its chain there.
   */
  | { kind: 'in-process'; accounts?: number; genesisTime?: number }
  /** A JSON-RPC node; privateKeys are the accounts this process signs with (funded on that chain). */
  | { kind: 'rpc'; url: string; privateKeys: Hex[] };

export interface Ledger {
  chain: Chain;
  publicClient: PublicClient<Transport, Chain>;
  accounts: PrivateKeyAccount[];
  wallet(account: PrivateKeyAccount): WalletClient<Transport, Chain, PrivateKeyAccount>;
  /** Raw JSON-RPC, for development-chain methods (evm_increaseTime, anvil_setBalance). */
  request(method: string, params?: unknown[]): Promise<unknown>;
}

export class LedgerConnectionError extends VeilgridError {
  constructor(message: string) {
    super('LedgerConnectionError', 'ledger-connection', message);
  }
}

/** Osaka's per-transaction gas cap (EIP-7825): no transaction may ask for more, on any Osaka chain. */
export const TRANSACTION_GAS_CAP = 16_777_216n;
const IN_PROCESS_CHAIN_ID = 31337;
const IN_PROCESS_BLOCK_GAS_LIMIT = 60_000_000;

/**
 * Development accounts: private keys derived from a public phrase, so anyone can recompute them. They
 * exist only on development chains (in-process, `veilgrid ledger`); never fund them anywhere else.
 */
export function developmentKeys(count: number): Hex[] {
  return Array.from({ length: count }, (_, i) => keccak256(stringToBytes(`veilgrid development account ${i}`)));
}

interface HardhatNetworkModule {
  createHardhatNetworkProvider(config: object, logger: object): Promise<EIP1193Provider>;
}

/**
 * EDR throws a revert as an error with `data` but no code; a JSON-RPC node answers code 3 ("execution
 * reverted") with the same data, which is what viem decodes into the contract's custom error. This makes the
 * in-process EVM answer like a node.
 */
function asJsonRpcNode(provider: EIP1193Provider): EIP1193Provider {
  const request = (async (args: Parameters<EIP1193Provider['request']>[0]) => {
    try {
      return await provider.request(args);
    } catch (err) {
      const data = (err as { data?: unknown }).data;
      if (typeof data === 'string' && data.startsWith('0x'))
        throw Object.assign(new Error((err as Error).message), { code: 3, data });
      throw err;
    }
  }) as EIP1193Provider['request'];
  return {
    ...provider,
    on: provider.on.bind(provider),
    removeListener: provider.removeListener.bind(provider),
    request,
  };
}

async function inProcessProvider(keys: Hex[], genesisTime?: number): Promise<EIP1193Provider> {
  // Hardhat 2's provider factory is CommonJS and not in its public types; it is the documented core of
  // `hardhat node` and of Hardhat's in-process network.
  const { createHardhatNetworkProvider } = createRequire(import.meta.url)(
    'hardhat/internal/hardhat-network/provider/provider',
  ) as HardhatNetworkModule;
  const provider = await createHardhatNetworkProvider(
    {
      hardfork: 'osaka',
      chainId: IN_PROCESS_CHAIN_ID,
      networkId: IN_PROCESS_CHAIN_ID,
      blockGasLimit: IN_PROCESS_BLOCK_GAS_LIMIT,
      minGasPrice: 0n,
      automine: true,
      intervalMining: 0,
      mempoolOrder: 'priority',
      chains: new Map(),
      genesisAccounts: keys.map((privateKey) => ({ privateKey, balance: 10n ** 24n })),
      allowUnlimitedContractSize: false,
      throwOnTransactionFailures: true,
      throwOnCallFailures: true,
      allowBlocksWithSameTimestamp: false,
      enableTransientStorage: true,
      enableRip7212: false,
      ...(genesisTime === undefined ? {} : { initialDate: new Date(genesisTime * 1000) }),
    },
    { enabled: false, printLineFn: () => {}, replaceLastLineFn: () => {} },
  );
  return asJsonRpcNode(provider);
}

function chainFor(id: number, url?: string): Chain {
  return defineChain({
    id,
    name: `veilgrid-${id}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: url ? [url] : [] } },
  });
}

/** How often viem polls for receipts: an in-process EVM mines at once; a node's blocks come every second or more. */
const POLLING_MS = { inProcess: 5, rpc: 250 };

function ledgerOn(transport: Transport, chain: Chain, keys: Hex[], pollingInterval: number): Ledger {
  const publicClient = createPublicClient({ chain, transport, pollingInterval });
  return {
    chain,
    publicClient,
    accounts: keys.map((k) => privateKeyToAccount(k)),
    wallet: (account) => createWalletClient({ account, chain, transport, pollingInterval }),
    request: (method, params = []) => publicClient.request({ method: method as never, params: params as never }),
  };
}

export async function openLedger(target: LedgerTarget): Promise<Ledger> {
  if (target.kind === 'in-process') {
    const keys = developmentKeys(target.accounts ?? 4);
    // No retries: a revert is an answer, and an in-process EVM has no transient failures to wait out.
    return ledgerOn(
      custom(await inProcessProvider(keys, target.genesisTime), { retryCount: 0 }),
      chainFor(IN_PROCESS_CHAIN_ID),
      keys,
      POLLING_MS.inProcess,
    );
  }
  const transport = http(target.url, { retryCount: 0, timeout: 30_000 });
  let chainId: number;
  try {
    chainId = await createPublicClient({ transport }).getChainId();
  } catch (err) {
    throw new LedgerConnectionError(
      `no EVM JSON-RPC node answers at ${target.url} (${(err as Error).message.split('\n')[0]}): start one (veilgrid ledger serve) or check the URL`,
    );
  }
  return ledgerOn(transport, chainFor(chainId, target.url), target.privateKeys, POLLING_MS.rpc);
}
