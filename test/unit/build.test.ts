// The firmware build: TypeScript features Espruino lacks are lowered, the bundle passes the profile check,
// and it behaves like the source when run in a bare node:vm context.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { buildFirmware, BuildError, REPO_ROOT } from '../../host-tools/build/build-firmware.ts';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { boardFacts } from '../../firmware/src/platform/board.ts';
import { checkEspruinoProfile } from '../../espruino-profile/profile-check.ts';
import { hoistFunctionDeclarations } from '../../host-tools/build/hoist-functions.ts';
import { lowerToEs5 } from '../../host-tools/build/lower-syntax.ts';
import { fixBuiltinSubclasses } from '../../host-tools/build/fix-builtin-subclasses.ts';
import { runSample } from '../fixtures/profile/build/sample.ts';

const FIXTURES = path.resolve('test/fixtures/profile/build');
const workDir = mkdtempSync(path.join(tmpdir(), 'veilgrid-build-'));

/** Runs a script in a fresh context holding only the language built-ins plus console.log and require. */
function runInBareContext(code: string): string[] {
  const lines: string[] = [];
  const context = vm.createContext({
    console: { log: (line: string) => lines.push(String(line)) },
    require: (name: string) => ({ name }),
  });
  vm.runInContext(code, context, { timeout: 5000 });
  return lines;
}

async function buildError(entry: string): Promise<BuildError> {
  try {
    await buildFirmware({ board: 'esp32-meter', entry, outFile: path.join(workDir, 'failed.js') });
  } catch (err) {
    if (err instanceof BuildError) return err;
    throw err;
  }
  throw new Error(`building ${entry} should have failed`);
}

test('the built sample passes the profile check and behaves like its source', async () => {
  const outFile = path.join(workDir, 'sample.js');
  const result = await buildFirmware({ board: 'esp32-meter', entry: path.join(FIXTURES, 'entry.ts'), outFile });
  assert.is(result.outFile, outFile);
  assert.is(result.bytes, statSync(outFile).size);
  assert.equal(result.violations, []);
  const code = readFileSync(outFile, 'latin1');
  assert.equal(checkEspruinoProfile(code, outFile), []);
  assert.ok(/^[\x00-\x7f]*$/.test(code), 'output is ASCII');
  assert.ok(code.includes('require("Storage")'), 'Espruino modules stay literal');

  const expected: string[] = [];
  runSample((line) => expected.push(line));
  assert.equal(runInBareContext(code), [...expected, 'storage module Storage']);
});

test('async in firmware source fails the build at its source line', async () => {
  const err = await buildError(path.join(FIXTURES, 'async-entry.ts'));
  assert.equal(
    err.violations.map((v) => [path.basename(v.file), v.line, v.construct]),
    [['async-entry.ts', 2, 'async function']],
  );
  assert.match(err.message, 'async-entry.ts:2:1 async function');
});

test('what lowering cannot fix fails the build at TypeScript source positions', async () => {
  const err = await buildError(path.join(FIXTURES, 'unsupported-entry.ts'));
  const found = err.violations.map((v) => `${path.basename(v.file)}:${v.line} ${v.construct}`);
  assert.equal(found, [
    'unsupported-entry.ts:3 Map',
    'unsupported-entry.ts:4 Math.imul',
    'unsupported-entry.ts:5 label',
    'unsupported-entry.ts:8 regex ? quantifier',
  ]);
});

test("the bundle carries its board definition's pins and raw flash, put in by the build", async () => {
  const entry = path.join(workDir, 'board-entry.ts');
  const board = JSON.stringify(path.join(REPO_ROOT, 'firmware/src/platform/board.ts'));
  writeFileSync(entry, `import { boardFacts } from ${board};\nconsole.log(JSON.stringify(boardFacts()));\n`);
  const { outFile } = await buildFirmware({ board: 'esp32-meter', entry, outFile: path.join(workDir, 'board.js') });
  const definition = loadBoardDefinition('esp32-meter');
  const [printed] = runInBareContext(readFileSync(outFile, 'latin1'));
  const { pins, rawFlash } = JSON.parse(printed);
  assert.equal(pins, { i2cScl: definition.pins.i2cScl, i2cSda: definition.pins.i2cSda });
  assert.equal(
    rawFlash,
    definition.rawFlash.map(({ addr, bytes, storageAddr }) =>
      storageAddr === undefined ? { addr, bytes } : { addr, bytes, storageAddr },
    ),
  );
});

test('firmware code run without the build knows no board, and says how to get one', () => {
  try {
    boardFacts();
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'no-board');
    assert.match((err as Error).message, 'veilgrid build --board');
  }
});

test('an unknown board is refused with the list of known boards', async () => {
  try {
    await buildFirmware({ board: 'esp8266-toaster', outFile: path.join(workDir, 'x.js') });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, BuildError);
    assert.match((err as Error).message, 'known boards are esp32-meter');
  }
});

test('the helpers TypeScript emits for ES5 pass the profile check', () => {
  const source = [
    'class Base { constructor(n) { this.n = n; } }',
    'class Child extends Base { constructor(...args) { super(args.length); } }',
    'class Failure extends Error { constructor(m) { super(m); } }',
    'const { a, ...rest } = { a: 1, b: 2 };',
    'const all = [...[1], ...rest.list];',
    'const merged = { ...rest, c: 3 };',
    'const tagged = String.raw`x`;',
  ].join('\n');
  const lowered = hoistFunctionDeclarations(fixBuiltinSubclasses(lowerToEs5(source, 'helpers.js')));
  for (const helper of ['__extends', '__rest', '__spreadArray', '__assign', '__makeTemplateObject']) {
    assert.ok(lowered.includes('var ' + helper), helper + ' emitted');
  }
  const violations = checkEspruinoProfile(lowered).map((v) => v.construct);
  assert.equal(violations, ['String.raw'], "only the source's own String.raw is left");
});

test('function declarations move to the top of their bodies, in order, nested ones too', () => {
  const code = [
    'var log = [];',
    'log.push(outer());',
    'function outer() {',
    '  var v = inner();',
    '  return v + later();',
    '  function inner() { return 1; }',
    '  function later() { return 2; }',
    '}',
    'if (true) { log.push(inBlock()); function inBlock() { return 3; } }',
    'log.push(last());',
    'function last() { return 4; }',
  ].join('\n');
  const hoisted = hoistFunctionDeclarations(code);
  assert.equal(
    checkEspruinoProfile(hoisted).filter((v) => v.construct === 'function used before its declaration'),
    [],
  );
  assert.ok(hoisted.indexOf('function outer') < hoisted.indexOf('function last'), 'order kept');
  const context = vm.createContext({});
  vm.runInContext(hoisted, context);
  assert.equal(vm.runInContext('log.join(",")', context), '3,3,4');
});

test.after(() => rmSync(workDir, { recursive: true, force: true }));

test.run();
