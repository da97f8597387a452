// The built-ins the vm realm models as Espruino has them (boards/emulator/realm.ts,
// docs/espruino-differences.md) give the real interpreter's answers: the same ES5 script runs in a
// fresh realm and in the interpreter, and every line must match. Without the interpreter binary the
// realm is held to the answers recorded from it below.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Realm } from '../../boards/emulator/realm.ts';
import { espruinoInterpreterPath } from '../../boards/espruino-linux/interpreter-path.ts';
import { runEspruinoScript } from '../../boards/espruino-linux/run-script.ts';

/**
 * Each case is an ES5 expression; its value is shown without engine-dependent formatting. Math.pow cases
 * are powers of two, where V8's exp/log give the ESP32's bits (for other bases the last bit can differ).
 */
const CASES: Record<string, string> = {
  'u8.slice': 'new Uint8Array([1, 2, 3]).slice(1)',
  'u8.slice-negative': 'new Uint8Array([1, 2, 3, 4]).slice(-3, -1)',
  'u8.filter': 'new Uint8Array([1, 2, 3]).filter(function (x) { return x !== 2; })',
  'u8.map': 'new Uint8Array([1, 2, 3]).map(function (x) { return x * 100; })',
  'u8.subarray': 'new Uint8Array([1, 2, 3]).subarray(1)',
  'u16.slice': 'new Uint16Array([1000, 2000]).slice(0, 1)',
  'fromCharCode.above-ff': 'String.fromCharCode(0x20ac, 0x141, 65.7, -1, 256)',
  'pow.small-integer': 'Math.pow(256, 5)',
  'pow.2-12': 'Math.pow(2, 12)',
  'pow.2-minus-24': 'Math.pow(2, -24)',
  'pow.negative-odd': 'Math.pow(-2, 11)',
  'pow.zero': 'Math.pow(0, 0)',
  'json.latin1': 'JSON.stringify({ a: "caf" + String.fromCharCode(0xe9, 1, 0x7f) + "\\\\u00ab\\n\\"" })',
};

/** The interpreter's answers (recorded from espruino-2v29-esp32like), for runs without it. */
const RECORDED: Record<string, string> = {
  'u8.slice': 'Array[2,3]',
  'u8.slice-negative': 'Array[2,3]',
  'u8.filter': 'Array[1,3]',
  'u8.map': 'Uint8Array[100,200,44]',
  'u8.subarray': 'Uint8Array[2,3]',
  'u16.slice': 'Array[1000]',
  'fromCharCode.above-ff': 's.ac.41.41.ff.0',
  'pow.small-integer': 'n4270000000000000',
  'pow.2-12': 'n40affffffffffff9',
  'pow.2-minus-24': 'n3e70000000000007',
  'pow.negative-odd': 'nc0a0000000000000',
  'pow.zero': 'n3ff0000000000000',
  'json.latin1':
    's.7b.22.61.22.3a.22.63.61.66.5c.75.30.30.45.39.5c.75.30.30.30.31.5c.75.30.30.37.46.5c.5c.75.30.30.61.62.5c.6e.5c.22.22.7d',
};

/** ES5 that evaluates every case and returns one "name result" line each. */
function script(): string {
  const lines = Object.entries(CASES).map(
    ([name, expr]) => `  out.push(${JSON.stringify(name)} + ' ' + show(${expr}));`,
  );
  return `(function () {
  var view = new DataView(new ArrayBuffer(8));
  function show(v) {
    if (typeof v === 'number') {
      view.setFloat64(0, v);
      var bits = 'n';
      for (var i = 0; i < 8; i++) { var b = view.getUint8(i); bits += (b < 16 ? '0' : '') + b.toString(16); }
      return bits;
    }
    if (typeof v === 'string') {
      var chars = 's';
      for (var j = 0; j < v.length; j++) chars += '.' + v.charCodeAt(j).toString(16);
      return chars;
    }
    if (Array.isArray(v)) return 'Array[' + v.join(',') + ']';
    if (v instanceof Uint8Array) {
      // Not Array.prototype.join.call: Espruino's Array.prototype does not expose its methods.
      var items = [];
      for (var k = 0; k < v.length; k++) items.push(v[k]);
      return 'Uint8Array[' + items.join(',') + ']';
    }
    return typeof v;
  }
  var out = [];
${lines.join('\n')}
  return out.join('\\n');
})()`;
}

function parse(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const space = line.indexOf(' ');
    if (space > 0 && line.slice(0, space) in CASES) out[line.slice(0, space)] = line.slice(space + 1);
  }
  return out;
}

test("the realm's modelled built-ins answer as the real interpreter does", async () => {
  const realm = parse(new Realm().run(script()) as string);
  const binary = espruinoInterpreterPath();
  let expected = RECORDED;
  if (binary) {
    const run = await runEspruinoScript(binary, `print(${script()});`);
    expected = parse(run.output);
    assert.equal(expected, RECORDED, 'the interpreter still gives the recorded answers');
  } else {
    console.log(
      '  (no Espruino interpreter: set VEILGRID_ESPRUINO_BIN or put it at ../shared/espruino/; holding the realm to the recorded answers)',
    );
  }
  for (const name of Object.keys(CASES)) assert.is(realm[name], expected[name], name);
});

test.run();
