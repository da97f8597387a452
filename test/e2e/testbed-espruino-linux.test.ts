// `veilgrid testbed --board espruino-linux`: a microgrid of real Espruino interpreters, one process per
// meter, each provisioned through its console and reporting signed, sealed readings through aedes to the
// DSO in real time. Every reading of the window must arrive and verify. Skipped (and said so) where the
// interpreter is absent. Without the market: at 10-second intervals a real interpreter's trading SE work
// on a shared 2-core machine competes with its readings; trading on the real interpreter is
// test/hil/trading.test.ts's, at intervals it can keep.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unavailable } from '../../boards/harness/meter-board.ts';
import type { TestbedSummary } from '../../host-tools/testbed/testbed.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const missing = unavailable('espruino-linux');

test('veilgrid testbed --board espruino-linux --meters 3 --intervals 3 --interval-seconds 20 --no-market --json: every reading arrives and verifies', async () => {
  if (missing) {
    console.log(`    SKIPPED the real-interpreter testbed: ${missing}`);
    return;
  }
  const args = [
    'bin/veilgrid.js',
    'testbed',
    '--board',
    'espruino-linux',
    '--meters',
    '3',
    '--intervals',
    '3',
    '--interval-seconds',
    '20',
    '--no-market',
    '--json',
  ];
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((done) => child.on('close', done));
  assert.is(code, 0, `exit ${code}\n${stdout}\n${stderr}`);
  const summary = JSON.parse(stdout.trim().split('\n').pop()!) as TestbedSummary;
  assert.is(summary.board, 'espruino-linux');
  assert.is(summary.readings.expected, 9);
  assert.is(summary.readings.received, 9, JSON.stringify(summary));
  assert.is(summary.readings.missing, 0);
  assert.is(summary.readings.rejected, 0);
  assert.ok(summary.readings.verified >= 9, JSON.stringify(summary.readings));
  assert.is(summary.gaps.lostSequenceNumbers, 0);
  console.log(`    3 real interpreters: ${summary.readings.verified} readings verified in ${summary.wallSeconds} s`);
});

test.run();
