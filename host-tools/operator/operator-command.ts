// `veilgrid operator`: create and inspect the operator's signing key (operator-key.ts).
import fs from 'node:fs';
import { CliError, intOption, parseOptions, type Command } from '../cli/command.ts';
import {
  DEFAULT_VALIDITY_DAYS,
  initOperator,
  OperatorKeyError,
  showOperator,
  type OperatorSummary,
} from './operator-key.ts';

export const PASSPHRASE_ENV = 'VEILGRID_OPERATOR_PASSPHRASE';

const help = `usage: veilgrid operator init --dir DIR [--operator-id ID] [--passphrase-file FILE] [--valid-days N] [--force]
       veilgrid operator show --dir DIR [--json]

Manages the operator's P-256 signing key, which signs every meter's device certificate at provisioning.

  init   creates DIR/operator-key.json (the private key encrypted with your passphrase: scrypt
         N=2^15 r=8 p=1 + AES-256-GCM; file mode 0600) and DIR/operator-cert.cbor (the self-signed
         operator certificate the DSO is told to trust). Refuses to replace an existing key.
  show   prints the operator id, public key, kid and validity (no passphrase needed).

options:
  --dir DIR              folder holding the key and certificate (created if missing, mode 0700)
  --operator-id ID       operator id in the certificate (A-Z a-z 0-9 . _ -, up to 64 characters;
                         default "operator-" and the first 4 bytes of the key id)
  --passphrase-file FILE read the passphrase from FILE (its first line); otherwise it is taken from the
                         environment variable ${PASSPHRASE_ENV}. It is never accepted on the
                         command line, where other users could read it. At least 8 characters.
  --valid-days N         certificate validity in days (default ${DEFAULT_VALIDITY_DAYS})
  --force                replace an existing key (meters certified by the old key then need the DSO to
                         keep trusting the old certificate, or re-provisioning)
  --json                 (show) print the summary as JSON
  -h, --help             this text`;

/** The passphrase from --passphrase-file (first line) or the environment; a CliError naming both when absent. */
export function readPassphrase(passphraseFile: string | undefined): string {
  if (passphraseFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(passphraseFile, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read the passphrase file ${passphraseFile}: ${(err as Error).message}`);
    }
    const line = text.split(/\r?\n/)[0];
    if (line.length === 0)
      throw new CliError(`the passphrase file ${passphraseFile} is empty (its first line is the passphrase)`);
    return line;
  }
  const fromEnv = process.env[PASSPHRASE_ENV];
  if (fromEnv) return fromEnv;
  throw new CliError(
    `no passphrase: give --passphrase-file FILE or set ${PASSPHRASE_ENV} (a passphrase is never taken on the command line)`,
  );
}

function describe(summary: OperatorSummary): string {
  return [
    `operator id   ${summary.operatorId}`,
    `public key    ${summary.publicKey}`,
    `kid           ${summary.kid}`,
    `valid         ${new Date(summary.notBefore * 1000).toISOString()} .. ${new Date(summary.notAfter * 1000).toISOString()}`,
    `created       ${summary.createdAt}`,
    `key file      ${summary.keyFile}`,
    `certificate   ${summary.certificateFile}`,
  ].join('\n');
}

async function runInit(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    dir: { type: 'string' },
    'operator-id': { type: 'string' },
    'passphrase-file': { type: 'string' },
    'valid-days': { type: 'string' },
    force: { type: 'boolean', default: false },
  });
  if (!values.dir) throw new CliError('init needs --dir DIR (where the key and certificate go)');
  const passphrase = readPassphrase(values['passphrase-file']);
  const summary = await initOperator({
    dir: values.dir,
    passphrase,
    operatorId: values['operator-id'],
    force: values.force,
    validityDays: intOption(values['valid-days'], 'valid-days', DEFAULT_VALIDITY_DAYS, 1),
  });
  console.log(describe(summary));
  console.log(
    `\nGive ${summary.certificateFile} to the DSO to trust; keep the passphrase safe: the key cannot be recovered without it.`,
  );
  return 0;
}

async function runShow(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, { dir: { type: 'string' }, json: { type: 'boolean', default: false } });
  if (!values.dir) throw new CliError('show needs --dir DIR');
  const summary = showOperator(values.dir);
  console.log(values.json ? JSON.stringify(summary, null, 2) : describe(summary));
  return 0;
}

export const command: Command = {
  help,
  async run(argv) {
    const [sub, ...rest] = argv;
    try {
      if (sub === 'init') return await runInit(rest);
      if (sub === 'show') return await runShow(rest);
    } catch (err) {
      if (err instanceof OperatorKeyError) throw new CliError(err.message, 1);
      throw err;
    }
    throw new CliError(
      sub === undefined
        ? 'say init or show (see --help)'
        : `unknown subcommand "${sub}": use init or show (see --help)`,
    );
  },
};
