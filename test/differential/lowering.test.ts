// What the build's ES5 lowering emits means on Espruino what the source means in JavaScript: spread
// (TypeScript's __spreadArray helper, which reads Array.prototype.slice, undefined on Espruino) and vars
// that JavaScript hoists and Espruino declares only when it reaches them. The lowered code runs in Node
// and, when present, in the real interpreter, and must print the same; so must an uncaught error of a
// lowered Error subclass.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { espruinoInterpreterPath } from '../../boards/espruino-linux/interpreter-path.ts';
import { runEspruinoScript } from '../../boards/espruino-linux/run-script.ts';
import { lowerToEs5 } from '../../host-tools/build/lower-syntax.ts';
import { hoistVarDeclarations } from '../../host-tools/build/hoist-vars.ts';
import { fixBuiltinSubclasses } from '../../host-tools/build/fix-builtin-subclasses.ts';
import { hoistFunctionDeclarations } from '../../host-tools/build/hoist-functions.ts';

const SOURCE = `
const tail = [2, 3];
const all = [...[1], ...tail, ...new Uint8Array([4])];
function rest(first, ...others) { return others.length; }
function skipped(flag) {
  if (flag) { var late = 1; }
  return typeof late === 'undefined' ? 'undefined' : late;
}
function thrown() {
  try { var value = (function () { throw new Error('x'); })(); } catch (e) { /* value stays unset */ }
  return value === undefined ? 'unset' : 'set';
}
function blockLocal(n) {
  let total = 0;
  for (let i = 0; i < n; i++) { const square = i * i; total += square; }
  return total;
}
print(JSON.stringify(all) + ' ' + rest(1, 2, 3) + ' ' + skipped(false) + ' ' + skipped(true) + ' ' + thrown() + ' ' + blockLocal(4));
`;

const EXPECTED = '[1,2,3,4] 2 undefined 1 unset 14';

test('spread and hoisted vars, lowered to ES5, behave on Espruino as in JavaScript', async () => {
  const lowered = lowerToEs5(SOURCE, 'lowering.js');
  assert.not.ok(lowered.includes('Array.prototype.slice'), 'the helper reads slice from an array');
  let printed = '';
  new Function('print', lowered)((text: string) => {
    printed += text;
  });
  assert.is(printed, EXPECTED, 'Node');
  const binary = espruinoInterpreterPath();
  if (!binary) {
    console.log(
      '  (no Espruino interpreter: set VEILGRID_ESPRUINO_BIN or put it at ../shared/espruino/; checked in Node only)',
    );
    return;
  }
  const run = await runEspruinoScript(binary, lowered);
  assert.is(run.output.trim(), EXPECTED, 'the Espruino interpreter');
});

test('an uncaught instance of a lowered Error subclass prints its name and message, not [object Object]', async () => {
  const source =
    "class Failure extends Error { constructor(m) { super(m); this.name = 'Failure'; this.message = m; } }\n" +
    "const f = new Failure('went wrong');\nprint(String(f) + ' ' + (f instanceof Failure) + ' ' + (f instanceof Error));\nthrow f;\n";
  const lowered = hoistFunctionDeclarations(fixBuiltinSubclasses(lowerToEs5(source, 'failure.js')));
  let printed = '';
  try {
    new Function('print', lowered)((text: string) => {
      printed += text;
    });
  } catch (err) {
    printed += ' Uncaught ' + String(err);
  }
  assert.is(printed, 'Failure: went wrong true true Uncaught Failure: went wrong', 'Node');
  const binary = espruinoInterpreterPath();
  if (!binary) return;
  const run = await runEspruinoScript(binary, lowered);
  assert.match(
    run.output,
    /^Failure: went wrong true true\r\nUncaught Failure: went wrong\r\n/,
    'the Espruino interpreter',
  );
});

test('only vars read outside their block, or declared twice, are declared again on entry', () => {
  const code = 'function f(c) {\n  if (c) { var a = 1; }\n  if (c) { var b = 2; b++; }\n  return a;\n}\n';
  assert.is(
    hoistVarDeclarations(code),
    'function f(c) {\n  var a;\n  if (c) { var a = 1; }\n  if (c) { var b = 2; b++; }\n  return a;\n}\n',
  );
});

test.run();
