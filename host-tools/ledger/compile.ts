// Compiles the market contracts with the solc npm package (wasm, offline) into dist/ledger/, cached by a hash of
// the sources, the compiler version and the settings: a clean clone compiles once on first use, later runs read
// the cache. The artefacts are build output, never committed.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Abi, Hex } from 'viem';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CONTRACTS_DIR = path.join(here, 'contracts');
export const CACHE_DIR = path.resolve(here, '../../dist/ledger');

/** Osaka is the first fork with P256VERIFY at 0x100; the optimizer's runs favour calls over deployment. */
const SETTINGS = {
  optimizer: { enabled: true, runs: 1000 },
  viaIR: true,
  evmVersion: 'osaka',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};

export interface ContractArtifact {
  abi: Abi;
  bytecode: Hex;
  deployedBytecode: Hex;
}

export type Artifacts = Record<string, ContractArtifact>;

export class CompileError extends VeilgridError {
  constructor(message: string) {
    super('CompileError', 'solidity-compile', message);
  }
}

interface SolcModule {
  version(): string;
  compile(input: string): string;
}

function loadSolc(): SolcModule {
  return createRequire(import.meta.url)('solc') as SolcModule;
}

function readSources(): Record<string, { content: string }> {
  const sources: Record<string, { content: string }> = {};
  for (const name of fs
    .readdirSync(CONTRACTS_DIR)
    .filter((f) => f.endsWith('.sol'))
    .sort()) {
    sources[name] = { content: fs.readFileSync(path.join(CONTRACTS_DIR, name), 'utf8') };
  }
  return sources;
}

function solcPackageVersion(): string {
  const pkg = createRequire(import.meta.url)('solc/package.json') as { version: string };
  return pkg.version;
}

/** The artefacts of every contract in contracts/, compiled now or read from the cache. */
export function compileContracts(): Artifacts {
  const sources = readSources();
  const key = crypto
    .createHash('sha256')
    .update(JSON.stringify({ sources, settings: SETTINGS, solc: solcPackageVersion() }))
    .digest('hex')
    .slice(0, 16);
  const cacheFile = path.join(CACHE_DIR, `contracts-${key}.json`);
  if (fs.existsSync(cacheFile)) return JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as Artifacts;

  const output = JSON.parse(
    loadSolc().compile(JSON.stringify({ language: 'Solidity', sources, settings: SETTINGS })),
  ) as {
    errors?: { severity: string; formattedMessage: string }[];
    contracts?: Record<
      string,
      Record<string, { abi: Abi; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>
    >;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0)
    throw new CompileError(`solc refused the contracts:\n${errors.map((e) => e.formattedMessage).join('\n')}`);

  const artifacts: Artifacts = {};
  for (const file of Object.values(output.contracts ?? {})) {
    for (const [name, c] of Object.entries(file)) {
      artifacts[name] = {
        abi: c.abi,
        bytecode: `0x${c.evm.bytecode.object}`,
        deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
      };
    }
  }
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  // Write then rename, so a concurrent reader never sees half a file.
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(artifacts));
  fs.renameSync(tmp, cacheFile);
  return artifacts;
}
