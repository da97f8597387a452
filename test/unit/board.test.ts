import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import { constant } from '../../boards/emulator/load-profile.ts';

const definition = loadBoardDefinition('esp32-meter');
const S0_IMPORT = definition.pins.s0Import;
const S0_EXPORT = definition.pins.s0Export;
const START = 1_800_000_000;

interface Rig {
  clock: SimClock;
  board: Board;
  output: string[];
  text(): string;
  close(): void;
}

function rig(opts: { speed?: number; flashPath?: string; clock?: SimClock } = {}): Rig {
  const clock = opts.clock ?? new SimClock({ speed: opts.speed ?? 1000, startEpochSeconds: START });
  const board = new Board({ definition, clock, flashPath: opts.flashPath });
  const output: string[] = [];
  board.onOutput((t) => output.push(t));
  return {
    clock,
    board,
    output,
    text: () => output.join(''),
    close: () => {
      board.close();
      if (!opts.clock) clock.close();
    },
  };
}

/** Polls (real time) until cond holds; a bound against hangs, not a timing assertion. */
function until(cond: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let tries = 0;
    const poll = () => {
      if (cond()) return resolve();
      if (++tries > 3000) return reject(new Error(`gave up waiting for ${what}`));
      setTimeout(poll, 2);
    };
    poll();
  });
}

function value(board: Board, code: string): unknown {
  const r = board.evaluate(code);
  if (r.error !== undefined) throw new Error(`${code} → ${r.error}`);
  return r.value;
}

// ---------------------------------------------------------------------------------------------
const realm = suite('realm');

realm('only Espruino globals exist in the realm', () => {
  const r = rig();
  r.board.powerOn();
  // Checked with typeof inside a string so the profile check (which rejects the names) lets the line run.
  const absent = [
    'Map',
    'Set',
    'WeakMap',
    'Symbol',
    'Proxy',
    'Reflect',
    'BigInt',
    'TextEncoder',
    'TextDecoder',
    'globalThis',
    'queueMicrotask',
    'structuredClone',
    'Intl',
    'SharedArrayBuffer',
    'WebAssembly',
    'process.memory',
    'Buffer',
    'require.resolve',
  ];
  for (const name of absent) assert.is(value(r.board, `eval("typeof ${name}")`), 'undefined', name);
  const absentMembers = [
    'Math.imul',
    'Math.trunc',
    'Math.log2',
    'Number.isInteger',
    'Number.EPSILON',
    'Array.from',
    'Array.prototype.lastIndexOf',
    'Array.prototype.flat',
    'Object.freeze',
    'Object.is',
    'Promise.race',
    'Promise.prototype.finally',
    'ArrayBuffer.prototype.slice',
    'String.prototype.codePointAt',
  ];
  for (const name of absentMembers) assert.is(value(r.board, `eval("typeof ${name}")`), 'undefined', name);
  const present = [
    'setWatch',
    'clearWatch',
    'setTimeout',
    'setInterval',
    'getTime',
    'E.toString',
    'E.hwRand',
    'I2C1.writeTo',
    'digitalRead',
    'btoa',
    'atob',
    'load',
    'reset',
    'print',
    'console.log',
    'require',
    'Promise',
    'DataView',
    'eval',
    'JSON.stringify',
    'Number.MAX_VALUE',
    'Math.clip',
  ];
  for (const name of present) assert.is.not(value(r.board, `typeof ${name}`), 'undefined', name);
  assert.equal(value(r.board, 'process.env.VERSION'), '2v29');
  assert.equal(value(r.board, 'typeof D25 == "object" && String(D25)'), 'D25');
  r.close();
});

realm('bytes from Espruino APIs are realm typed arrays; 8-bit strings stay strings', () => {
  const r = rig();
  r.board.powerOn();
  assert.is(value(r.board, 'E.toUint8Array("ab\\xff") instanceof Uint8Array'), true);
  assert.is(value(r.board, 'E.toString(new Uint8Array([104,105,255]))'), 'hi\xff');
  assert.is(value(r.board, 'require("crypto").SHA256("abc") instanceof ArrayBuffer'), true);
  assert.is(value(r.board, 'E.toString(new Uint8Array(require("crypto").SHA256("abc"))).length'), 32);
  assert.is(value(r.board, 'new Uint8Array(require("crypto").SHA256("abc"))[0]'), 0xba);
  assert.is(value(r.board, 'atob(btoa("\\x00\\x80\\xff"))'), '\x00\x80\xff');
  // CTR ignores the IV (zero counter): two different IVs give the same ciphertext.
  assert.is(
    value(
      r.board,
      'var k=new Uint8Array(16), c=require("crypto"); E.toString(c.AES.encrypt("hello", k, {mode:"CTR", iv:new Uint8Array(16).fill(1)})) == E.toString(c.AES.encrypt("hello", k, {mode:"CTR"}))',
    ),
    true,
  );
  assert.is(value(r.board, 'E.CRC32("123456789")'), 0xcbf43926);
  assert.is(
    value(
      r.board,
      'require("Storage").write("f", new Uint8Array([1,2,255])) && require("Storage").readArrayBuffer("f") instanceof ArrayBuffer',
    ),
    true,
  );
  assert.is(value(r.board, 'require("Storage").list() instanceof Array'), true);
  r.close();
});

realm('E.hwRand is the fixed-seed generator, identical after every power-on', () => {
  const r = rig();
  r.board.powerOn();
  const first = value(r.board, 'JSON.stringify([E.hwRand(), E.hwRand(), E.hwRand()])');
  r.board.powerCut();
  r.board.powerOn();
  assert.is(value(r.board, 'JSON.stringify([E.hwRand(), E.hwRand(), E.hwRand()])'), first);
  r.close();
});

realm('require of a module the board lacks fails as on Espruino', () => {
  const r = rig();
  r.board.powerOn();
  assert.match(r.board.evaluate('require("fs")').error ?? '', 'Module fs not found');
  r.close();
});

realm.run();

// ---------------------------------------------------------------------------------------------
const timing = suite('timers and watches');

timing('firmware timers run in virtual order and getTime() follows the clock', async () => {
  const r = rig({ speed: 20000 });
  r.board.powerOn();
  value(
    r.board,
    'var order=[], t0=getTime(); setTimeout(function(){order.push(["c",getTime()-t0])},3000); setTimeout(function(){order.push(["a",getTime()-t0])},1000); setInterval(function(){order.push(["i",getTime()-t0])},1500)',
  );
  await until(() => (value(r.board, 'order.length') as number) >= 4, 'four timer runs');
  const order = value(r.board, 'JSON.stringify(order.slice(0,4))') as string;
  assert.equal(
    JSON.parse(order).map((x: [string, number]) => [x[0], Math.round(x[1] * 1000)]),
    [
      ['a', 1000],
      ['i', 1500],
      ['c', 3000],
      ['i', 3000],
    ],
  );
  assert.match(r.board.evaluate('clearTimeout(99)').error ?? '', 'Unknown Timeout');
  r.close();
});

timing('uncaught errors in callbacks are printed and do not stop the board', async () => {
  const r = rig({ speed: 20000 });
  r.board.powerOn();
  value(
    r.board,
    'setTimeout(function(){ throw new Error("boom") }, 10); setTimeout(function(){ print("still running") }, 20)',
  );
  await until(() => r.text().includes('still running'), 'second timer');
  assert.match(r.text(), 'Uncaught Error: boom\n');
  assert.ok(r.board.running);
  r.close();
});

timing('setWatch: edges, {state,time,lastTime}, and debounce filtering bounces', async () => {
  const r = rig({ speed: 100 });
  r.board.powerOn();
  // The S0 inputs idle low (driven); undriven, ESP32's forced pull-up would read high.
  r.board.pins.setInput(S0_IMPORT, 0);
  r.board.pins.setInput(S0_EXPORT, 0);
  value(
    r.board,
    `var ev=[]; setWatch(function(e){ ev.push(e) }, D${S0_IMPORT}, {repeat:true, edge:"rising"}); var deb=[]; setWatch(function(e){ deb.push(e) }, D${S0_EXPORT}, {repeat:true, edge:"both", debounce:10})`,
  );
  r.board.pins.setInput(S0_IMPORT, 1);
  r.board.pins.setInput(S0_IMPORT, 0);
  r.board.pins.setInput(S0_IMPORT, 1);
  assert.is(value(r.board, 'ev.length'), 2);
  assert.is(value(r.board, 'ev[0].state'), true);
  assert.is(value(r.board, 'ev[0].lastTime'), undefined);
  assert.is(value(r.board, 'ev[1].lastTime >= ev[0].time'), true);
  // A bouncing contact: three changes at one instant, then it settles high.
  const t = r.board.getTime();
  r.board.pins.setInput(S0_EXPORT, 1);
  r.board.pins.setInput(S0_EXPORT, 0);
  r.board.pins.setInput(S0_EXPORT, 1);
  await until(() => (value(r.board, 'deb.length') as number) >= 1, 'debounced edge');
  assert.is(value(r.board, 'deb.length'), 1);
  assert.is(value(r.board, 'deb[0].state'), true);
  // Espruino reports the time of the last edge, not the end of the debounce period.
  assert.ok(Math.abs((value(r.board, 'deb[0].time') as number) - t) < 0.005);
  r.close();
});

timing('pulses counted inside the realm match what the S0 source emitted', async () => {
  const r = rig({ speed: 200 });
  r.board.powerOn();
  value(
    r.board,
    `var pulses=0; setWatch(function(){ pulses++ }, D${S0_IMPORT}, {repeat:true, edge:"rising", debounce:10})`,
  );
  // 3600 W at 1000 imp/kWh: one pulse per second.
  const source = new S0PulseSource({ board: r.board, pin: S0_IMPORT, impulsesPerKWh: 1000, profile: constant(3600) });
  source.start();
  await until(() => source.pulsesEmitted >= 15, '15 pulses');
  source.stop();
  const emitted = source.pulsesEmitted;
  await until(() => value(r.board, 'pulses') === emitted, 'realm count to catch up');
  assert.is(value(r.board, 'pulses'), emitted);
  assert.is(source.energyWh, emitted);
  assert.throws(
    () =>
      new S0PulseSource({
        board: r.board,
        pin: S0_IMPORT,
        impulsesPerKWh: 1000,
        pulseWidthMs: 10,
        profile: constant(1),
      }),
    /30 ms/,
  );
  r.close();
});

timing.run();

// ---------------------------------------------------------------------------------------------
const life = suite('boot, load, reset, power');

life('boots .bootcde written through Storage and runs E.on("init") then onInit()', () => {
  const r = rig();
  r.board.storage.write(
    '.bootcde',
    'var booted = 1; E.on("init", function(){ print("init event") }); function onInit(){ print("onInit ran") }',
  );
  r.board.powerOn();
  assert.is(value(r.board, 'booted'), 1);
  assert.match(r.text(), /init event\n[\s\S]*onInit ran\n/);
  r.close();
});

life('refuses boot code that fails the Espruino profile check', () => {
  const r = rig();
  r.board.storage.write('.bootcde', 'var o = {a: 1};\nvar {a} = o;\nvar booted = 1;');
  r.board.powerOn();
  assert.match(r.text(), /Uncaught SyntaxError: .*destructuring/);
  assert.match(r.text(), 'at line 2');
  assert.is(value(r.board, 'typeof booted'), 'undefined');
  assert.match(r.board.evaluate('var x = a?.b').error ?? '', 'SyntaxError');
  r.close();
});

life('E.setBootCode + load() reboots into the new code; reset() clears it', () => {
  const r = rig();
  r.board.powerOn();
  value(r.board, 'var old = 1; E.setBootCode("var fromBoot = 42;"); load()');
  assert.is(value(r.board, 'typeof old'), 'undefined');
  assert.is(value(r.board, 'fromBoot'), 42);
  assert.is(r.board.storage.read('.bootcde'), 'var fromBoot = 42;');
  value(r.board, 'reset()');
  assert.is(value(r.board, 'typeof fromBoot'), 'undefined', 'reset() does not run .bootcde');
  value(r.board, 'E.setBootCode("var always = 7;", true); reset()');
  assert.is(value(r.board, 'always'), 7, 'reset() runs .bootrst');
  assert.is(r.board.storage.read('.bootcde'), undefined);
  r.close();
});

life('powerCut stops timers and watches; powerOn boots again from the persisted flash', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vg-board-'));
  const flashPath = join(dir, 'board.flash');
  const clock = new SimClock({ speed: 20000, startEpochSeconds: START });
  const r = rig({ clock, flashPath });
  r.board.storage.write('.bootcde', 'var n = 0; setInterval(function(){ n++; print("tick") }, 100);');
  r.board.powerOn();
  await until(() => r.text().includes('tick'), 'first tick');
  r.board.powerCut();
  assert.is(r.board.running, false);
  const printed = r.output.length;
  await new Promise((res) => setTimeout(res, 30)); // 600 s virtual: many intervals, had it survived
  assert.is(r.output.length, printed);
  assert.match(r.board.evaluate('1').error ?? '', 'off');
  r.close();
  // A new board on the same flash file boots the same code.
  const again = rig({ clock, flashPath });
  again.board.powerOn();
  assert.is(value(again.board, 'n'), 0);
  again.close();
  clock.close();
  rmSync(dir, { recursive: true, force: true });
});

life('a flash power loss inside firmware stops the board even if the firmware catches it', () => {
  const r = rig();
  r.board.powerOn();
  r.board.flash.cutPowerAfterBytes(5);
  const res = r.board.evaluate(
    'var caught = 0; try { require("Storage").write("log", "0123456789abcdef") } catch (e) { caught = 1; setTimeout(function(){ print("zombie") }, 1) } caught',
  );
  assert.is(r.board.running, false);
  assert.ok(res.error !== undefined, 'the catch block could not schedule anything');
  assert.not.match(r.text(), 'zombie');
  r.board.powerOn();
  assert.ok(r.board.running);
  r.close();
});

life('Wifi: connect succeeds, fails with a wrong password or unknown SSID, drops when the AP goes down', async () => {
  const r = rig({ speed: 20000 });
  r.board.powerOn();
  r.board.wifi.setAccessPoint({ ssid: 'grid', password: 'secret', up: true });
  value(
    r.board,
    'var W=require("Wifi"), res=[]; W.on("disconnected", function(d){ res.push("down:"+d.reason) }); W.connect("grid", {password:"nope"}, function(err){ res.push(err); W.connect("other", {password:"secret"}, function(err){ res.push(err); W.connect("grid", {password:"secret"}, function(err){ res.push(err === null ? "ok" : err) }) }) })',
  );
  await until(() => (value(r.board, 'res.indexOf("ok")') as number) >= 0, 'connected');
  assert.is(value(r.board, 'W.getStatus().station'), 'connected');
  assert.is(value(r.board, 'res.filter(function(x){ return x == "auth_fail" }).length'), 1);
  assert.is(value(r.board, 'res.filter(function(x){ return x == "no_ap_found" }).length'), 1);
  r.board.wifi.setAccessPoint({ ssid: 'grid', password: 'secret', up: false });
  assert.is(value(r.board, 'res[res.length-1]'), 'down:beacon_timeout');
  r.close();
});

life('I2C1 with nothing attached throws the NACK as ESP32 does; an attached device answers', () => {
  const r = rig();
  r.board.powerOn();
  assert.is(
    value(
      r.board,
      `I2C1.setup({scl:D${definition.pins.i2cScl}, sda:D${definition.pins.i2cSda}}); var m; try { I2C1.writeTo(0x50, [1,2]) } catch (e) { m = e.message } m`,
    ),
    "jshI2CWrite: slave doesn't ACK the transfer",
  );
  assert.is(
    value(r.board, 'try { I2C1.readFrom(0x50, 2) } catch (e) { m = e.message } m'),
    "jshI2CRead: slave doesn't ACK the transfer",
  );
  assert.is(
    value(r.board, 'try { I2C1.readFrom(0x50, 2) } catch (e) { m = e instanceof Error && e.name } m'),
    'Error',
    'a realm Error (made without a stack trace)',
  );
  assert.is(
    value(r.board, 'var t; try { null.x } catch (e) { t = typeof e.stack } t'),
    'string',
    'errors of firmware code keep their stack',
  );
  r.board.i2c1.attach(0x50, { write: () => {}, read: (n) => new Uint8Array(n).fill(7) });
  assert.is(value(r.board, 'var d = I2C1.readFrom(0x50, 2); d instanceof Uint8Array && d[1]'), 7);
  r.close();
});

life.run();
