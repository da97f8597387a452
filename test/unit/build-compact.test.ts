// Minifying the final bundle: whitespace and comment removal never changes a token and keeps the line
// breaks that matter; shortened names never become a word Espruino reserves or a global; code behaves
// the same; the firmware shrinks and still passes the profile check.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { tokenizer } from 'acorn';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { compactWhitespace } from '../../host-tools/build/compact-whitespace.ts';
import { shortenNames } from '../../host-tools/build/shorten-names.ts';
import { checkEspruinoProfile } from '../../espruino-profile/profile-check.ts';

function tokens(code: string): string[] {
  return [...tokenizer(code, { ecmaVersion: 5 })].map((t) => `${t.type.label} ${code.slice(t.start, t.end)}`);
}

function run(code: string): unknown {
  return vm.runInNewContext(code, {});
}

test('tokens that would run together keep a space; everything else is joined', () => {
  const cases: [string, string][] = [
    ['var  x = 1 ;', 'var x=1;'],
    ['var a = 2, b = 3; a + +b', 'var a=2,b=3;a+ +b'],
    ['var a = 2, b = 3; a - -b', 'var a=2,b=3;a- -b'],
    ['var a = 6; a / /x/.source.length', 'var a=6;a/ /x/.source.length'],
    ['/a/g instanceof RegExp', '/a/g instanceof RegExp'],
    ["'a' in { a: 1 }", "'a'in{a:1}"],
    ['1 .toString()', '1 .toString()'],
    ['var a = 1, b = 2; a < !--b', 'var a=1,b=2;a< !--b'],
    ['typeof  "x"', 'typeof"x"'],
  ];
  for (const [source, expected] of cases) {
    const compact = compactWhitespace(source);
    assert.is(compact, expected + '\n', source);
    assert.equal(run(compact), run(source), source);
  }
});

test('line breaks that ASI and the restricted productions depend on are kept', () => {
  const cases = [
    'function f() { return\n42 }; f()', // return; — not return 42
    'var a = 1, b = 1\na\n++b\nb', // ++ binds to b on the next line
    'var o = {}\n++o.x', // not `{}++`
    'var f = function () { return 1 }\n(function () { return 2 })', // calls f: no ASI here either
    'var s = 1 // comment\n/* block\n */ s', // line breaks inside comments count too
  ];
  for (const source of cases) {
    const compact = compactWhitespace(source);
    assert.equal(run(compact), run(source), source);
    assert.equal(tokens(compact), tokens(source), source);
  }
  assert.is(compactWhitespace('/* a */ x = 1 // b\n'), 'x=1\n');
});

test('shortened names: same behaviour, never `of`, never an Espruino global', async () => {
  // Enough names in one scope that a generator would reach every two-letter name, `of` among them.
  const names = Array.from({ length: 3000 }, (_, i) => `longVariableName${i}`);
  const source =
    names.map((n, i) => `var ${n} = ${i};`).join('\n') +
    `\nvar all = [${names.join(', ')}];\nresult = 0;\nfor (var i = 0; i < all.length; i++) result += all[i];`;
  const short = await shortenNames(source);
  const context: { result?: number } = {};
  vm.runInNewContext(short, context);
  assert.is(context.result, (3000 * 2999) / 2);
  const declared = new Set(
    tokens(short)
      .filter((t) => t.startsWith('name '))
      .map((t) => t.slice(5)),
  );
  for (const word of ['of', 'E', 'D0', 'D9', 'D25']) assert.not.ok(declared.has(word), `no name is ${word}`);
  assert.equal(checkEspruinoProfile(short, 'short.js'), []);
});

test('the firmware bundle: a quarter smaller with names shortened, no comments, passes the profile check', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'veilgrid-compact-'));
  try {
    const full = await buildFirmware({ board: 'esp32-meter', outFile: path.join(work, 'full.js'), minify: false });
    const small = await buildFirmware({ board: 'esp32-meter', outFile: path.join(work, 'small.js') });
    const fullCode = readFileSync(full.outFile, 'latin1');
    const smallCode = readFileSync(small.outFile, 'latin1');
    assert.equal(checkEspruinoProfile(smallCode, 'small.js'), []);
    assert.ok(small.bytes < full.bytes * 0.6, `${small.bytes} bytes minified, ${full.bytes} before`);
    assert.not.match(smallCode, /\/\/ firmware\/src\//, 'module marker comments are gone');
    // the same string literals, in the same order: only names and layout changed
    const strings = (code: string) => tokens(code).filter((t) => t.startsWith('string '));
    assert.is(strings(smallCode).length, strings(fullCode).length);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test.run();
