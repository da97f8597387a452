// Runs the installed EspruinoTools CLI (npm `espruino`) to upload a file to a board (with progress, if
// asked) or to run one line at its console, offline: the board JSON, module and board-JSON locations
// are local, the online compiler is off and Bluetooth is not scanned. Used by `veilgrid flash` and by
// the upload test against an emulated board's console.
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import {
  consoleIsLocked,
  MeterConsoleError,
  openUnlockedRelay,
  type ConsoleRelay,
} from '../../boards/console/meter-console.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ESPRUINO_CLI = resolve(REPO_ROOT, 'node_modules/espruino/bin/espruino-cli.js');
export const BOARD_JSON_DIR = resolve(REPO_ROOT, 'boards/espruino');

/**
 * The Espruino CLI's board file for a board id: EspruinoTools' schema (firmware version, built-in modules),
 * not veilgrid's board definition (boards/<id>.board-definition.json).
 */
export function espruinoBoardFile(board: string): string {
  return resolve(BOARD_JSON_DIR, `${board}.espruino-board.json`);
}
/** Espruino JS modules the CLI may inline for `require("X")` of a non-built-in module. */
export const MODULE_DIR = resolve(BOARD_JSON_DIR, 'modules');

/** Where uploaded code goes (EspruinoTools SAVE_ON_SEND). */
export type SaveMode =
  | 'ram' // 0: executed as it arrives, lost on reset
  | 'boot' // 1: written to `.bootcde`, then load(): runs at every boot
  | 'boot-always'; // 2: `.bootrst`, runs even after reset(): hard to recover from a crashing program

const SAVE_ON_SEND: Record<SaveMode, number> = { ram: 0, boot: 1, 'boot-always': 2 };

/**
 * Under this many bytes EspruinoTools 0.1.67 with throttling off never reports the write as done
 * (core/serial.js writeSerialWorker only calls back when the data exceeded one 512-byte block), so
 * small files keep its throttled 19-byte writes, which cost little at that size.
 */
const UNTHROTTLED_MIN_BYTES = 1024;

export interface UploadOptions {
  /** `tcp://host:port` (an emulated board's console, or Espruino's telnet) or a serial device path. */
  port: string;
  file: string;
  /** Local Espruino board JSON (default: boards/espruino/esp32-meter.espruino-board.json). */
  boardJson?: string;
  save?: SaveMode;
  /** Serial baud rate; the ESP32 console runs at 115200. Ignored for tcp://. */
  baud?: number;
  /** The CLI is stopped after this long (real time); it otherwise waits for the board to go quiet. */
  timeoutMs?: number;
  /**
   * The meter's console password. The CLI knows none, so it then reaches the meter through a local relay
   * that has unlocked the console first (meter-console.ts openUnlockedRelay); the unlock holds until the
   * board reboots into the upload, whose boot code locks it again.
   */
  consolePassword?: string;
  /**
   * Seconds the CLI stays connected after sending everything (its --sleep), before it starts waiting
   * for 500 ms of quiet. "Upload Complete" means written to the link, not run by the board: a board
   * busy (rebooting, or an emulator sharing a busy host) may not have read it all yet, and a TCP console
   * that answers after the CLI has gone gets a reset that throws away what it had not read.
   */
  settleSeconds?: number;
  /**
   * Called as the upload goes (runs the CLI with --verbose, whose `serial: Sending "…"` lines tell what
   * has been written to the board): connecting, then sending (bytes of the file sent so far), then sent
   * (the board is rebooting into the file; the call resolves once it has gone quiet).
   */
  onProgress?: (progress: UploadProgress) => void;
}

export interface UploadProgress {
  stage: 'connecting' | 'sending' | 'sent';
  /** Bytes of the file the board has been sent, in whole Storage chunks (0 before the first). */
  sentBytes: number;
  totalBytes: number;
}

/** The options evaluateWithEspruinoCli shares with an upload. */
export type EvaluateOptions = Pick<
  UploadOptions,
  'port' | 'boardJson' | 'baud' | 'timeoutMs' | 'consolePassword' | 'settleSeconds'
> & {
  /** One line of JavaScript, run at the board's console without echo (so only what it prints shows). */
  expression: string;
};

export interface UploadResult {
  /** The command line that ran (for printing, or running by hand). */
  command: string[];
  exitCode: number | null;
  /** Everything the CLI printed. */
  output: string;
  /** What the board printed, as the CLI relayed it (its `--] ` lines, prefix removed). */
  boardOutput: string[];
}

/**
 * Why the CLI failed: it could not connect, ran past its timeout, got no prompt, exited non-zero, or met a
 * locked console (no console password given: the board answered `Invalid password`; or the one given was
 * refused: `locked-refused`).
 */
export type EspruinoCliFailure = 'unreachable' | 'timeout' | 'no-prompt' | 'exit' | 'locked' | 'locked-refused';

export class EspruinoCliError extends VeilgridError {
  constructor(
    message: string,
    readonly result: UploadResult,
    readonly failure: EspruinoCliFailure,
  ) {
    super('EspruinoCliError', failure, message);
  }
}

/** The arguments for `node espruino-cli.js …` that upload `file` offline. */
export function espruinoCliArgs(opts: UploadOptions, fileBytes: number): string[] {
  const save = opts.save ?? 'boot';
  const args = [
    '--no-ble', // Bluetooth scanning needs D-Bus and is never how we reach a meter
    '-p',
    opts.port,
    '--board',
    opts.boardJson ?? espruinoBoardFile('esp32-meter'),
    '--config',
    `MODULE_URL=${MODULE_DIR}`,
    '--config',
    `BOARD_JSON_URL=${BOARD_JSON_DIR}`,
    '--config',
    'COMPILATION=false',
    '--config',
    `SAVE_ON_SEND=${SAVE_ON_SEND[save]}`,
  ];
  if (!opts.port.startsWith('tcp://')) args.push('-b', String(opts.baud ?? 115200));
  else if (fileBytes >= UNTHROTTLED_MIN_BYTES) {
    // TCP has its own flow control: no 19-byte/50 ms throttling, no 250 ms pause per Storage chunk.
    // (Espruino lifts the throttling itself for a Telnet console when it queries process.env.)
    args.push('--config', 'SERIAL_THROTTLE_SEND=2', '--config', 'STORAGE_UPLOAD_METHOD=1');
  }
  if (opts.settleSeconds) args.push('--sleep', String(opts.settleSeconds));
  if (opts.file) args.push(opts.file); // none when evaluating an expression (-e)
  return args;
}

const EVALUATE_SETTLE_SECONDS = 1;

/** Uploads `opts.file` with the real espruino CLI; rejects with EspruinoCliError when it failed. */
export async function uploadWithEspruinoCli(opts: UploadOptions): Promise<UploadResult> {
  if (!existsSync(opts.file)) throw new Error(`nothing to upload: ${opts.file} does not exist`);
  const fileBytes = statSync(opts.file).size;
  const args = espruinoCliArgs(opts, fileBytes);
  const onProgress = opts.onProgress;
  if (!onProgress) return runEspruinoCli(args, opts);
  onProgress({ stage: 'connecting', sentBytes: 0, totalBytes: fileBytes });
  const reader = new UploadProgressReader(fileBytes, onProgress);
  return runEspruinoCli(['--verbose', ...args], opts, (line) => reader.readCliLine(line));
}

/**
 * Runs one line of JavaScript at the board's console with the real espruino CLI (`-e`, nothing saved,
 * no reset) and returns what the board printed (`boardOutput`). The line runs with echo off, as every
 * line the CLI sends: it must print() what it wants to show.
 */
export async function evaluateWithEspruinoCli(opts: EvaluateOptions): Promise<UploadResult> {
  // The CLI leaves 500 ms after the board last printed; a busy board answers later than that, so wait a
  // settle time (default 1 s) for the expression's output.
  const args = espruinoCliArgs(
    { ...opts, settleSeconds: opts.settleSeconds ?? EVALUATE_SETTLE_SECONDS, file: '', save: 'ram' },
    0,
  );
  return runEspruinoCli([...args, '-e', opts.expression], opts);
}

async function runEspruinoCli(
  args: string[],
  opts: { port: string; timeoutMs?: number; consolePassword?: string },
  onLine?: (line: string) => void,
): Promise<UploadResult> {
  if (!existsSync(ESPRUINO_CLI))
    throw new Error(`the espruino CLI is not installed (${ESPRUINO_CLI} missing): run npm ci`);
  const noResult: UploadResult = { command: [], exitCode: null, output: '', boardOutput: [] };
  if (opts.consolePassword === undefined) {
    // A locked console would take every line of an upload as a refused password attempt: send none.
    if (await consoleIsLocked(opts.port))
      throw new EspruinoCliError(
        `the console of ${opts.port} is locked (it asks for its console password): nothing was sent`,
        noResult,
        'locked',
      );
    return runCli(args, opts, onLine);
  }
  let relay: ConsoleRelay;
  try {
    relay = await openUnlockedRelay(opts.port, opts.consolePassword, opts.timeoutMs);
  } catch (err) {
    if (!(err instanceof MeterConsoleError)) throw err;
    const failure: EspruinoCliFailure =
      err.locked === 'refused' ? 'locked-refused' : err.timedOut ? 'timeout' : err.locked ? 'locked' : 'unreachable';
    throw new EspruinoCliError(err.message, noResult, failure);
  }
  try {
    // The CLI talks to the relay; how fast it may send still follows the meter's own link (args were made for it).
    const relayed = args.map((arg, i) => (args[i - 1] === '-p' ? relay.port : arg));
    return await runCli(relayed, { ...opts, expectLock: true }, onLine);
  } finally {
    await relay.close();
  }
}

/** expectLock: the console was unlocked for the CLI, and the board's reboot into the upload locks it again. */
async function runCli(
  args: string[],
  opts: { port: string; timeoutMs?: number; expectLock?: boolean },
  onLine?: (line: string) => void,
): Promise<UploadResult> {
  const command = [process.execPath, ESPRUINO_CLI, ...args];
  const child = spawn(process.execPath, [ESPRUINO_CLI, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let partial = '';
  child.stdout.setEncoding('latin1').on('data', (d: string) => {
    output += d;
    if (!onLine) return;
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const line of lines) onLine(line);
  });
  child.stderr.setEncoding('latin1').on('data', (d: string) => (output += d));
  const timeoutMs = opts.timeoutMs ?? 120_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
  }, timeoutMs);
  const exitCode = await new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  clearTimeout(timer);
  const result: UploadResult = { command, exitCode, output, boardOutput: boardLines(output) };
  // The CLI exits 0 even when it could not connect, so its messages are what tell failure apart.
  if (timedOut)
    throw new EspruinoCliError(
      `the espruino CLI did not finish within ${timeoutMs} ms (is the board printing without pause?)`,
      result,
      'timeout',
    );
  if (exitCode !== 0)
    throw new EspruinoCliError(`the espruino CLI exited with ${exitCode}:\n${output}`, result, 'exit');
  // A refused TCP connection prints only `RECEIVE ERROR: {…ECONNREFUSED…}`; a serial port that will not
  // open prints `Unable to connect!`. Either way the CLI never logs `Connected`.
  if (/Unable to connect/.test(output) || !/^Connected\s*$/m.test(output)) {
    const reason = /^RECEIVE ERROR: .*"code":"(\w+)"/m.exec(output)?.[1];
    throw new EspruinoCliError(
      `the espruino CLI could not connect to ${opts.port}${reason ? ` (${reason})` : ''}: is the board (or veilgrid emulate) running?\n${output}`,
      result,
      'unreachable',
    );
  }
  if (/Prompt not detected - upload failed/.test(output))
    throw new EspruinoCliError(`the board did not answer the upload with a prompt:\n${output}`, result, 'no-prompt');
  // A locked console takes every line as a password attempt and runs none of them.
  if (!opts.expectLock && /^--\] +Invalid password/m.test(output))
    throw new EspruinoCliError(
      `the console of ${opts.port} is locked (it answered "Invalid password"): nothing was run`,
      result,
      'locked',
    );
  return result;
}

/**
 * Follows the CLI's --verbose output: `Connected`, then `serial: Sending "<JSON string>"` lines telling
 * what went to the board, then `Upload Complete` (after which the CLI waits for the board to go quiet:
 * the reboot into the new code). EspruinoTools (plugins/saveOnSend.js) sends the file as one statement
 * per 1024-byte chunk, `require("Storage").write(NAME,"<chunk>",OFFSET[,TOTAL]);`, each on its own line
 * (newlines inside the chunk are escaped), so a complete statement line means that chunk has gone out.
 */
class UploadProgressReader {
  private text = '';
  private sent = 0;

  constructor(
    private readonly totalBytes: number,
    private readonly onProgress: (progress: UploadProgress) => void,
  ) {}

  readCliLine(line: string): void {
    if (line.startsWith('Connected')) return this.report('sending');
    if (line.startsWith('Upload Complete')) {
      this.sent = this.totalBytes;
      return this.report('sent');
    }
    const sending = /^serial: Sending (".*")\s*$/.exec(line);
    if (!sending) return;
    let chunk: string;
    try {
      chunk = JSON.parse(sending[1]) as string;
    } catch {
      return; // not a line the CLI wrote whole; the next chunk still counts
    }
    const statements = (this.text + chunk).split('\n');
    this.text = statements.pop()!;
    for (const statement of statements) {
      const write = /^\x10?require\("Storage"\)\.write\(.*",(\d+)(?:,\d+)?\);$/.exec(statement);
      if (!write) continue;
      const sent = Math.min(Number(write[1]) + STORAGE_CHUNK_BYTES, this.totalBytes);
      if (sent > this.sent) {
        this.sent = sent;
        this.report('sending');
      }
    }
  }

  private report(stage: UploadProgress['stage']): void {
    this.onProgress({ stage, sentBytes: this.sent, totalBytes: this.totalBytes });
  }
}

/** EspruinoTools' saveOnSend CHUNKSIZE: the file goes to Storage this many bytes per statement. */
const STORAGE_CHUNK_BYTES = 1024;
/** The board's lines from the CLI's output (`--] text`). */
function boardLines(output: string): string[] {
  return output
    .split(/\r?\n/)
    .filter((line) => line.startsWith('--] '))
    .map((line) => line.slice(4));
}
