// `veilgrid testbed --board espruino-linux`: a microgrid of real Espruino interpreters, one process per
// meter, each provisioned through its console, reporting signed, sealed readings through aedes to the DSO
// and trading through the mixnet of the others, in real time. Every reading of the window must arrive and
// verify, and every offer sent must reach the chain with none lost. Skipped (and said so) where the
// interpreter is absent. 30-second intervals: the first window a meter sees is usually too late for its
// assets, so four intervals leave two or three to trade in.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unavailable } from '../../boards/harness/meter-board.ts';
import type { TestbedSummary } from '../../host-tools/testbed/testbed.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const missing = unavailable('espruino-linux');

test('veilgrid testbed --board espruino-linux --meters 3 --intervals 4 --interval-seconds 30 --json: every reading arrives and verifies; offers reach the chain through the mixnet, none lost', async () => {
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
    '4',
    '--interval-seconds',
    '30',
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
  const all = JSON.stringify(summary);
  assert.is(summary.board, 'espruino-linux');
  assert.is(summary.readings.expected, 12);
  assert.is(summary.readings.received, 12, all);
  assert.is(summary.readings.missing, 0);
  assert.is(summary.readings.rejected, 0);
  assert.ok(summary.readings.verified >= 12, JSON.stringify(summary.readings));
  assert.is(summary.gaps.lostSequenceNumbers, 0);
  assert.ok(summary.offers, `no market in the summary: ${all}`);
  const offers = summary.offers!;
  assert.ok(offers.sent >= 1, `no offer was sent: ${all}`);
  assert.is(offers.onChain + offers.rejected, offers.sent, all);
  assert.ok(summary.mix?.enabled, all);
  assert.is(summary.mix!.lost, 0, all);
  assert.ok(summary.mix!.dummies > 0 && summary.mix!.relays.forwarded > 0, all);
  console.log(
    `    3 real interpreters: ${summary.readings.verified} readings verified, ${offers.onChain} of ${offers.sent} offers on chain through the mixnet in ${summary.wallSeconds} s`,
  );
});

test.run();
