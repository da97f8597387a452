// The seam between device code and the shared protocol library: host code (host-tools/, boards/) may
// import from firmware/src only what is in firmware/src/protocol/, and protocol/ imports nothing outside
// itself, so the formats meter and host share stay one self-contained library.
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { importsOf, inside, tsFiles } from '../support/source-imports.ts';

const FIRMWARE = path.resolve('firmware/src');
const PROTOCOL = path.join(FIRMWARE, 'protocol');

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
