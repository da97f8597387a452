// The broadcast formats on the meter's interpreter: the bundle the firmware pipeline builds from
// broadcast-entry.ts decodes the receipt and clearing vectors, finds an offer by digest and encodes the same
// bytes again, in Espruino 2v29 (skipped with a note when the interpreter is absent).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import os from 'node:os';
import path from 'node:path';
import { readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { espruinoInterpreterPath } from '../../boards/espruino-linux/interpreter-path.ts';
import { runEspruinoScript } from '../../boards/espruino-linux/run-script.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { encodeClearing, encodeReceipts } from '../../firmware/src/protocol/market-broadcast.ts';
import { amountFromBigint } from '../../host-tools/bridge/amount.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const digest = (b: number) => new Uint8Array(32).fill(b);

test('the meter decodes and re-encodes receipts and clearing results as the host does', async () => {
  const binary = espruinoInterpreterPath();
  if (!binary) {
    console.log('  (no Espruino interpreter: set VEILGRID_ESPRUINO_BIN or put it at ../shared/espruino/; skipped)');
    return;
  }
  const receipt = hex(
    encodeReceipts({
      accepted: [{ digest: digest(0xaa), interval: 11, index: 3 }],
      refused: [{ digest: digest(0xbb), reason: 17 }],
    })[0],
  );
  const clearing = hex(
    encodeClearing({ interval: 11, price: 150, volumeWh: 600, offers: 2 }, [
      { digest: digest(0xaa), fillWh: 600, paid: 0, received: 90000 },
      { digest: digest(0xcc), fillWh: 600, paid: 90000, received: 0 },
    ])[0],
  );
  const big = hex(
    encodeClearing({ interval: 1, price: 1, volumeWh: amountFromBigint(2n ** 64n + 1n), offers: 1 }, [
      { digest: digest(1), fillWh: 1, paid: 2 ** 53 - 1, received: 0 },
    ])[0],
  );
  const work = mkdtempSync(path.join(os.tmpdir(), 'veilgrid-broadcast-'));
  try {
    const built = await buildFirmware({
      board: 'esp32-meter',
      entry: path.resolve('test/bridge/broadcast-entry.ts'),
      outFile: path.join(work, 'bundle.js'),
    });
    const code = `var VECTORS = ${JSON.stringify({ receipt, clearing, big })};\n${readFileSync(built.outFile, 'latin1')}`;
    const run = await runEspruinoScript(binary, code);
    const lines = run.output.split(/\r?\n/).filter((l) => l.length > 0);
    assert.equal(
      lines,
      [
        `receipt 11 3 17 ${receipt}`,
        `clearing 150 600 90000 ${clearing}`,
        `big 010000000000000001 9007199254740991`,
        'refusal broadcast-format',
      ],
      run.output,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test.run();
