// Size of the firmware bundle as flashed: builds it with `veilgrid build`'s code and prints bytes, plus gzip
// bytes for reference (Espruino stores the script uncompressed in Storage; gzip shows how much is redundancy).
// Usage: node --import tsx bench/bundle-size.ts [--board esp32-meter] [--entry FILE]
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildFirmware } from '../host-tools/build/build-firmware.ts';

const { values } = parseArgs({
  options: { board: { type: 'string', default: 'esp32-meter' }, entry: { type: 'string' } },
});
const { outFile, bytes } = await buildFirmware({ board: values.board!, entry: values.entry });
const gzipBytes = gzipSync(readFileSync(outFile), { level: 9 }).length;
console.log(
  `${path.relative(process.cwd(), outFile)}: ${bytes} bytes (gzip -9: ${gzipBytes} bytes, for reference only)`,
);
