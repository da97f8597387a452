// Times the firmware's per-reading JavaScript work in the real Espruino 2v29 interpreter (built for Linux
// with the ESP32's memory layout): HMAC, HKDF, encoding, COSE signing around a fixed signature, sealing,
// an MQTT PUBLISH. Prints ms per call and the JsVars one result holds. The interpreter runs on this
// machine's CPU, so a real ESP32 (240 MHz, -Og build) is slower; the JsVar figures are the board's.
//   node --import tsx bench/espruino-operations.ts
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildFirmware } from '../host-tools/build/build-firmware.ts';
import { espruinoInterpreterPath } from '../boards/espruino-linux/interpreter-path.ts';
import { runEspruinoScript } from '../boards/espruino-linux/run-script.ts';

const binary = espruinoInterpreterPath();
if (!binary) {
  console.error(
    'no Espruino interpreter: set VEILGRID_ESPRUINO_BIN or put ../shared/espruino/espruino-2v29-esp32like beside the repository',
  );
  process.exit(2);
}
const work = mkdtempSync(path.join(tmpdir(), 'veilgrid-bench-ops-'));
try {
  const entry = path.join(import.meta.dirname, 'fixtures/operations-entry.ts');
  const { outFile } = await buildFirmware({ board: 'esp32-meter', entry, outFile: path.join(work, 'operations.js') });
  const run = await runEspruinoScript(binary, readFileSync(outFile, 'latin1'), { timeoutMs: 120_000 });
  const lines = run.output.split(/\r?\n/);
  if (!lines.some((l) => l.startsWith('DONE')))
    throw new Error(`the benchmark did not finish in the interpreter:\n${run.output}`);
  console.log('| operation | ms per call | JsVars one result holds |');
  console.log('|---|---|---|');
  for (const line of lines) {
    const op = /^OP (\S+) (\S+) (\S+)/.exec(line);
    if (op) console.log(`| ${op[1]} | ${op[2]} | ${op[3]} |`);
    else if (line.startsWith('BOOT ')) console.log(`(JsVars in use with the benchmark loaded: ${line.slice(5)})`);
    else if (line.trim() && !line.startsWith('DONE')) console.log(line);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
