// A real JSON-RPC node for multi-process runs: foundry's anvil, from its npm package (the platform package
// ships the binary, so nothing is downloaded), with Osaka's rules including EIP-7825's transaction gas cap,
// listening on 127.0.0.1 only.
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export class AnvilError extends VeilgridError {
  constructor(message: string) {
    super('AnvilError', 'anvil', message);
  }
}

export interface AnvilNode {
  url: string;
  pid: number;
  /** Resolves when anvil has exited (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Resolves with the exit code if anvil ends on its own. */
  exited: Promise<number | null>;
}

const PLATFORM_PACKAGES: Record<string, string> = {
  'linux-x64': '@foundry-rs/anvil-linux-amd64',
  'linux-arm64': '@foundry-rs/anvil-linux-arm64',
  'darwin-x64': '@foundry-rs/anvil-darwin-amd64',
  'darwin-arm64': '@foundry-rs/anvil-darwin-arm64',
};

export function anvilBinary(): string {
  const platform = `${process.platform}-${process.arch}`;
  const pkg = PLATFORM_PACKAGES[platform];
  if (!pkg)
    throw new AnvilError(
      `anvil's npm package has no binary for ${platform}: run another node and give its URL (--rpc)`,
    );
  try {
    return path.join(path.dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), 'bin', 'anvil');
  } catch {
    throw new AnvilError(`${pkg} is not installed (npm ci installs it with @foundry-rs/anvil on ${platform})`);
  }
}

export async function startAnvil(options: {
  port: number;
  chainId?: number;
  blockTimeSeconds?: number;
}): Promise<AnvilNode> {
  const args = [
    '--host',
    '127.0.0.1',
    '--port',
    String(options.port),
    '--hardfork',
    'osaka',
    '--enable-tx-gas-limit',
    '--chain-id',
    String(options.chainId ?? 31337),
  ];
  if (options.blockTimeSeconds) args.push('--block-time', String(options.blockTimeSeconds));
  const child: ChildProcess = spawn(anvilBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /Listening on (127\.0\.0\.1:\d+)/.exec(output);
      if (listening) resolve(`http://${listening[1]}`);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (err) => reject(new AnvilError(`cannot start anvil: ${err.message}`)));
    void exited.then((code) =>
      reject(
        new AnvilError(
          `anvil exited (code ${code}) before listening: ${output.trim().split('\n').slice(-3).join(' ')}`,
        ),
      ),
    );
  });
  // From here on anvil's banner and logs are not needed; keep the pipes drained.
  child.stdout!.removeAllListeners('data').resume();
  child.stderr!.removeAllListeners('data').resume();
  return {
    url,
    pid: child.pid!,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
