// `veilgrid ledger`: a ledger node for multi-process runs (anvil, Osaka) with the market deployed on it, or the
// market deployed on any EVM JSON-RPC node (a Besu QBFT network: docs/ledger.md). Either way the deployment
// file says where the market is, for the services that use it.
import fs from 'node:fs';
import type { Hex } from 'viem';
import { CliError, intOption, parseOptions, type Command } from '../cli/command.ts';
import { AnvilError, startAnvil } from './anvil-node.ts';
import { CACHE_DIR, CompileError, compileContracts } from './compile.ts';
import { developmentKeys, LedgerConnectionError, openLedger, type Ledger } from './ledger-client.ts';
import { deployMarket, writeDeployment } from './market.ts';

export const DEFAULT_DEPLOYMENT_FILE = '.veilgrid/ledger/deployment.json';
const DEFAULT_PORT = 8545;
const DEFAULT_INTERVAL_SECONDS = 900;
const DEFAULT_ACCOUNTS = 4;
const DEVELOPMENT_BALANCE_WEI = 10n ** 24n;

const help = `usage: veilgrid ledger serve [--port PORT] [--deployment FILE] [--interval-seconds N] [--genesis-time T]
                             [--block-time S] [--accounts N]
       veilgrid ledger deploy --rpc URL --key-file FILE [--deployment FILE] [--interval-seconds N] [--genesis-time T]
       veilgrid ledger compile

The market contract (host-tools/ledger/contracts/, compiled with solc on first use) on a ledger node.

  serve   starts anvil (from its npm package; Osaka rules, P256VERIFY at 0x100, EIP-7825's transaction gas
          cap) on 127.0.0.1:PORT as a separate process, funds N development accounts, deploys the market
          with account 0 as the DSO, writes the deployment file, and runs until stopped (Ctrl-C, SIGTERM),
          then stops anvil. The chain lives in memory: a restart starts a new one. Development accounts'
          keys are public (developmentKeys in host-tools/ledger/ledger-client.ts): account 0 is the DSO,
          account 1 a relayer. Never use them on a chain with value.
  deploy  deploys the market on the node at URL (e.g. a Besu QBFT validator: docs/ledger.md) with the
          account whose private key is in FILE, which becomes the DSO and must hold ether for gas unless
          the network's gas price is zero, and writes the deployment file.
  compile compiles the contracts with the solc npm package (wasm, offline) into dist/ledger/ (npm run build
          does it; the other commands do it on first use), and prints each contract's bytecode size.

options:
  --port PORT            (serve) where anvil listens, 127.0.0.1 only (default ${DEFAULT_PORT}; 0: any free port,
                         written to the deployment file)
  --deployment FILE      where the deployment is written: chain id, RPC URL, market and DSO addresses,
                         interval length and genesis time (default ${DEFAULT_DEPLOYMENT_FILE})
  --interval-seconds N   delivery interval length Δ (default ${DEFAULT_INTERVAL_SECONDS})
  --genesis-time T       Unix time at which interval 0 starts (default: now, rounded down to a multiple of Δ)
  --block-time S         (serve) mine a block every S seconds instead of one per transaction
  --accounts N           (serve) development accounts to fund (default ${DEFAULT_ACCOUNTS}, at least 2)
  --rpc URL              (deploy) the node's JSON-RPC URL
  --key-file FILE        (deploy) file holding the DSO account's private key as 0x and 64 hex digits
  -h, --help             this text`;

function timing(values: { 'interval-seconds'?: string; 'genesis-time'?: string }) {
  const intervalSeconds = intOption(values['interval-seconds'], 'interval-seconds', DEFAULT_INTERVAL_SECONDS, 1);
  const now = Math.floor(Date.now() / 1000);
  const genesisTime = intOption(values['genesis-time'], 'genesis-time', now - (now % intervalSeconds), 0);
  return { intervalSeconds, genesisTime };
}

async function deployAndRecord(
  ledger: Ledger,
  file: string,
  options: { intervalSeconds: number; genesisTime: number; rpcUrl: string },
) {
  const deployment = await deployMarket(ledger, ledger.accounts[0], options);
  writeDeployment(file, deployment);
  console.log(
    `market ${deployment.market} on chain ${deployment.chainId} at ${options.rpcUrl} (block ${deployment.deployedAtBlock})`,
  );
  console.log(
    `DSO ${deployment.dso}; interval ${deployment.intervalSeconds} s from ${new Date(deployment.genesisTime * 1000).toISOString()}`,
  );
  console.log(`deployment written to ${file}`);
  return deployment;
}

async function runServe(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    port: { type: 'string' },
    deployment: { type: 'string' },
    'interval-seconds': { type: 'string' },
    'genesis-time': { type: 'string' },
    'block-time': { type: 'string' },
    accounts: { type: 'string' },
  });
  const port = intOption(values.port, 'port', DEFAULT_PORT, 0);
  if (port > 65535) throw new CliError(`--port must be at most 65535, got ${port}`);
  const accounts = intOption(values.accounts, 'accounts', DEFAULT_ACCOUNTS, 2);
  const blockTimeSeconds = intOption(values['block-time'], 'block-time', 0, 1);
  const file = values.deployment ?? DEFAULT_DEPLOYMENT_FILE;
  const options = timing(values);
  // Listen for the stop signals before anvil starts, so a signal during start-up still stops anvil.
  const stopSignal = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });

  let node;
  try {
    node = await startAnvil({ port, blockTimeSeconds });
  } catch (err) {
    if (err instanceof AnvilError)
      throw new CliError(`${err.message} (is port ${port} taken? choose another with --port)`, 1);
    throw err;
  }
  try {
    const keys = developmentKeys(accounts);
    const ledger = await openLedger({ kind: 'rpc', url: node.url, privateKeys: keys });
    for (const account of ledger.accounts)
      await ledger.request('anvil_setBalance', [account.address, `0x${DEVELOPMENT_BALANCE_WEI.toString(16)}`]);
    await deployAndRecord(ledger, file, { ...options, rpcUrl: node.url });
    console.error(`veilgrid ledger: anvil (pid ${node.pid}) serving ${node.url}; Ctrl-C or SIGTERM stops it`);
    const ended = await Promise.race([
      stopSignal,
      node.exited.then((code) => `anvil exited on its own (code ${code})`),
    ]);
    console.error(`veilgrid ledger: stopped (${ended})`);
    return ended.startsWith('anvil') ? 1 : 0;
  } catch (err) {
    if (err instanceof CompileError) throw new CliError(err.message, 1);
    throw err;
  } finally {
    await node.stop();
  }
}

export function readKeyFile(file: string): Hex {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new CliError(`cannot read the key file ${file}: ${(err as Error).message}`);
  }
  if (!/^0x[0-9a-fA-F]{64}$/.test(text)) throw new CliError(`${file} must hold one private key: 0x and 64 hex digits`);
  return text as Hex;
}

async function runDeploy(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    rpc: { type: 'string' },
    'key-file': { type: 'string' },
    deployment: { type: 'string' },
    'interval-seconds': { type: 'string' },
    'genesis-time': { type: 'string' },
  });
  if (!values.rpc) throw new CliError('deploy needs --rpc URL (the node to deploy on; see --help)');
  if (!values['key-file'])
    throw new CliError("deploy needs --key-file FILE (the DSO account's private key; see --help)");
  const key = readKeyFile(values['key-file']);
  try {
    const ledger = await openLedger({ kind: 'rpc', url: values.rpc, privateKeys: [key] });
    await deployAndRecord(ledger, values.deployment ?? DEFAULT_DEPLOYMENT_FILE, {
      ...timing(values),
      rpcUrl: values.rpc,
    });
    return 0;
  } catch (err) {
    if (err instanceof LedgerConnectionError || err instanceof CompileError) throw new CliError(err.message, 1);
    throw err;
  }
}

function runCompile(argv: string[]): number {
  parseOptions(argv, {});
  let artifacts;
  try {
    artifacts = compileContracts();
  } catch (err) {
    if (err instanceof CompileError) throw new CliError(err.message, 1);
    throw err;
  }
  for (const [name, artifact] of Object.entries(artifacts))
    console.log(`${name}: ${(artifact.deployedBytecode.length - 2) / 2} bytes deployed`);
  console.log(`compiled into ${CACHE_DIR}`);
  return 0;
}

export const command: Command = {
  help,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'serve') return runServe(rest);
    if (sub === 'deploy') return runDeploy(rest);
    if (sub === 'compile') return runCompile(rest);
    throw new CliError(
      sub === undefined
        ? 'say serve, deploy or compile (see --help)'
        : `unknown subcommand "${sub}": use serve, deploy or compile (see --help)`,
    );
  },
};
