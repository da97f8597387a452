// The emulator's model of Espruino's Flash module (boards/emulator/flash-module.ts) against what
// src/jswrap_flash.c, jshFlashWriteAligned and the ESP32 jshardware.c do, and require("Flash") on the
// emulated board: the raw partition beside Storage, in the board's flash file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Flash } from '../../boards/emulator/flash.ts';
import { EspruinoFlashModule } from '../../boards/emulator/flash-module.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { loadBoardDefinition } from '../../boards/board-definition.ts';

const BASE = 0x310000;
const PAGE = 4096;

function model() {
  const flash = new Flash({ sizeBytes: 4 * PAGE, pageBytes: PAGE });
  return { flash, f: new EspruinoFlashModule(flash, BASE) };
}

test("getFree is the ESP32 build's fixed list (stale entries included); getPage answers below 4 MB", () => {
  const { f } = model();
  assert.equal(f.getFree(), [
    { addr: 0xe000, length: 0x2000 },
    { addr: 0x310000, length: 0x10000 },
    { addr: 0x360000, length: 0xa0000 },
  ]);
  assert.equal(f.getPage(0x310123), { addr: 0x310000, length: PAGE });
  assert.equal(f.getPage(0x3fffff), { addr: 0x3ff000, length: PAGE });
  assert.is(f.getPage(0x400000), undefined);
});

test('read returns a Uint8Array, undefined for a length <= 0; write only clears bits', () => {
  const { f } = model();
  assert.is(f.read(0, BASE), undefined);
  assert.equal(f.read(4, BASE), new Uint8Array([0xff, 0xff, 0xff, 0xff]));
  f.write('\x0f\xf0', BASE);
  f.write(new Uint8Array([0xf3, 0x3f]), BASE);
  assert.equal(f.read(2, BASE), new Uint8Array([0x03, 0x30]));
  f.write([1, 2, 3], BASE + 8);
  assert.equal(f.read(4, BASE + 8), new Uint8Array([1, 2, 3, 0xff]));
  assert.throws(() => f.write(undefined, BASE), /Data is not defined/);
});

test('an unaligned write programs whole words of current bytes with the new ones put in (jshFlashWriteAligned)', () => {
  const { flash, f } = model();
  f.write('\x11\x22\x33\x44\x55\x66\x77\x88', BASE);
  const before = flash.bytesProgrammed;
  f.write('\x01\x02\x03\x04\x05', BASE + 3); // head word 0..3, middle none, tail word 4..7 partly
  assert.equal(
    [...f.read(8, BASE)!],
    [0x11, 0x22, 0x33, 0x44 & 0x01, 0x55 & 0x02, 0x66 & 0x03, 0x77 & 0x04, 0x88 & 0x05],
  );
  assert.is(flash.bytesProgrammed - before, 8, 'two whole words');
  f.write('\x00', BASE + 13);
  assert.equal([...f.read(4, BASE + 12)!], [0xff, 0x00, 0xff, 0xff]);
});

test('erasePage wants an integer address, and addresses outside the emulated flash are refused', () => {
  const { f } = model();
  f.write('abc', BASE + PAGE + 5);
  f.erasePage(BASE + PAGE + 100);
  assert.equal(f.read(3, BASE + PAGE + 5), new Uint8Array([0xff, 0xff, 0xff]));
  assert.throws(() => f.erasePage(BASE + 0.5), /^Address should be an integer, got Number$/);
  assert.throws(() => f.erasePage('3211264' as unknown as number), /Address should be an integer, got String/);
  assert.throws(() => f.read(4, 0x10000), /outside the emulated flash 0x310000-0x314000/);
  assert.throws(() => f.write('x', BASE + 4 * PAGE), /outside the emulated flash/);
});

test('require("Flash") on the board: the raw partition below Storage, kept in the flash file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-flash-module-'));
  const clock = new SimClock({ speed: 1 });
  try {
    const definition = loadBoardDefinition('esp32-meter');
    const flashPath = path.join(dir, 'meter.flash');
    const first = new Board({ definition, clock, flashPath });
    first.storage.write('.bootcde', 'var booted = 1;');
    first.powerOn();
    assert.is(first.evaluate('JSON.stringify(require("Flash").getFree()[1])').value, '{"addr":3211264,"length":65536}');
    const raw = definition.rawFlash[0].addr;
    first.evaluate(`require("Flash").erasePage(${raw}); require("Flash").write("raw!", ${raw + 16})`);
    assert.is(
      first.evaluate(`var r = require("Flash").read(4, ${raw + 16}); (r instanceof Uint8Array) + " " + E.toString(r)`)
        .value,
      'true raw!',
    );
    // Storage's first file header is readable where Storage starts (size word, then the name).
    assert.is(first.evaluate(`E.toString(require("Flash").read(8, ${definition.storage.addr + 4}))`).value, '.bootcde');
    first.close();
    assert.is(fs.statSync(flashPath).size, definition.rawFlash[0].bytes + definition.storage.bytes);
    const second = new Board({ definition, clock, flashPath });
    second.powerOn();
    assert.is(second.evaluate(`E.toString(require("Flash").read(4, ${raw + 16}))`).value, 'raw!');
    assert.is(second.storage.read('.bootcde'), 'var booted = 1;');
    second.close();
  } finally {
    clock.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
