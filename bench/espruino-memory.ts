// JsVars the meter firmware uses in the real Espruino 2v29 interpreter (16,383 JsVars of 14 bytes, as on
// the ESP32), running the built bundle from .bootcde on the espruino-linux board: provisioned through its
// console, S0 pulses coming in, readings signed in the SE, sealed and published to a broker that the DSO's
// collector verifies from.
//
// Two kinds of figure:
// - sampled: a timer in the interpreter reads process.memory(false).usage every 5 ms. It runs between the
//   firmware's tasks, so it cannot see a peak inside one synchronous task (signing and sealing a reading);
// - proven: ballast (typed arrays, held from the console) takes half of the JsVar store before the run,
//   so the firmware has only the other half. If every phase completes with no memory error (the flag
//   MEMORY, E.getErrorFlags(), or a memory error the meter printed) and every reading verifies, the
//   firmware's true peak is under 50 %. LOW_MEMORY is a warning, counted but not a failure (Espruino's
//   JSERR_WARNINGS_MASK): the free list ran dry and a garbage collection found room. It comes more often
//   here than on a meter: the 5 ms sampler leaves the idle loop no 10 ms without a timer due, so Espruino's
//   idle collection (src/jsinteractive.c) never runs and garbage (closures in cycles) stays until then.
// The figures are the board's: the code costs the same JsVars here as on the ESP32 (one per function; the
// bench counts them, docs/espruino-differences.md says why); the hardware prelude (about 320) is the only
// part an ESP32 does not pay.
// Phases: steady intervals; a forced key rotation; the broker gone until the outbox is full and 96
// readings wait in RAM behind it (the first one dropped past that); the broker back, the backlog sent.
//   node --import tsx bench/espruino-memory.ts [--interval 1] [--log <file>: everything the meter printed]
//     [--probe: also sample inside synchronous tasks during the backlog, at every String.fromCharCode and
//      I2C transfer (the firmware builds packets and records char by char and talks to its SE over I2C),
//      and print the stack where the peak was seen; slower, and its own wrappers cost a few JsVars]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadBoardDefinition } from '../boards/board-definition.ts';
import { unavailable } from '../boards/harness/meter-board.ts';
import { startGrid } from '../host-tools/grid/grid.ts';
import { S0PulseSource } from '../boards/emulator/devices/s0-pulse-source.ts';
import { constant } from '../boards/emulator/load-profile.ts';
import { buildFirmware } from '../host-tools/build/build-firmware.ts';

const { values } = parseArgs({
  options: {
    interval: { type: 'string', default: '1' },
    log: { type: 'string' },
    probe: { type: 'boolean' },
    mix: { type: 'string', default: 'off' },
  },
});
if (values.mix !== 'on' && values.mix !== 'off') throw new Error(`--mix is on or off, not ${values.mix}`);
const MIX = values.mix === 'on';
const INTERVAL = Number(values.interval);
const TOTAL_JSVARS = loadBoardDefinition('esp32-meter').jsVars;
const BALLAST_TARGET = Math.ceil(TOTAL_JSVARS / 2);

const missing = unavailable('espruino-linux');
if (missing) {
  console.error(`cannot run: ${missing}`);
  process.exit(2);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-bench-memory-'));
const { outFile, bytes } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(dir, 'esp32-meter.js') });
const grid = await startGrid({ dir, backend: 'espruino-linux', mix: MIX });
const { rig } = grid;
const board = await grid.addBoard('meter-0001');
let output = '';
board.onOutput((text) => (output += text));
let source: S0PulseSource | undefined;

const figures: [string, string][] = [];
const note = (what: string, value: string | number) => {
  figures.push([what, String(value)]);
  console.log(`  ${what}: ${value}`);
};
const readings = () => grid.readings();

async function value(expression: string): Promise<any> {
  const answer = await board.evaluate(expression, 120_000);
  if (!('value' in answer)) throw new Error(`${expression} failed at the meter's console: ${JSON.stringify(answer)}`);
  return answer.value;
}
/** JsVars in use after a garbage collection. */
const usage = async () => (await value('process.memory().usage')) as number;
/** Memory error flags Espruino raised since they were last read (E.getErrorFlags() clears them). */
const flagsSeen: string[] = [];
/**
 * The sampler's peak since it was last reset, then resets it; notes the error flags raised meanwhile, so a
 * memory error is pinned to its phase.
 */
/**
 * Memory errors Espruino printed and raised no flag for: a built-in that cannot allocate its result (a typed
 * array needs contiguous JsVars: crypto's "Not enough memory for result") returns undefined, and the
 * firmware's step fails on it. Counted from the meter's output, per phase.
 */
const PRINTED_MEMORY_ERROR = /Not enough memory|OUT OF MEMORY|Out of memory/g;
let printedErrorsSeen = 0;
const sampledPeak = async (phase: string) => {
  const [peak, flags] = (await value(
    '(function(){var p=vgBench.peak;vgBench.peak=0;return [p,E.getErrorFlags()];})()',
  )) as [number, string[]];
  note(`error flags during ${phase}`, flags.length ? flags.join(',') : 'none');
  for (const f of flags) if (!flagsSeen.includes(f)) flagsSeen.push(f);
  const printed = (output.match(PRINTED_MEMORY_ERROR) ?? []).length;
  note(`memory errors the meter printed during ${phase}`, printed - printedErrorsSeen);
  if (printed > printedErrorsSeen && !flagsSeen.includes('PRINTED')) flagsSeen.push('PRINTED');
  printedErrorsSeen = printed;
  return peak;
};

/**
 * What the firmware's function bodies hold in RAM, from E.dumpVariables() (every JsVar, with its size in
 * blocks): each function keeps its code as a string under "\xFFcod". Read from a memory-mapped Storage
 * file (the ESP32) it is a native string, and from this board's Storage (an interpreter built with
 * SPIFLASH_BASE) a flash string: one JsVar each, the text stays in flash (src/jsparse.c, src/jsflash.c
 * jsvAddressToVar). A body copied into RAM would take one JsVar per 14 bytes.
 */
async function functionCode(): Promise<{ functions: number; jsVars: number; inRam: number }> {
  const from = output.length;
  const END = '<<code-dump-end>>';
  // After the console's own line is done, so the dump holds no half-built reply.
  await value(`(setTimeout(function(){E.dumpVariables();print("${END.slice(0, 3)}"+"${END.slice(3)}");},10),1)`);
  await until(() => output.indexOf(END, from) >= 0, 'the variable dump', 120);
  const end = output.indexOf(END, from);
  const sizes = new Map<number, number>();
  const codeOf: number[] = [];
  for (const line of output.slice(from, end).split(/\r?\n/)) {
    const m = /^(\d+),(\d+),\d+,(.*?),((?:\d+,)*)$/.exec(line);
    if (!m) continue;
    sizes.set(Number(m[1]), Number(m[2]));
    if (m[3] === '"\\xFFcod"') codeOf.push(Number(m[4].split(',')[0]));
  }
  output = output.slice(0, from) + output.slice(end + END.length);
  let jsVars = 0;
  let inRam = 0;
  for (const ref of codeOf) {
    const size = sizes.get(ref) ?? 0;
    jsVars += size;
    if (size > 1) inRam++;
  }
  return { functions: codeOf.length, jsVars, inRam };
}

/** Where the next memory error the meter printed starts, at or after `from` (-1: none). */
function nextMemoryError(from: number): number {
  const i = output.slice(from).search(/OUT OF MEMORY|Not enough memory/);
  return i < 0 ? -1 : from + i;
}

async function until(check: () => boolean, what: string, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`gave up waiting for ${what}; the meter printed:\n${output.slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

try {
  board.writeFile('.bootcde', fs.readFileSync(outFile, 'latin1'));
  console.log('booting, provisioning ...');
  await board.powerOn();
  await grid.provision(board, 'meter-0001', { intervalSeconds: INTERVAL });
  console.log('provisioned; waiting for the first readings');
  source = new S0PulseSource({
    board,
    pin: rig.definition.pins.s0Import,
    impulsesPerKWh: 1000,
    profile: constant(3600),
  });
  source.start();
  await until(() => readings().n >= 3, 'the first readings', 60);

  console.log(`bundle ${bytes} bytes, interval ${INTERVAL} s`);
  const running = await usage();
  note('JsVars in use, booted from .bootcde, provisioned, connected, reporting', running);
  const code = await functionCode();
  note(
    'function bodies: functions / JsVars their code strings take / bodies longer than one JsVar (parsed from RAM, not Storage: the Wifi stand-in of the board prelude, console input)',
    `${code.functions} / ${code.jsVars} / ${code.inRam}`,
  );
  const early = (await value('E.getErrorFlags()')) as string[];
  note('error flags before the ballast', early.length ? early.join(',') : 'none');
  const ballastVars = (await value(
    `(function(){var before=process.memory().usage;global.vgBench={peak:0,ballast:[]};` +
      `while(process.memory().usage-before<${BALLAST_TARGET})vgBench.ballast.push(new Uint8Array(1400));` +
      `setInterval(function(){var u=process.memory(false).usage;if(u>vgBench.peak)vgBench.peak=u;},5);` +
      `return process.memory().usage-before;})()`,
  )) as number;
  note('ballast held from the console (JsVars)', ballastVars);
  const base = running + ballastVars;

  const steadyFrom = readings().n;
  await until(() => readings().n >= steadyFrom + 10, '10 more readings', 120);
  note(
    'sampled peak, steady intervals (JsVars, ballast excluded)',
    (await sampledPeak('steady intervals')) - ballastVars,
  );

  const rotation = await value('JSON.parse(vgRotateKeys()).rotation');
  const rotatedFrom = readings().n;
  await until(() => readings().n >= rotatedFrom + 3, '3 readings after the rotation', 120);
  note(
    `sampled peak, key rotation ${rotation} and the readings after it (JsVars, ballast excluded)`,
    (await sampledPeak('the rotation')) - ballastVars,
  );

  await grid.stopBroker();
  const outageStart = Date.now();
  await until(
    () => /dropped: 96 readings already wait/.test(output),
    'the outbox to fill and 96 readings to wait behind it',
    3600,
  );
  note(
    'seconds of outage until the outbox was full and 96 readings waited',
    Math.round((Date.now() - outageStart) / 1000),
  );
  note('JsVars in use, outbox full, 96 readings waiting (ballast excluded)', (await usage()) - ballastVars);
  note('sampled peak, outage (JsVars, ballast excluded)', (await sampledPeak('the outage')) - ballastVars);

  if (values.probe) {
    // Replaced from the console: the firmware reads these when it calls them (I2C.prototype's are the board
    // prelude's software I2C, the secure element's bus).
    await value(
      `(function(){var P=vgBench.probe={peak:0,stack:'',at:0};function look(){var u=process.memory(false).usage;` +
        `if(u>P.peak){P.peak=u;if(u>=P.at+20){P.at=u;P.stack=new Error('probe').stack;}}}` +
        `var fcc=String.fromCharCode;String.fromCharCode=function(){look();return fcc.apply(String,arguments);};` +
        `var I=I2C.prototype,w=I.writeTo,r=I.readFrom;I.writeTo=function(){look();return w.apply(this,arguments);};` +
        `I.readFrom=function(){look();return r.apply(this,arguments);};return 1;})()`,
    );
  }
  await grid.startBroker();
  const backlogStart = Date.now();
  // Caught up when every sequence number but the dropped ones has arrived.
  const dropped = () => (output.match(/\) dropped: /g) ?? []).length;
  await until(
    () => {
      const r = readings();
      return r.n >= r.last - dropped() && r.n > rotatedFrom + 96;
    },
    'the backlog to reach the DSO',
    1200,
  );
  note('seconds to send the backlog', ((Date.now() - backlogStart) / 1000).toFixed(1));
  note('readings dropped behind the full outbox (their energy stays in the totals)', dropped());
  note('sampled peak, backlog sent (JsVars, ballast excluded)', (await sampledPeak('the backlog')) - ballastVars);
  if (values.probe) {
    const probe = (await value('[vgBench.probe.peak,vgBench.probe.at,vgBench.probe.stack]')) as [
      number,
      number,
      string,
    ];
    note('probed peak inside tasks, backlog (JsVars, ballast excluded)', probe[0] - ballastVars);
    console.log(`stack where the probe last saw a new peak (${probe[1] - ballastVars}):\n${probe[2]}`);
  }
  const flags = flagsSeen;
  // Espruino prints "OUT OF MEMORY" and the stack of the task that ran out (jsvar.c jsvNewWithFlags): show
  // the first few, so an overflow names its task.
  let shown = 0;
  for (let at = nextMemoryError(0); at >= 0 && shown < 3; at = nextMemoryError(at + 1), shown++) {
    console.log(
      `the meter ran out of memory here (what it printed):\n${output.slice(Math.max(0, at - 300), at + 1500)}\n`,
    );
  }
  note(
    "JsVars of the console's command history, included above (the harness's commands; Espruino frees them when memory runs out)",
    (await value('process.memory().history')) as number,
  );
  note('readings verified / rejected', `${readings().n} / ${grid.rejections().length}`);
  const proven = flags.every((f) => f !== 'MEMORY' && f !== 'PRINTED') && grid.rejections().length === 0;
  console.log(
    proven
      ? `PASS: with ${ballastVars} of ${TOTAL_JSVARS} JsVars taken by ballast (base ${base}), every phase ran without a memory error: the firmware's peak is under ${TOTAL_JSVARS - ballastVars} JsVars (${(((TOTAL_JSVARS - ballastVars) / TOTAL_JSVARS) * 100).toFixed(1)} %)`
      : `FAIL: memory error flags ${flags.join(',')} (PRINTED: the meter printed a memory error) or rejections ${grid.rejections().join('; ')}`,
  );
  console.log(
    flags.includes('LOW_MEMORY')
      ? 'warning: LOW_MEMORY in a phase (the store ran full once and a garbage collection made room; no allocation failed unless MEMORY is named)'
      : 'no LOW_MEMORY warning in any phase',
  );
  console.log('\n| figure | value |\n|---|---|');
  for (const [what, v] of figures) console.log(`| ${what} | ${v} |`);
} catch (err) {
  console.error(
    `the benchmark failed: ${(err as Error).message}\nthe meter printed (last 3000 characters):\n${output.slice(-3000)}`,
  );
  process.exitCode = 1;
} finally {
  if (values.log) fs.writeFileSync(values.log, output);
  source?.stop();
  await grid.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
