// Asks a meter over its console which firmware it is running: `vgInfo()` (the firmware's console entry
// point, firmware/src/provisioning) returns `{"firmware","build",…}` as a JSON string. Firmware without
// it (built before that entry point existed) is recognised by the line it prints at boot,
// `veilgrid meter firmware <version> (build <id>)` (firmware/src/main.ts), as the upload relayed it.
import { isConsoleFailure, type MeterInfo } from '../../firmware/src/protocol/console-contract.ts';
import { evaluateWithEspruinoCli, type EvaluateOptions } from './espruino-cli.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export interface RunningFirmware extends Pick<MeterInfo, 'firmware' | 'build'> {
  /** Where the answer came from: vgInfo() asked after the reboot, or the boot line seen during it. */
  source: 'vgInfo' | 'boot line';
}

const INFO_MARKER = 'vg-info ';
/**
 * Prints vgInfo()'s JSON after a marker (the CLI runs the line with echo off, so only print() shows),
 * or `{}` when the firmware has no vgInfo. Plain ES5 that passes the Espruino profile check.
 */
const INFO_EXPRESSION = `print(${JSON.stringify(INFO_MARKER)}+(typeof vgInfo=="function"?vgInfo():"{}"))`;

const BOOT_LINE = /veilgrid meter firmware (\S+) \(build ([0-9a-f]{16}|dev)\)/;

/** The firmware and build named by the last boot line in `lines` (a board's console output). */
export function firmwareFromBootLine(lines: string[]): RunningFirmware | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = BOOT_LINE.exec(lines[i]);
    if (m) return { firmware: m[1], build: m[2], source: 'boot line' };
  }
  return undefined;
}

export class NoAnswerError extends VeilgridError {
  constructor(message: string) {
    super('NoAnswerError', 'no-answer', message);
  }
}

/** Times the console is asked before giving up, and the pause between (real time). */
const ATTEMPTS = 3;
const RETRY_PAUSE_MS = 1000;

/**
 * Asks the firmware running on `opts.port` for its build with vgInfo(); when it has none, falls back to
 * `bootOutput` (what the board printed as it rebooted). A meter still busy booting may not answer before
 * the CLI leaves (it waits only 500 ms after the board last printed) or may not have defined vgInfo yet,
 * so a silent console or a missing vgInfo is asked again, up to 3 times. Rejects with NoAnswerError when
 * nothing tells, or with the CLI's EspruinoCliError when the console could not be reached.
 */
export async function askRunningFirmware(
  opts: Omit<EvaluateOptions, 'expression'>,
  bootOutput: string[] = [],
): Promise<RunningFirmware> {
  let problem = '';
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    if (attempt > 1) await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
    const result = await evaluateWithEspruinoCli({ ...opts, expression: INFO_EXPRESSION });
    const line = result.boardOutput.find((l) => l.includes(INFO_MARKER));
    if (line === undefined) {
      problem = `the console did not answer vgInfo(); it printed ${JSON.stringify(result.boardOutput.join('\n'))}`;
      continue;
    }
    let info: Partial<MeterInfo>;
    try {
      info = JSON.parse(line.slice(line.indexOf(INFO_MARKER) + INFO_MARKER.length));
    } catch {
      throw new NoAnswerError(`vgInfo() did not return JSON: ${line}`);
    }
    if (typeof info.build === 'string' && typeof info.firmware === 'string')
      return { firmware: info.firmware, build: info.build, source: 'vgInfo' };
    if (isConsoleFailure(info)) throw new NoAnswerError(`vgInfo() failed on the meter: ${info.error}`);
    const booted = firmwareFromBootLine(bootOutput);
    if (booted) return booted;
    problem =
      'the running code has no vgInfo() and printed no veilgrid boot line: it is not veilgrid meter firmware, or it did not boot';
  }
  throw new NoAnswerError(`${problem} (asked ${ATTEMPTS} times)`);
}
