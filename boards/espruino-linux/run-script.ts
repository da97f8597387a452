// Runs one script in the real Espruino interpreter and collects what it prints: for differential tests
// and measurements that need the interpreter's own answers, not a board's hardware.
//
// The interpreter runs in a temporary directory (its Storage, espruino.flash, lands there), with the
// script as its file argument and stdin an open pipe (at end of input its console spins printing
// garbage). Espruino runs the file statement by statement, then its idle loop runs timers: a timer
// set by the first line prints the end marker once the script and anything it threw are done, so the
// output is complete when the marker appears; an uncaught exception in the file ends the process
// instead (the Linux build exits). The process ignores SIGTERM; it is stopped with SIGKILL.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const START = '<<veilgrid-script-start>>';
const END = '<<veilgrid-script-end>>';

export interface ScriptRun {
  /** Everything the script printed (lines end in \r\n, as on Espruino's console), banner excluded. */
  output: string;
  /**
   * The interpreter's exit code when it ended by itself: the Linux build exits with 1 after an uncaught
   * exception in the script file (the output then ends with its "Uncaught ..." report). undefined when
   * the script ran to its end marker.
   */
  exitCode?: number;
}

export interface RunScriptOptions {
  /** Give up after this long (default 60 s): the script hangs or the interpreter died. */
  timeoutMs?: number;
}

/** Runs code (ASCII or 8-bit text) in the interpreter at binary and resolves with its output. */
export function runEspruinoScript(binary: string, code: string, options: RunScriptOptions = {}): Promise<ScriptRun> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const work = mkdtempSync(path.join(tmpdir(), 'veilgrid-espruino-'));
  const script = path.join(work, 'script.js');
  // Markers are built by concatenation so that the script text itself never contains them.
  writeFileSync(
    script,
    `print("${START.slice(0, 2)}"+"${START.slice(2)}");setTimeout(function(){print("${END.slice(0, 2)}"+"${END.slice(2)}");},0);\n${code}`,
    'latin1',
  );
  const child = spawn(binary, [script], { cwd: work, stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise<ScriptRun>((resolve, reject) => {
    let all = '';
    let errors = '';
    const finish = (error?: Error, exitCode?: number) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      rmSync(work, { recursive: true, force: true });
      if (error) reject(error);
      else {
        const start = all.indexOf(START);
        const end = all.indexOf(END);
        resolve({ output: all.slice(start + START.length + 2, end < 0 ? undefined : end), exitCode });
      }
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `the Espruino interpreter did not finish the script within ${timeoutMs} ms; it printed:\n${all.slice(-4000)}${errors}`,
          ),
        ),
      timeoutMs,
    );
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      all += chunk;
      if (all.includes(END)) finish();
    });
    child.stderr.setEncoding('latin1');
    child.stderr.on('data', (chunk: string) => {
      errors += chunk;
    });
    child.on('error', (err) => finish(new Error(`cannot start the Espruino interpreter ${binary}: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (all.includes(END) || signal === 'SIGKILL') return;
      if (code !== null && all.includes(START)) finish(undefined, code);
      else
        finish(
          new Error(
            `the Espruino interpreter ended (${signal ?? 'code ' + code}) before running the script; it printed:\n${all.slice(-4000)}${errors}`,
          ),
        );
    });
  });
}
