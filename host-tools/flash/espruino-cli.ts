// Runs the installed EspruinoTools CLI (npm `espruino`) to upload a file to a board, offline: the
// board JSON, module and board-JSON locations are local, the online compiler is off and Bluetooth is
// not scanned. Used by `veilgrid flash` and by the upload test against an emulated board's console.
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ESPRUINO_CLI = resolve(REPO_ROOT, 'node_modules/espruino/bin/espruino-cli.js');
export const BOARD_JSON_DIR = resolve(REPO_ROOT, 'boards/espruino');
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
  /** Local Espruino board JSON (default: boards/espruino/esp32-meter.json). */
  boardJson?: string;
  save?: SaveMode;
  /** Serial baud rate; the ESP32 console runs at 115200. Ignored for tcp://. */
  baud?: number;
  /** The CLI is stopped after this long (real time); it otherwise waits for the board to go quiet. */
  timeoutMs?: number;
}

export interface UploadResult {
  /** The command line that ran (for printing, or running by hand). */
  command: string[];
  exitCode: number | null;
  /** Everything the CLI printed. */
  output: string;
  /** What the board printed, as the CLI relayed it (its `--] ` lines, prefix removed). */
  boardOutput: string[];
}

export class EspruinoCliError extends Error {
  constructor(
    message: string,
    readonly result: UploadResult,
  ) {
    super(message);
  }
}

/** The arguments for `node espruino-cli.js …` that upload `file` offline. */
export function espruinoCliArgs(opts: UploadOptions, fileBytes: number): string[] {
  const save = opts.save ?? 'boot';
  const args = [
    '--no-ble', // Bluetooth scanning needs D-Bus and is never how we reach a meter
    '-p', opts.port,
    '--board', opts.boardJson ?? resolve(BOARD_JSON_DIR, 'esp32-meter.json'),
    '--config', `MODULE_URL=${MODULE_DIR}`,
    '--config', `BOARD_JSON_URL=${BOARD_JSON_DIR}`,
    '--config', 'COMPILATION=false',
    '--config', `SAVE_ON_SEND=${SAVE_ON_SEND[save]}`,
  ];
  if (!opts.port.startsWith('tcp://')) args.push('-b', String(opts.baud ?? 115200));
  else if (fileBytes >= UNTHROTTLED_MIN_BYTES) {
    // TCP has its own flow control: no 19-byte/50 ms throttling, no 250 ms pause per Storage chunk.
    // (Espruino lifts the throttling itself for a Telnet console when it queries process.env.)
    args.push('--config', 'SERIAL_THROTTLE_SEND=2', '--config', 'STORAGE_UPLOAD_METHOD=1');
  }
  args.push(opts.file);
  return args;
}

/** Uploads `opts.file` with the real espruino CLI; rejects with EspruinoCliError when it failed. */
export async function uploadWithEspruinoCli(opts: UploadOptions): Promise<UploadResult> {
  if (!existsSync(ESPRUINO_CLI)) throw new Error(`the espruino CLI is not installed (${ESPRUINO_CLI} missing): run npm ci`);
  if (!existsSync(opts.file)) throw new Error(`nothing to upload: ${opts.file} does not exist`);
  const args = espruinoCliArgs(opts, statSync(opts.file).size);
  const command = [process.execPath, ESPRUINO_CLI, ...args];
  const child = spawn(process.execPath, [ESPRUINO_CLI, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('latin1').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('latin1').on('data', (d: string) => (output += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
  }, opts.timeoutMs ?? 120_000);
  const exitCode = await new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  clearTimeout(timer);
  const result: UploadResult = { command, exitCode, output, boardOutput: boardLines(output) };
  // The CLI exits 0 even when it could not connect, so its messages are what tell failure apart.
  if (timedOut) throw new EspruinoCliError(`the espruino CLI did not finish within ${opts.timeoutMs ?? 120_000} ms (is the board printing without pause?)`, result);
  if (exitCode !== 0) throw new EspruinoCliError(`the espruino CLI exited with ${exitCode}:\n${output}`, result);
  if (/Unable to connect/.test(output)) throw new EspruinoCliError(`the espruino CLI could not connect to ${opts.port}: is the board (or veilgrid emulate) running?\n${output}`, result);
  if (/Prompt not detected - upload failed/.test(output)) throw new EspruinoCliError(`the board did not answer the upload with a prompt:\n${output}`, result);
  return result;
}

/** The board's lines from the CLI's output (`--] text`). */
function boardLines(output: string): string[] {
  return output
    .split(/\r?\n/)
    .filter((line) => line.startsWith('--] '))
    .map((line) => line.slice(4));
}
