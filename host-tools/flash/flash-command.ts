// `veilgrid flash --port P [--port P …]`: builds the firmware (or takes --firmware), uploads it with the
// real espruino CLI to every port at once with a progress bar per meter, checks each meter runs the
// uploaded build after its reboot, and prints a summary. Exit 1 when any port failed.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { buildFirmware, BuildError, buildIdOf } from '../build/build-firmware.ts';
import { CliError, intOption, parseOptions, type Command } from '../cli/command.ts';
import { ConsolePasswords, ConsolePasswordStoreError } from '../provision/console-passwords.ts';
import { boardJsonFor, DEFAULT_CONCURRENCY, flashMeters, type MeterFlashResult } from './flash-meters.ts';
import { FlashProgressDisplay, type ProgressOutput } from './progress-display.ts';

const help = `usage: veilgrid flash --port PORT [--port PORT …] [--board esp32-meter] [--firmware FILE] [--no-verify]
                      [--operator-dir DIR --meter-id ID [--meter-id ID …]]

Builds the meter firmware and uploads it as boot code with the espruino CLI to every PORT at once, with
a progress bar per meter. Each meter reboots into it; then the running firmware is asked over its
console for its build id (vgInfo()) and the id is compared with the uploaded bundle's. A summary table
names each port's result; the exit code is 1 when any port failed (unreachable, upload timed out,
wrong build running after the reboot, no answer, console locked and no console password for it, or its
password refused), 2 for a usage error.

options:
  --port PORT         a meter's console: a serial device (/dev/ttyUSB0, 115200 baud) or tcp://HOST:PORT
                      (an emulated board's console: veilgrid emulate; veilgrid firmware turns Espruino's
                      network console off at boot); repeat for more
  --board ID          board id (default esp32-meter): the build target and boards/espruino/ID.espruino-board.json
  --firmware FILE     upload FILE (a bundle from veilgrid build) instead of building; its build id is
                      read from the file and checked against itself
  --no-verify         do not ask the meters which build they run after the reboot
  --operator-dir DIR  the operator folder whose console-passwords.json holds the meters' console passwords
                      (veilgrid provision keeps them there): a provisioned meter locks its console
  --meter-id ID       the meter on each --port, in the same order (one per port), to unlock its console
                      with its console password; the password is sent only when the console asks for it
  --concurrency N     meters worked on at the same time (default ${DEFAULT_CONCURRENCY})
  --timeout SECONDS   per-meter upload time limit (default: 30 s plus 1 s per 200 bytes of bundle)
  -h, --help          this text

The build id is the first 16 hex digits of the SHA-256 of the bundle (see veilgrid build --help).`;

export interface FlashCommandOptions {
  ports: string[];
  board?: string;
  /** A built bundle to upload; absent: build the firmware for `board` first. */
  firmware?: string;
  verify?: boolean;
  concurrency?: number;
  uploadTimeoutMs?: number;
  /** The operator folder holding console passwords (console-passwords.json), with meterIds. */
  operatorDir?: string;
  /** The meter on each port, in the order of `ports`, whose console password unlocks it. */
  meterIds?: string[];
}

export interface FlashOutcome {
  exitCode: number;
  buildId: string;
  results: MeterFlashResult[];
  /** Real time from the first upload starting to the last meter finishing. */
  seconds: number;
}

/** The command's work, for callers that are not the CLI (tests); `out` gets the progress and summary. */
export async function flash(opts: FlashCommandOptions, out: ProgressOutput): Promise<FlashOutcome> {
  if (opts.ports.length === 0) throw new CliError('give at least one --port (see --help)');
  const duplicate = opts.ports.find((p, i) => opts.ports.indexOf(p) !== i);
  if (duplicate) throw new CliError(`--port ${duplicate} is given twice: two uploads to one meter would interfere`);
  const board = opts.board ?? 'esp32-meter';
  try {
    boardJsonFor(board);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const consolePasswords = consolePasswordsByPort(opts);
  const verify = opts.verify !== false;
  const { file, buildId } = opts.firmware === undefined ? await build(board, out) : fromFile(opts.firmware, verify);

  out.write(`flashing ${shown(file)} (build ${buildId}) to ${opts.ports.length} meter(s)\n`);
  const display = new FlashProgressDisplay(opts.ports, out);
  const started = Date.now();
  const results = await flashMeters({
    ports: opts.ports,
    firmwareFile: file,
    buildId,
    board,
    verify,
    concurrency: opts.concurrency,
    uploadTimeoutMs: opts.uploadTimeoutMs,
    consolePasswords,
    onEvent: (e) => display.update(e),
  });
  const seconds = (Date.now() - started) / 1000;
  out.write('\n' + summaryTable(results, verify) + '\n');
  const failed = results.filter((r) => !r.ok).length;
  out.write(
    failed === 0
      ? `${results.length} meter(s) flashed${verify ? ' and running build ' + buildId : ' (not verified)'} in ${seconds.toFixed(1)} s\n`
      : `${failed} of ${results.length} meter(s) FAILED (${seconds.toFixed(1)} s)\n`,
  );
  return { exitCode: failed === 0 ? 0 : 1, buildId, results, seconds };
}

/** The console password of each port's meter (--meter-id in --port order), from the operator folder. */
function consolePasswordsByPort(opts: FlashCommandOptions): Map<string, string> {
  const ids = opts.meterIds ?? [];
  const byPort = new Map<string, string>();
  if (ids.length === 0 && opts.operatorDir === undefined) return byPort;
  if (opts.operatorDir === undefined)
    throw new CliError(
      '--meter-id needs --operator-dir: the folder whose console-passwords.json holds the console passwords',
    );
  if (ids.length !== opts.ports.length)
    throw new CliError(
      `give one --meter-id per --port, in the same order (${opts.ports.length} port(s), ${ids.length} meter id(s))`,
    );
  const store = new ConsolePasswords(opts.operatorDir);
  ids.forEach((id, i) => {
    let password: string | undefined;
    try {
      password = store.get(id);
    } catch (err) {
      if (err instanceof ConsolePasswordStoreError) throw new CliError(err.message);
      throw err;
    }
    if (password === undefined)
      throw new CliError(
        `no console password is stored for meter "${id}" in ${store.file}: is the meter id right, and was it provisioned with this operator folder?`,
      );
    byPort.set(opts.ports[i], password);
  });
  return byPort;
}

async function build(board: string, out: ProgressOutput): Promise<{ file: string; buildId: string }> {
  try {
    const built = await buildFirmware({ board });
    out.write(`built ${shown(built.outFile)}  ${built.bytes} bytes  build ${built.buildId}\n`);
    return { file: built.outFile, buildId: built.buildId };
  } catch (err) {
    if (err instanceof BuildError) throw new CliError(err.message, 1);
    throw err;
  }
}

function fromFile(file: string, verify: boolean): { file: string; buildId: string } {
  let code: string;
  try {
    code = readFileSync(file, 'latin1');
  } catch (err) {
    throw new CliError(`cannot read --firmware ${file}: ${(err as Error).message}`);
  }
  const buildId = buildIdOf(code);
  if (buildId === undefined && verify) {
    throw new CliError(
      `${file} carries no build id (was it built by veilgrid build?): without one the meters cannot be verified; pass --no-verify to flash it anyway`,
    );
  }
  return { file: path.resolve(file), buildId: buildId ?? 'unknown' };
}

function summaryTable(results: MeterFlashResult[], verify: boolean): string {
  const rows = [['port', 'result', 'running build', 'time', 'reason']];
  for (const r of results) {
    rows.push([
      r.port,
      r.ok ? 'ok' : `FAILED (${r.failure})`,
      r.running ? r.running.build : verify ? '-' : 'not verified',
      `${r.seconds.toFixed(1)} s`,
      r.message ?? '',
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows
    .map((row) =>
      row
        .map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function shown(file: string): string {
  return path.relative(process.cwd(), file) || file;
}

export const command: Command = {
  help,
  async run(argv) {
    const { values } = parseOptions(argv, {
      port: { type: 'string', multiple: true },
      board: { type: 'string', default: 'esp32-meter' },
      firmware: { type: 'string' },
      'no-verify': { type: 'boolean', default: false },
      concurrency: { type: 'string' },
      timeout: { type: 'string' },
      'operator-dir': { type: 'string' },
      'meter-id': { type: 'string', multiple: true },
    });
    const timeoutSeconds = values.timeout === undefined ? undefined : intOption(values.timeout, 'timeout', 0, 1);
    const outcome = await flash(
      {
        ports: values.port ?? [],
        board: values.board,
        firmware: values.firmware,
        verify: !values['no-verify'],
        concurrency: intOption(values.concurrency, 'concurrency', DEFAULT_CONCURRENCY, 1),
        uploadTimeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000,
        operatorDir: values['operator-dir'],
        meterIds: values['meter-id'],
      },
      process.stdout,
    );
    return outcome.exitCode;
  },
};
