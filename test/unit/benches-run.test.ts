// The benches whose figures bench/RESULTS.md records must still run: CI typechecks them but runs none, so a
// change to what they call (a format, a signature) could leave one failing unseen, as onion v2 left
// bench/bridge-exit.ts. The fast ones run here with tiny sizes; their figures are not looked at.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Each bench with arguments that make it quick, and a line of its output that says it got to the end. */
const BENCHES: Array<{ file: string; args: string[]; ends: RegExp }> = [
  { file: 'bridge-exit.ts', args: ['--packets', '20', '--rounds', '1'], ends: /exit \+ offer check/ },
  { file: 'bridge-verify.ts', args: ['--offers', '20', '--rounds', '1'], ends: /bridge overhead/ },
  { file: 'dso-verify.ts', args: ['--meters', '2', '--readings', '5'], ends: /readings in/ },
  { file: 'asset-issuance.ts', args: ['--sizes', '10'], ends: /per-transaction cap/ },
  { file: 'fuzz-dso.ts', args: ['200', '1'], ends: /exceptions escaping 0, forgeries accepted 0/ },
  { file: 'ledger-gas.ts', args: ['--sizes', '10', '--batch', '10'], ends: /└/ },
];

for (const bench of BENCHES) {
  test(`bench/${bench.file} ${bench.args.join(' ')} runs to its end`, () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', `bench/${bench.file}`, ...bench.args], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.is(run.status, 0, `exit ${run.status}\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, bench.ends);
  });
}

test.run();
