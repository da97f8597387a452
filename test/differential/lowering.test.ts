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
import { flattenClasses } from '../../host-tools/build/flatten-classes.ts';

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
  const lowered = hoistFunctionDeclarations(flattenClasses(fixBuiltinSubclasses(lowerToEs5(source, 'failure.js'))));
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

const CLASSES = `
class Base {
  constructor(x) { this.x = x; }
  get double() { return this.x * 2; }
  hello() { return 'base ' + this.x; }
  static make(x) { return new Base(x); }
}
class Child extends Base {
  constructor(x) { super(x + 1); this.tag = 'c'; }
  hello() { return 'child ' + super.hello(); }
}
const Named = class { who() { return 'named'; } };
class Failure extends Error { constructor(m) { super(m); this.name = 'Failure'; this.message = m; } }
function local(Base) { return new Child(Base).hello(); }
print([new Child(1).hello(), new Child(1).double, Base.make(3).hello(), new Named().who(), new Child(2) instanceof Base,
  String(new Failure('x')), new Failure('y') instanceof Failure, new Failure('z') instanceof Error, local(7)].join(' '));
`;

test('classes taken out of their ES5 wrappers behave on Espruino as in JavaScript', async () => {
  const wrapped = fixBuiltinSubclasses(lowerToEs5(CLASSES, 'classes.js'));
  const flat = hoistFunctionDeclarations(flattenClasses(wrapped));
  assert.ok(wrapped.includes('/** @class */'), 'TypeScript wraps each class');
  assert.not.ok(flat.includes('/** @class */'), 'every wrapper is gone');
  const expected = 'child base 2 4 base 3 named true Failure: x true true child base 8';
  for (const code of [hoistFunctionDeclarations(wrapped), flat]) {
    let printed = '';
    new Function('print', code)((text: string) => {
      printed += text;
    });
    assert.is(printed, expected, 'Node');
  }
  const binary = espruinoInterpreterPath();
  if (!binary) return;
  const run = await runEspruinoScript(binary, flat);
  assert.is(run.output.trim(), expected, 'the Espruino interpreter');
});

test('a class wrapper holding more than the class stays', () => {
  const code = 'var A = /** @class */ (function () {\n  var shared = 1;\n  function A() {}\n  return A;\n}());\n';
  assert.is(flattenClasses(code), code);
});

test('only vars read outside their block, or declared twice, are declared again on entry', () => {
  const code = 'function f(c) {\n  if (c) { var a = 1; }\n  if (c) { var b = 2; b++; }\n  return a;\n}\n';
  assert.is(
    hoistVarDeclarations(code),
    'function f(c) {\n  var a;\n  if (c) { var a = 1; }\n  if (c) { var b = 2; b++; }\n  return a;\n}\n',
  );
});

test.run();
