// Runs every test/**/*.test.ts with uvu in one process. `node test/run.js unit/cbor` runs the files whose path contains "unit/cbor".
import { register } from 'tsx/esm/api';
import { parse } from 'uvu/parse';
import { run } from 'uvu/run';

register();
const filter = process.argv[2];
const { suites } = await parse('test', /\.test\.ts$/);
const chosen = filter ? suites.filter((s) => s.file.includes(filter)) : suites;
if (chosen.length === 0) {
  console.error(`no test file matches "${filter}"`);
  process.exit(2);
}
await run(chosen, { bail: false });
