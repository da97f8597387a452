// Uploading with the real `espruino` CLI (npm espruino 0.1.67) to an emulated board's console, saved
// as boot code: the board holds the code in Storage, reboots into it, and boots it again from flash
// after a power cut — and after the process is gone, from the flash file alone.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { startConsole, type RunningConsole } from '../../boards/emulator/console.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { uploadWithEspruinoCli } from '../../host-tools/flash/espruino-cli.ts';

const definition = loadBoardDefinition('esp32-meter');

interface Rig {
  dir: string;
  flashPath: string;
  clock: SimClock;
  board: Board;
  output: string[];
  console: RunningConsole;
}

const test = suite<{ rig?: Rig }>('upload');

test.before.each(async (ctx) => {
  const dir = mkdtempSync(join(tmpdir(), 'veilgrid-upload-'));
  const flashPath = join(dir, 'board.flash');
  const clock = new SimClock({ speed: 1 });
  const board = new Board({ definition, clock, flashPath });
  const output: string[] = [];
  board.onOutput((text) => output.push(text));
  board.powerOn();
  ctx.rig = { dir, flashPath, clock, board, output, console: await startConsole(board, { port: 0 }) };
});

test.after.each(async (ctx) => {
  const rig = ctx.rig!;
  await rig.console.close();
  rig.board.close();
  rig.clock.close();
  rmSync(rig.dir, { recursive: true, force: true });
});

/** Polls (real time) until cond holds; a bound against hangs, not a timing assertion. */
async function until(cond: () => boolean, what: string, output: string[]): Promise<void> {
  for (let tries = 0; tries < 5000; tries++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`gave up waiting for ${what}; the board printed ${JSON.stringify(output.join(''))}`);
}

function count(output: string[], marker: string): number {
  return output.join('').split(marker).length - 1;
}

/** Upload `file` as boot code with the real CLI and check the board holds and runs it. */
async function uploadAndCheckBoot(rig: Rig, file: string, marker: string): Promise<void> {
  const result = await uploadWithEspruinoCli({ port: `tcp://127.0.0.1:${rig.console.port}`, file, save: 'boot' });
  assert.is(result.exitCode, 0);
  assert.is(
    rig.board.storage.read('.bootcde'),
    readFileSync(file, 'latin1'),
    'Storage .bootcde holds exactly the uploaded file',
  );
  assert.ok(
    result.boardOutput.some((line) => line.includes(marker)),
    `the CLI relayed the boot marker: ${result.output}`,
  );
  assert.is(count(rig.output, marker), 1, 'the board rebooted into the code once (load() after saving)');

  rig.board.powerCut();
  rig.board.powerOn();
  await until(() => count(rig.output, marker) === 2, 'the code to boot again after a power cut', rig.output);

  // the flash file alone is enough: a new board on the same file boots the same code
  rig.board.close();
  const again = new Board({ definition, clock: rig.clock, flashPath: rig.flashPath });
  const output: string[] = [];
  again.onOutput((text) => output.push(text));
  again.powerOn();
  await until(() => count(output, marker) === 1, 'the code to boot from the flash file', output);
  again.close();
}

test('a small program saved as boot code (throttled upload)', async ({ rig }) => {
  const file = join(rig!.dir, 'small.js');
  writeFileSync(
    file,
    'var greeting = "fixture: booted";\nsetTimeout(function () {\n  print("fixture: ticked");\n}, 10);\nprint(greeting);\n',
  );
  await uploadAndCheckBoot(rig!, file, 'fixture: booted');
});

test('a larger program with escapes saved as boot code (unthrottled upload, several Storage chunks)', async ({
  rig,
}) => {
  const file = join(rig!.dir, 'large.js');
  const table = Array.from({ length: 900 }, (_, i) => (i * 7) % 256).join(', ');
  writeFileSync(
    file,
    [
      '// upload fixture: more than 1 KB, so the CLI writes several Storage chunks',
      `var table = [${table}];`,
      'var odd = "quote \\" backslash \\\\ tab \\t bytes \\x01\\x02\\xff";',
      'function checksum() {',
      '  var s = 0;',
      '  for (var i = 0; i < table.length; i++) {',
      '    s = (s + table[i]) & 0xffff;',
      '  }',
      '  return s;',
      '}',
      'if (odd.length === 35 && odd.charCodeAt(34) === 255)',
      '  print("fixture: checksum " + checksum());',
      '',
    ].join('\n'),
  );
  const expected = Array.from({ length: 900 }, (_, i) => (i * 7) % 256).reduce((s, v) => (s + v) & 0xffff, 0);
  await uploadAndCheckBoot(rig!, file, `fixture: checksum ${expected}`);
});

test('the firmware bundle saved as boot code boots the meter firmware', async ({ rig }) => {
  const built = await buildFirmware({ board: 'esp32-meter', outFile: join(rig!.dir, 'esp32-meter.js') });
  await uploadAndCheckBoot(rig!, built.outFile, 'veilgrid meter firmware');
});

test.run();
