// The seam between device code and the shared protocol library: host code (host-tools/, boards/) may
// import from firmware/src only what is in firmware/src/protocol/, and protocol/ imports nothing outside
// itself, so the formats meter and host share stay one self-contained library.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const FIRMWARE = path.resolve('firmware/src');
const PROTOCOL = path.join(FIRMWARE, 'protocol');

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : tsFiles(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

/** Every relative import of a file, resolved to an absolute path. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) =>
    path.resolve(path.dirname(file), m[1]),
  );
}

const inside = (dir: string, file: string) => file === dir || file.startsWith(dir + path.sep);

test('host code imports only firmware/src/protocol/ from the firmware', () => {
  const offending: string[] = [];
  for (const root of ['host-tools', 'boards']) {
    for (const file of tsFiles(path.resolve(root))) {
      for (const target of importsOf(file)) {
        if (inside(FIRMWARE, target) && !inside(PROTOCOL, target))
          offending.push(`${path.relative('.', file)} imports ${path.relative('.', target)}`);
      }
    }
  }
  assert.equal(offending, [], 'move what the host needs into firmware/src/protocol/, or keep it on the device');
});

test('firmware/src/protocol/ imports nothing outside itself', () => {
  const offending: string[] = [];
  for (const file of tsFiles(PROTOCOL)) {
    for (const target of importsOf(file)) {
      if (!inside(PROTOCOL, target))
        offending.push(`${path.relative('.', file)} imports ${path.relative('.', target)}`);
    }
  }
  assert.equal(offending, []);
});

test.run();
