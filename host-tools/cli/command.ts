// What every subcommand module exports, and the option parsing they share. The dispatcher that lists the
// commands is ../veilgrid.ts: nothing here imports a command, so every tool folder can import this one.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export interface Command {
  /** Full --help text: usage line, what it does, every option. */
  help: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** An error the user can fix: printed as one line without a stack trace. */
export class CliError extends VeilgridError {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super('CliError', 'cli', message);
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses options strictly; an unknown or malformed option becomes a CliError naming it. */
export function parseOptions<T extends Options>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new CliError(`${(err as Error).message} (see --help)`);
  }
}

/** Reads a whole-number option, with a clear error when it is not one. */
export function intOption(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new CliError(`--${name} must be a whole number ≥ ${min}, got "${value}"`);
  return n;
}

/** Reads a HOST:PORT option (port 0..65535), with a clear error when it is not one. */
export function hostPortOption(text: string, name: string): { host: string; port: number } {
  const match = /^([^:]+):(\d+)$/.exec(text);
  if (!match) throw new CliError(`--${name} must be HOST:PORT, got "${text}"`);
  const port = Number(match[2]);
  if (port > 65535) throw new CliError(`--${name} port must be at most 65535, got ${port}`);
  return { host: match[1], port };
}
