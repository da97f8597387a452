// The Espruino profile check against its corpus: every forbidden construct is rejected by name and line,
// and a sample of everything Espruino supports passes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { checkEspruinoProfile } from '../../espruino-profile/profile-check.ts';

const FIXTURES = path.resolve('test/fixtures/profile');
const rejectFiles = readdirSync(path.join(FIXTURES, 'reject'))
  .filter((f) => f.endsWith('.js'))
  .sort();

/** Each fixture starts with `// rejects: <construct> @ <line>` lines naming exactly what the check must report. */
function expectations(code: string): string[] {
  return [...code.matchAll(/^\/\/ rejects: (.+) @ (\d+)$/gm)].map((m) => `${m[1]} @ ${m[2]}`).sort();
}

test('the corpus covers the forbidden constructs', () => {
  assert.ok(rejectFiles.length >= 60, `only ${rejectFiles.length} fixtures`);
});

for (const file of rejectFiles) {
  test(`rejects ${file}`, () => {
    const code = readFileSync(path.join(FIXTURES, 'reject', file), 'utf8');
    const expected = expectations(code);
    assert.ok(expected.length > 0, `${file} has no "// rejects:" line`);
    const violations = checkEspruinoProfile(code, file);
    const found = violations.map((v) => `${v.construct} @ ${v.line}`).sort();
    assert.equal(found, expected);
    for (const v of violations) {
      assert.ok(v.column >= 1, `${file}: column ${v.column}`);
      assert.ok(v.message.length > 10, `${file}: ${v.construct} has no advice`);
    }
  });
}

test('the sample of everything Espruino supports passes', () => {
  const code = readFileSync(path.join(FIXTURES, 'accept/supported.js'), 'utf8');
  assert.equal(checkEspruinoProfile(code, 'supported.js'), []);
});

test('columns are 1-based and point at the construct', () => {
  const [v] = checkEspruinoProfile('var a = 1;\nvar b = a ** 2;\n');
  assert.equal({ line: v.line, column: v.column }, { line: 2, column: 9 });
});

test('a program may define its own name for a missing global', () => {
  assert.equal(checkEspruinoProfile('function Map() { this.items = {}; }\nvar m = new Map();\n'), []);
});

test('references guarded by typeof are allowed; unguarded ones are not', () => {
  const guarded = [
    'var ok = typeof Symbol === "function" && Symbol.iterator;',
    'var t = typeof Math.trunc === "function" ? Math.trunc(1.5) : 1;',
    'if (typeof Object.getOwnPropertySymbols === "function") Object.getOwnPropertySymbols({});',
    'var kind = typeof Map;',
  ].join('\n');
  assert.equal(checkEspruinoProfile(guarded), []);
  const unguarded = checkEspruinoProfile('if (typeof Symbol === "function") {} else { Symbol("x"); }');
  assert.equal(
    unguarded.map((v) => v.construct),
    ['Symbol'],
  );
});

test("regular expressions inside Espruino's engine pass", () => {
  const allowed = [
    '/^\\d+$/',
    '/[a-z_][a-z0-9_]*/i',
    '/a|b|c/g',
    '/(\\w+)=(\\w+)/',
    '/\\x41\\s*\\./',
    '/[-+]\\d+/',
    '/[^,]+/g',
  ];
  for (const re of allowed) assert.equal(checkEspruinoProfile(`var re = ${re};`), [], re);
});

test('veilgrid check prints file:line:col  construct  advice and exits 1, or says the file passes', () => {
  const bad = path.join(FIXTURES, 'reject/exponent.js');
  const failing = spawnSync(process.execPath, ['bin/veilgrid.js', 'check', bad], { encoding: 'utf8' });
  assert.is(failing.status, 1);
  assert.match(failing.stdout, `${bad}:2:11  exponent operator **  use Math.pow(a, b)`);
  const good = path.join(FIXTURES, 'accept/supported.js');
  const passing = spawnSync(process.execPath, ['bin/veilgrid.js', 'check', good], { encoding: 'utf8' });
  assert.is(passing.status, 0);
  assert.is(passing.stdout.trim(), `${good}: passes the Espruino 2v29 profile check`);
});

test.run();
