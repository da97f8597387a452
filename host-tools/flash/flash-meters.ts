// Flashes one firmware bundle to many meters at once and checks each runs it: per port, the real
// espruino CLI uploads the bundle as boot code (the board reboots into it), then the running firmware
// is asked for its build id over the console and compared with the bundle's; a meter that does not
// answer or runs another build is flashed once more before it counts as failed. At most `concurrency`
// ports are worked on at a time; one port failing never stops the others.
import { existsSync, statSync } from 'node:fs';
import { EspruinoCliError, espruinoBoardFile, uploadWithEspruinoCli, type UploadProgress } from './espruino-cli.ts';
import { askRunningFirmware, NoAnswerError, type RunningFirmware } from './running-firmware.ts';

/** What a port goes through; `done`/`failed` are final. */
export type FlashStage = 'queued' | 'connecting' | 'uploading' | 'rebooting' | 'verifying' | 'done' | 'failed';

/** Why a port failed. */
export type FlashFailure =
  | 'unreachable' // nothing answered on the port
  | 'upload-timeout' // the upload did not finish in time
  | 'upload-failed' // the CLI reported another upload failure (no prompt, crashed)
  | 'no-answer' // the rebooted board did not say which firmware it runs
  | 'wrong-build' // it runs another build than the one uploaded
  | 'locked'; // its console is locked and no console password opened it

export interface FlashEvent {
  port: string;
  stage: FlashStage;
  /** Bytes of the bundle sent so far, of `totalBytes`. */
  sentBytes: number;
  totalBytes: number;
}

export interface MeterFlashResult {
  port: string;
  ok: boolean;
  failure?: FlashFailure;
  /** What went wrong and what to do, one line. */
  message?: string;
  /** What the meter said it runs after the reboot (absent when not verified or it did not say). */
  running?: RunningFirmware;
  /** Real time spent on this port, from its first connection attempt. */
  seconds: number;
}

export interface FlashOptions {
  ports: string[];
  /** The bundle to upload (as `veilgrid build` wrote it). */
  firmwareFile: string;
  /** Its build id (`buildIdOf`); what each meter must report after the reboot. */
  buildId: string;
  /** Board id: selects boards/espruino/<board>.espruino-board.json for the CLI (default esp32-meter). */
  board?: string;
  /** Ask each meter which build it runs after the reboot (default true). */
  verify?: boolean;
  /** Ports worked on at the same time (default 8). */
  concurrency?: number;
  /** Per-port upload time limit, real milliseconds (default: uploadTimeoutMs of the bundle size). */
  uploadTimeoutMs?: number;
  /** Time limit for asking a meter its build, real milliseconds (default 30 s). */
  verifyTimeoutMs?: number;
  /** Console passwords by port, for meters whose firmware locks the console (provisioned ones). */
  consolePasswords?: ReadonlyMap<string, string>;
  onEvent?: (event: FlashEvent) => void;
}

export const DEFAULT_CONCURRENCY = 8;
const DEFAULT_VERIFY_TIMEOUT_MS = 30_000;

/**
 * A generous upload time limit: a serial console takes the CLI's throttled path (19 bytes per 50 ms,
 * about 380 bytes/s) plus 250 ms per 1 KB Storage chunk; TCP is much faster. 30 s for connecting and
 * the reboot, then 200 bytes/s.
 */
export function uploadTimeoutMs(bundleBytes: number): number {
  return 30_000 + Math.ceil(bundleBytes / 200) * 1000;
}

/** The local Espruino board JSON the CLI uses for `board`. */
export function boardJsonFor(board: string): string {
  const file = espruinoBoardFile(board);
  if (!existsSync(file)) throw new Error(`no Espruino board JSON for "${board}": ${file} does not exist`);
  return file;
}

/** Flashes every port (at most `concurrency` at once) and resolves with one result per port, in order. */
export async function flashMeters(opts: FlashOptions): Promise<MeterFlashResult[]> {
  const boardJson = boardJsonFor(opts.board ?? 'esp32-meter');
  const totalBytes = statSync(opts.firmwareFile).size;
  const emit = (port: string, stage: FlashStage, sentBytes = 0) =>
    opts.onEvent?.({ port, stage, sentBytes, totalBytes });
  for (const port of opts.ports) emit(port, 'queued');

  const results: MeterFlashResult[] = new Array(opts.ports.length);
  let next = 0;
  const worker = async () => {
    while (next < opts.ports.length) {
      const index = next++;
      results[index] = await flashOne(opts.ports[index], opts, boardJson, totalBytes, emit);
    }
  };
  const workers = Math.max(1, Math.min(opts.concurrency ?? DEFAULT_CONCURRENCY, opts.ports.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return results;
}

async function flashOne(
  port: string,
  opts: FlashOptions,
  boardJson: string,
  totalBytes: number,
  emit: (port: string, stage: FlashStage, sentBytes?: number) => void,
): Promise<MeterFlashResult> {
  const started = Date.now();
  const finish = (result: Omit<MeterFlashResult, 'port' | 'seconds'>): MeterFlashResult => {
    emit(port, result.ok ? 'done' : 'failed', result.ok ? totalBytes : 0);
    return { port, ...result, seconds: (Date.now() - started) / 1000 };
  };

  let outcome = await uploadAndVerify(port, opts, boardJson, totalBytes, emit);
  if (!outcome.ok && (outcome.failure === 'no-answer' || outcome.failure === 'wrong-build')) {
    // The board may have missed the end of the upload (see UploadOptions.settleSeconds): once more.
    const first = outcome.message;
    outcome = await uploadAndVerify(port, opts, boardJson, totalBytes, emit);
    if (!outcome.ok)
      outcome.message +=
        first === outcome.message ? ' (uploaded twice)' : ` (uploaded twice; the first time: ${first})`;
  }
  return finish(outcome);
}

/** Seconds the CLI stays connected after the upload, so the board reads all of it and reboots. */
const SETTLE_SECONDS = 1;

async function uploadAndVerify(
  port: string,
  opts: FlashOptions,
  boardJson: string,
  totalBytes: number,
  emit: (port: string, stage: FlashStage, sentBytes?: number) => void,
): Promise<Omit<MeterFlashResult, 'port' | 'seconds'>> {
  const stageOf: Record<UploadProgress['stage'], FlashStage> = {
    connecting: 'connecting',
    sending: 'uploading',
    sent: 'rebooting',
  };
  let bootOutput: string[];
  const consolePassword = opts.consolePasswords?.get(port);
  try {
    const upload = await uploadWithEspruinoCli({
      port,
      consolePassword,
      file: opts.firmwareFile,
      boardJson,
      save: 'boot',
      timeoutMs: opts.uploadTimeoutMs ?? uploadTimeoutMs(totalBytes),
      settleSeconds: SETTLE_SECONDS,
      onProgress: (p) => emit(port, stageOf[p.stage], p.sentBytes),
    });
    bootOutput = upload.boardOutput;
  } catch (err) {
    return { ok: false, ...describeCliFailure(err, port, 'upload') };
  }
  if (opts.verify === false) return { ok: true };

  emit(port, 'verifying', totalBytes);
  let running: RunningFirmware;
  try {
    running = await askRunningFirmware(
      { port, boardJson, consolePassword, timeoutMs: opts.verifyTimeoutMs ?? DEFAULT_VERIFY_TIMEOUT_MS },
      bootOutput,
    );
  } catch (err) {
    if (err instanceof NoAnswerError)
      return { ok: false, failure: 'no-answer', message: `after the reboot: ${err.message}` };
    return { ok: false, ...describeCliFailure(err, port, 'verify') };
  }
  if (running.build !== opts.buildId) {
    return {
      ok: false,
      failure: 'wrong-build',
      running,
      message:
        `after the reboot the meter runs build ${running.build} (firmware ${running.firmware}, from its ${running.source}), not the uploaded ${opts.buildId}: ` +
        'boot code that takes precedence (.bootrst) or a crash at boot into older code? Look at the console (veilgrid emulate, or a terminal on the port)',
    };
  }
  return { ok: true, running };
}

function describeCliFailure(
  err: unknown,
  port: string,
  during: 'upload' | 'verify',
): { failure: FlashFailure; message: string } {
  if (!(err instanceof EspruinoCliError)) {
    return { failure: 'upload-failed', message: `${during}: ${(err as Error).message}` };
  }
  switch (err.failure) {
    case 'unreachable':
      return {
        failure: 'unreachable',
        message: `cannot connect to ${port}${/ \((E[A-Z]+)\)/.exec(err.message)?.[0] ?? ''}: is the meter powered and connected (or veilgrid emulate running), and the port right?`,
      };
    case 'locked':
      return {
        failure: 'locked',
        message:
          `the meter's console is locked (it asks for its console password: the meter is provisioned)${during === 'verify' ? ' after the reboot' : ''}: ` +
          'name the meter with --meter-id (one per --port, in the same order) and the operator folder holding its console password with --operator-dir',
      };
    case 'locked-refused':
      return {
        failure: 'locked',
        message: `the meter's console refused the console password stored for it: is --meter-id right for ${port}? (${err.message})`,
      };
    case 'timeout':
      return during === 'upload'
        ? {
            failure: 'upload-timeout',
            message: `the upload did not finish in time (${err.message}); a serial link may need a larger --timeout`,
          }
        : { failure: 'no-answer', message: `asking the meter for its build timed out: ${err.message}` };
    default:
      return {
        failure: during === 'upload' ? 'upload-failed' : 'no-answer',
        message: `${during} failed: ${firstLine(err.message)}`,
      };
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0];
}
