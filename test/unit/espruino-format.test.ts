// Espruino's value printer with its two flag sets (src/jswrap_json.c): the REPL's `=value` and
// print()/console.log(), checked on values made inside an emulated board's realm.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { formatAsString, formatEspruinoNumber, formatReplValue } from '../../boards/emulator/espruino-format.ts';

interface Rig {
  board: Board;
  /** The REPL's text for the value of `code` (what follows `=`). */
  repl(code: string): string;
  /** What `print(<code>)` writes, without the newline. */
  print(code: string): string;
}

const test = suite<{ rig?: Rig; clock?: SimClock }>('espruino value format');

test.before.each((ctx) => {
  const clock = new SimClock({ speed: 1 });
  const board = new Board({ definition: loadBoardDefinition('esp32-meter'), clock });
  board.powerOn();
  const output: string[] = [];
  board.onOutput((t) => output.push(t));
  const evaluate = (code: string): unknown => {
    const r = board.evaluate(code);
    if (r.error !== undefined) throw new Error(`${code} → ${r.error}`);
    return r.value;
  };
  ctx.clock = clock;
  ctx.rig = {
    board,
    repl: (code) => formatReplValue(evaluate(code)),
    print: (code) => {
      output.length = 0;
      evaluate(`print(${code})`);
      return output.join('').replace(/\n$/, '');
    },
  };
});

test.after.each((ctx) => {
  ctx.rig!.board.close();
  ctx.clock!.close();
});

test('numbers print as ftoa does, in both', ({ rig }) => {
  assert.is(rig!.repl('0.1+0.2'), '0.3');
  assert.is(rig!.print('0.1+0.2'), '0.3');
  assert.is(formatEspruinoNumber(1 / 3), '0.33333333333');
  assert.is(formatEspruinoNumber(-2.5), '-2.5');
  assert.is(formatEspruinoNumber(-Infinity), '-Infinity');
});

test('strings: print writes them as they are, the REPL quotes and shortens them', ({ rig }) => {
  assert.is(rig!.print('"a\\nb", 1'), 'a\nb 1');
  assert.is(rig!.repl('"a\\nb"'), '"a\\nb"');
  const long = 'x'.repeat(50);
  assert.is(rig!.repl(`"${long}"`), `"${'x'.repeat(17)}" ... "${'x'.repeat(17)}"`);
  assert.is(rig!.print(`["${long}"]`), `[ \n  "${long}"\n ]`);
});

test('object keys: unquoted at the REPL (JSON_DROP_QUOTES), quoted by print', ({ rig }) => {
  assert.is(rig!.repl('({a:1,b:"x"})'), '{ a: 1, \n  b: "x"\n }');
  assert.is(rig!.print('{a:1,b:"x"}'), '{ "a": 1, \n  "b": "x"\n }');
  assert.is(rig!.repl('({"a b":1, 7:2})'), '{ 7: 2, "a b": 1 }');
  assert.is(rig!.print('{}'), '{  }');
  assert.is(rig!.repl('[]'), '[  ]');
  assert.is(rig!.print('{a:1,b:2,c:3,d:4,e:5,f:6}'), '{ "a": 1, "b": 2, "c": 3, "d": 4, \n  "e": 5, "f": 6 }');
});

test('long arrays are shortened only at the REPL (JSON_LIMIT)', ({ rig }) => {
  const code = '(function(){ var a = []; for (var i = 0; i < 20; i++) a.push(i); return a; })()';
  assert.is(rig!.repl(code), '[ 0, 1, 2, 3, 4,  ... 15, 16, 17, 18, 19 ]');
  assert.is(rig!.print(code), '[ ' + Array.from({ length: 20 }, (_, i) => i).join(', ') + ' ]');
});

test('typed arrays and ArrayBuffers', ({ rig }) => {
  assert.is(rig!.repl('new Uint8Array([1,2])'), 'new Uint8Array([1, 2])');
  assert.is(rig!.print('new Uint8Array(4)'), 'new Uint8Array(4)');
  assert.is(rig!.print('new Uint8Array([1,2]).buffer'), 'new Uint8Array([1, 2]).buffer');
  assert.is(rig!.print('new ArrayBuffer(3)'), 'new ArrayBuffer(3)');
});

test('functions: body elided at the REPL, printed by print', ({ rig }) => {
  assert.is(rig!.repl('(function (a, b) { return a + b; })'), 'function (a,b) { ... }');
  assert.is(rig!.print('function (a, b) { return a + b; }'), 'function (a,b) {return a + b;}');
});

test('instances of global constructors are named (JSON_SHOW_OBJECT_NAMES); pins print as pins', ({ rig }) => {
  rig!.board.evaluate('function Meter() { this.id = "m1"; }');
  assert.is(rig!.repl('new Meter()'), 'Meter: { \n  id: "m1"\n }');
  assert.is(rig!.print('new Meter()'), 'Meter: { \n  "id": "m1"\n }');
  // a constructor that is not a global gives no name, as on the device
  assert.is(rig!.repl('(function(){ function Hidden() { this.x = 1; } return new Hidden(); })()'), '{ x: 1 }');
  assert.is(rig!.repl('new Error("boom")'), 'Error: Error: boom');
  assert.is(rig!.repl('D5'), 'D5');
  assert.is(rig!.print('{pin: D5}'), '{ "pin": D5 }');
});

test('devices by name at the REPL only (JSON_SHOW_DEVICES)', ({ rig }) => {
  assert.is(rig!.repl('I2C1'), 'I2C1');
  assert.not.equal(rig!.print('I2C1'), 'I2C1');
});

test('recursion prints " ... "', ({ rig }) => {
  assert.is(rig!.repl('(function(){ var o = {}; o.self = o; return o; })()'), '{ \n  self:  ... \n }');
});

test('uncaught values are printed with %v (jsvAsString)', ({ rig }) => {
  assert.is(formatAsString(rig!.board.evaluate('new TypeError("bad")').value), 'TypeError: bad');
  assert.is(formatAsString(rig!.board.evaluate('[1,2,3]').value), '1,2,3');
  assert.is(formatAsString(rig!.board.evaluate('({a:1})').value), '[object Object]');
  assert.is(formatAsString('text'), 'text');
  assert.is(formatAsString(0.1 + 0.2), '0.3');
});

test.run();
