// Espruino Storage semantics on the emulated ESP32 flash (boards/emulator/storage.ts), as documented in
// docs/emulator-storage.md: layout, write/read rules, exact error messages, StorageFile chunks, full storage,
// compaction and persistence of the flash file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Flash } from '../../boards/emulator/flash.ts';
import { EspruinoStorage } from '../../boards/emulator/storage.ts';

const ESP32_METER_STORAGE = loadBoardDefinition('esp32-meter').storage;
const PAGE = ESP32_METER_STORAGE.pageBytes;

function smallStorage(pages = 16): EspruinoStorage {
  return new EspruinoStorage(new Flash({ sizeBytes: PAGE * pages, pageBytes: PAGE }));
}

function withTempDir(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-storage-'));
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test("an empty ESP32 meter's storage reports all its bytes free", () => {
  const s = new EspruinoStorage(new Flash({ sizeBytes: ESP32_METER_STORAGE.bytes, pageBytes: PAGE }));
  assert.equal(s.getStats(), {
    totalBytes: ESP32_METER_STORAGE.bytes,
    freeBytes: ESP32_METER_STORAGE.bytes,
    fileBytes: 0,
    fileCount: 0,
    trashBytes: 0,
    trashCount: 0,
  });
  assert.is(s.getFree(), ESP32_METER_STORAGE.bytes);
  assert.equal(s.list(), []);
  assert.is(s.read('nothing'), undefined);
  assert.is(s.chunkBytes, 4064);
});

test('write and read 8-bit strings, with offset and length', () => {
  const s = smallStorage();
  const all = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('');
  assert.is(s.write('bytes', all), true);
  assert.is(s.read('bytes'), all);
  assert.is(s.read('bytes', 65, 3), 'ABC');
  assert.is(s.read('bytes', 250), all.slice(250));
  assert.is(s.read('bytes', 300), '');
  // a file takes a 32-byte header plus its data rounded up to 4 bytes
  s.write('five', 'Hello');
  assert.is(s.getStats().fileBytes, 32 + 256 + 32 + 8);
});

test('binary data: Uint8Array, ArrayBuffer, arrays and values from another realm', () => {
  const s = smallStorage();
  s.write('u8', new Uint8Array([0, 1, 255]));
  assert.is(s.read('u8'), '\x00\x01\xff');
  s.write('ab', new Uint8Array([7, 8]).buffer);
  assert.equal(new Uint8Array(s.readArrayBuffer('ab')!), new Uint8Array([7, 8]));
  s.write('view', new Uint8Array([1, 2, 3, 4]).subarray(1, 3));
  assert.is(s.read('view'), '\x02\x03');
  const foreign = vm.runInNewContext(
    '({ bytes: new Uint8Array([65, 66]), buffer: new Uint8Array([67]).buffer, arr: [68, 69] })',
  );
  s.write('f1', foreign.bytes);
  s.write('f2', foreign.buffer);
  s.write('f3', foreign.arr);
  assert.equal([s.read('f1'), s.read('f2'), s.read('f3')], ['AB', 'C', 'DE']);
  assert.throws(() => s.write('wide', 'caf\u20ac'), /char code 8364/);
});

test('objects are stored as JSON; readJSON parses, noExceptions hides bad JSON', () => {
  const s = smallStorage();
  s.write('obj', { a: 1 } as unknown as string);
  assert.is(s.read('obj'), '{"a":1}');
  s.writeJSON('cfg', { meterId: 'm\u00e9ter', n: [1, 2] });
  assert.equal(s.readJSON('cfg', false), { meterId: 'm\u00e9ter', n: [1, 2] });
  assert.is(s.read('cfg'), '{"meterId":"m\\u00e9ter","n":[1,2]}');
  s.write('bad', '{nope');
  assert.throws(() => s.readJSON('bad', false));
  assert.is(s.readJSON('bad', true), undefined);
  assert.is(s.readJSON('missing', false), undefined);
});

test('pre-allocated files fill only never-written bytes (the Storage.write documentation example)', () => {
  const s = smallStorage();
  s.write('a', 'Hello', 0, 14);
  assert.is(s.read('a'), 'Hello' + '\xff'.repeat(9));
  s.write('a', ' ', 5);
  s.write('a', 'World!!!', 6);
  assert.is(s.read('a'), 'Hello World!!!');
  assert.throws(() => s.write('a', 'x', 1), /^File already written with different data$/);
  assert.throws(() => s.write('a', 'xyz', 13), /^Too much data for file size$/);
  assert.throws(() => s.write('nofile', 'x', 3), /^Unable to find or create file$/);
  assert.throws(() => s.write('empty', ''), /^Can't create zero length file$/);
  s.write('a', ' ', 0); // offset 0 re-creates the file
  assert.is(s.read('a'), ' ');
  assert.is(s.getStats().trashCount, 1);
});

test('rewriting identical contents writes nothing', () => {
  const s = smallStorage();
  s.write('same', 'contents');
  const before = s.flash.bytesWritten;
  s.write('same', 'contents');
  assert.is(s.flash.bytesWritten, before);
  assert.is(s.getStats().trashCount, 0);
});

test('names: up to 28 chars (27 for StorageFile); longer names are refused, not truncated', () => {
  const s = smallStorage();
  const n28 = 'n'.repeat(28);
  s.write(n28, 'ok');
  assert.is(s.read(n28), 'ok');
  assert.throws(() => s.write('n'.repeat(29), 'x'), /File name too long/);
  assert.throws(() => s.read('n'.repeat(29)), /File name too long/);
  s.open('s'.repeat(27), 'w').write('ok');
  assert.throws(() => s.open('s'.repeat(28), 'w'), /File name too long/);
  assert.throws(() => s.write('', 'x'), /empty/);
});

test('erase, eraseAll and list (StorageFiles show as "name\\x01" unless filtered)', () => {
  const s = smallStorage();
  s.write('a.json', '1');
  s.write('b.txt', '2');
  s.write('.bootcde', 'code');
  s.open('log', 'w').write('line\n');
  assert.equal(s.list(), ['a.json', 'b.txt', '.bootcde', 'log\x01']);
  assert.equal(s.list(/\.json$/), ['a.json']);
  assert.equal(s.list(undefined, { sf: true }), ['log']);
  assert.equal(s.list(undefined, { sf: false }), ['a.json', 'b.txt', '.bootcde']);
  s.erase('a.json');
  s.erase('not-there');
  assert.is(s.read('a.json'), undefined);
  assert.equal(s.getStats().trashCount, 1);
  s.eraseAll();
  assert.equal(s.list(), []);
  assert.is(s.getFree(), s.getStats().totalBytes);
});

test('StorageFile: append across 4064-byte chunks, readLine across the boundary, getLength', () => {
  const s = smallStorage();
  const f = s.open('log', 'w');
  const lines: string[] = [];
  for (let i = 0; i < 300; i++) {
    const line = `reading ${i} ${'x'.repeat(i % 40)}\n`;
    lines.push(line);
    f.write(line);
  }
  const text = lines.join('');
  assert.ok(text.length > 2 * 4064, 'spans three chunks');
  assert.equal(s.list(undefined, { sf: true }), ['log']);
  assert.is(s.open('log', 'r').getLength(), text.length);
  const r = s.open('log', 'r');
  const back: string[] = [];
  for (let line = r.readLine(); line !== undefined; line = r.readLine()) back.push(line);
  assert.equal(back, lines);
  const byBlocks = s.open('log', 'r');
  let all = '';
  for (let part = byBlocks.read(1000); part !== undefined; part = byBlocks.read(1000)) all += part;
  assert.is(all, text);
  // append mode continues at the end; write mode starts again
  s.open('log', 'a').write('tail\n');
  assert.is(s.open('log', 'r').getLength(), text.length + 5);
  s.open('log', 'w').write('fresh\n');
  assert.is(s.open('log', 'r').readLine(), 'fresh\n');
  assert.is(s.open('log', 'r').getLength(), 6);
});

test('StorageFile: the documented example, modes and erase', () => {
  const s = smallStorage();
  const f = s.open('foobar', 'w');
  for (const part of ['Hell', 'o World\n', 'Hello\n', 'World 2\n', 'Hello World 3\n']) f.write(part);
  const r = s.open('foobar', 'r');
  assert.equal(
    [r.read(13), r.read(13), r.read(13), r.read(13), r.read(13)],
    ['Hello World\nH', 'ello\nWorld 2\n', 'Hello World 3', '\n', undefined],
  );
  assert.throws(() => r.write('x'), /^Can't write in this mode$/);
  assert.throws(() => f.read(1), /^Can't read in this mode$/);
  assert.throws(() => s.open('foobar', 'x' as 'r'), /^Invalid mode "x"$/);
  s.open('foobar', 'r').erase();
  assert.is(s.open('foobar', 'r').read(1), undefined);
  assert.equal(s.list(), []);
});

test('StorageFile refuses byte 0xFF (the end-of-file marker) and writes nothing', () => {
  const s = smallStorage();
  const f = s.open('bin', 'w');
  f.write('ok');
  assert.throws(() => f.write('a\xffb'), /byte 0xFF at index 1/);
  assert.is(s.open('bin', 'r').read(100), 'ok');
});

test('a single StorageFile write longer than a chunk fails as on the device', () => {
  const s = smallStorage();
  const f = s.open('big', 'w');
  assert.throws(() => f.write('x'.repeat(5000)), /^Too much data for file size$/);
  assert.throws(() => f.write('y'), /^Can't write in this mode$/);
});

test('full storage: a new file is refused and nothing already stored is lost', () => {
  const s = smallStorage(4);
  const stored = new Map<string, string>();
  let i = 0;
  for (;;) {
    const name = `f${i}`;
    const data = String.fromCharCode(65 + (i % 26)).repeat(1000);
    try {
      s.write(name, data);
    } catch (e) {
      assert.is((e as Error).message, 'Unable to find or create file');
      break;
    }
    stored.set(name, data);
    i++;
  }
  assert.is(stored.size, 15);
  assert.ok(s.getFree() < 1032);
  for (const [name, data] of stored) assert.is(s.read(name), data);
  assert.throws(() => s.open('log', 'w').write('x'.repeat(100)), /Unable to find or create file/);
  for (const [name, data] of stored) assert.is(s.read(name), data);
});

test('full storage: a rewrite that no longer fits has already deleted the old version', () => {
  const s = smallStorage(2);
  s.write('keep', 'k'.repeat(3000));
  s.write('grow', 'g'.repeat(4000));
  assert.throws(() => s.write('grow', 'G'.repeat(6000)), /^Unable to find or create file$/);
  assert.is(s.read('grow'), undefined);
  assert.is(s.read('keep'), 'k'.repeat(3000));
});

test('rewrites leave trash; compact() reclaims it and keeps every file', () => {
  const s = smallStorage();
  s.write('a', 'A'.repeat(700));
  for (let i = 0; i < 20; i++) s.write('b', `version ${i} ` + 'B'.repeat(500));
  s.open('log', 'w').write('one\ntwo\n');
  const before = s.getStats();
  assert.is(before.trashCount, 19);
  s.compact();
  const after = s.getStats();
  assert.is(after.trashCount, 0);
  assert.is(after.fileCount, before.fileCount);
  assert.is(after.freeBytes, before.freeBytes + before.trashBytes);
  assert.is(s.read('a'), 'A'.repeat(700));
  assert.is(s.read('b'), 'version 19 ' + 'B'.repeat(500));
  assert.is(s.open('log', 'r').readLine(), 'one\n');
  assert.ok(s.isStorageValid());
});

test('a full storage compacts itself when a write needs the space', () => {
  const s = smallStorage(4);
  s.write('keep', 'K'.repeat(2000));
  for (let i = 0; i < 100; i++) s.write('journal', `${i}`.padStart(6, '0') + 'j'.repeat(994));
  assert.is(s.read('journal'), '000099' + 'j'.repeat(994));
  assert.is(s.read('keep'), 'K'.repeat(2000));
  assert.ok(s.getStats().trashCount < 14);
  assert.ok(s.flash.bytesErased > 0, 'compaction erased pages');
});

test('the flash file (owner only) persists the storage across re-opening', () => {
  withTempDir((dir) => {
    const file = path.join(dir, 'board.flash');
    const flash = new Flash({ sizeBytes: PAGE * 8, pageBytes: PAGE, path: file });
    const s = new EspruinoStorage(flash);
    s.write('vg.config', '{"meterId":"m1"}');
    s.open('log', 'w').write('a\n');
    s.erase('vg.config');
    s.write('vg.config', '{"meterId":"m2"}');
    flash.close();
    assert.is(fs.statSync(file).size, PAGE * 8);
    assert.is(fs.statSync(file).mode & 0o777, 0o600, 'the flash holds the configuration (broker password): owner only');
    const again = new EspruinoStorage(new Flash({ sizeBytes: PAGE * 8, pageBytes: PAGE, path: file }));
    assert.is(again.read('vg.config'), '{"meterId":"m2"}');
    assert.is(again.open('log', 'r').readLine(), 'a\n');
    assert.equal(again.getStats().trashCount, 1);
    again.flash.close();
    assert.throws(
      () => new Flash({ sizeBytes: PAGE * 4, pageBytes: PAGE, path: file }),
      /holds 32768 bytes but this flash has 16384/,
    );
  });
});

test('flash: programming only clears bits, erase restores 0xFF', () => {
  const flash = new Flash({ sizeBytes: PAGE * 2, pageBytes: PAGE });
  flash.program(10, new Uint8Array([0xf0, 0x0f]));
  flash.program(10, new Uint8Array([0x3c, 0xff]));
  assert.equal(flash.read(10, 2), new Uint8Array([0x30, 0x0f]));
  flash.erasePage(PAGE + 5);
  assert.equal(flash.read(10, 2), new Uint8Array([0x30, 0x0f]), 'other page untouched');
  flash.erasePage(11);
  assert.equal(flash.read(10, 2), new Uint8Array([0xff, 0xff]));
  assert.is(flash.bytesProgrammed, 4);
  assert.is(flash.bytesErased, 2 * PAGE);
  assert.throws(() => flash.read(PAGE * 2 - 1, 2), RangeError);
});

test.run();
