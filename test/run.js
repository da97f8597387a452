// Runs every test/**/*.test.ts with uvu in one process. `node test/run.js unit/cbor` runs the files whose path contains "unit/cbor".
// Prints the slowest files at the end (CI's 20-minute budget is spent there) and stops the run when one file takes
// longer than VEILGRID_TEST_FILE_TIMEOUT_S seconds (default 600): a test that hangs must fail CI, not stall it.
import { writeSync } from 'node:fs';
import { register } from 'tsx/esm/api';
import { parse } from 'uvu/parse';

register();
const filter = process.argv[2];
const fileTimeoutS = Number(process.env.VEILGRID_TEST_FILE_TIMEOUT_S ?? 600);
const { suites } = await parse('test', /\.test\.ts$/);
const chosen = filter ? suites.filter((s) => s.file.includes(filter)) : suites;
if (chosen.length === 0) {
  console.error(`no test file matches "${filter}"`);
  process.exit(2);
}

// What uvu/run does, keeping each file's queue entry so its tests can be timed.
globalThis.UVU_DEFER = 1;
const uvu = await import('uvu');
for (const [index, suite] of chosen.entries()) {
  globalThis.UVU_INDEX = index;
  globalThis.UVU_QUEUE.push([suite.name]);
  await import('file:///' + suite.file);
}

const spentMs = new Map();
for (const group of globalThis.UVU_QUEUE) {
  const name = group[0];
  for (let i = 1; i < group.length; i++) {
    const runTests = group[i];
    group[i] = async () => {
      const started = Date.now();
      const watchdog = setTimeout(() => {
        writeSync(2, `\n\ntest/run.js: ${name} has run for ${fileTimeoutS} s: stopping the whole run (a hang?)\n`);
        // The process group: the tests' child processes (brokers, interpreters) go too, so nothing holds CI's output open.
        process.kill(0, 'SIGTERM');
      }, fileTimeoutS * 1000);
      try {
        return await runTests();
      } finally {
        clearTimeout(watchdog);
        spentMs.set(name, (spentMs.get(name) ?? 0) + Date.now() - started);
      }
    };
  }
}
await uvu.exec(false);

if (spentMs.size > 1) {
  const slowest = [...spentMs].sort((a, b) => b[1] - a[1]).slice(0, 12);
  console.log('  Slowest files:');
  for (const [name, ms] of slowest) console.log(`  ${(ms / 1000).toFixed(1).padStart(7)} s  ${name}`);
}
