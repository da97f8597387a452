// How long the meter firmware takes, in the real Espruino 2v29 interpreter (the espruino-linux board), to
// be provisioned and to report: provisionMeter() through its console, and for each interval the time from
// the interval's end until the DSO has the reading (closing the interval, signing in the SE, sealing,
// publishing through aedes, verifying). The SE's execution times are real time here, as on a board.
//   node --import tsx bench/espruino-reading.ts [--intervals 8] [--interval 10]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { unavailable } from '../boards/harness/meter-board.ts';
import { startGrid } from '../host-tools/grid/grid.ts';
import { S0PulseSource } from '../boards/emulator/devices/s0-pulse-source.ts';
import { constant } from '../boards/emulator/load-profile.ts';
import { buildFirmware } from '../host-tools/build/build-firmware.ts';

const { values } = parseArgs({
  options: { intervals: { type: 'string', default: '8' }, interval: { type: 'string', default: '10' } },
});
const INTERVALS = Number(values.intervals);
const INTERVAL = Number(values.interval);

const missing = unavailable('espruino-linux');
if (missing) {
  console.error(`cannot run: ${missing}`);
  process.exit(2);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-bench-reading-'));
const grid = await startGrid({ dir, backend: 'espruino-linux' });
const { rig } = grid;
let source: S0PulseSource | undefined;
try {
  const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(dir, 'esp32-meter.js') });
  const board = await grid.addBoard('meter-0001');
  board.writeFile('.bootcde', fs.readFileSync(outFile, 'latin1'));
  await board.powerOn();
  const provisionStart = Date.now();
  await grid.provision(board, 'meter-0001', { intervalSeconds: INTERVAL });
  const provisionSeconds = (Date.now() - provisionStart) / 1000;
  source = new S0PulseSource({
    board,
    pin: rig.definition.pins.s0Import,
    impulsesPerKWh: 1000,
    profile: constant(3600),
  });
  source.start();
  // The first reading (partial interval, first key rotation) is left out of the figures.
  const firstSeq = 2;
  const deadline = Date.now() + (INTERVALS + 4) * INTERVAL * 1000;
  const until = async (seq: number) => {
    while (grid.readings().last < seq && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
  };
  await until(firstSeq - 1);
  const start = { seCommands: board.seCommands, last: grid.readings().last };
  await until(firstSeq + INTERVALS - 1);
  const rows = grid.dso.store.db
    .prepare(
      'SELECT seq, interval_index AS interval, received_at_ms AS receivedAtMs FROM readings WHERE seq >= ? ORDER BY seq',
    )
    .all(firstSeq) as { seq: number; interval: number; receivedAtMs: number }[];
  if (rows.length < INTERVALS)
    throw new Error(
      `only ${rows.length} of ${INTERVALS} readings arrived; rejections: ${grid.rejections().join('; ')}`,
    );
  const delays = rows.map((r) => r.receivedAtMs / 1000 - (r.interval + 1) * INTERVAL).sort((a, b) => a - b);
  const perReading = (board.seCommands - start.seCommands) / (grid.readings().last - start.last);
  console.log(`| figure | value |\n|---|---|`);
  console.log(
    `| provisionMeter() through the console (SE configured, locked, keys made; config written; restart) | ${provisionSeconds.toFixed(1)} s |`,
  );
  console.log(
    `| interval end to reading at the DSO, ${delays.length} intervals of ${INTERVAL} s: min / median / max | ${delays[0].toFixed(2)} / ${delays[Math.floor(delays.length / 2)].toFixed(2)} / ${delays[delays.length - 1].toFixed(2)} s |`,
  );
  console.log(`| SE commands per reading | ${perReading.toFixed(2)} |`);
  console.log(`| readings refused by the DSO | ${grid.rejections().length} |`);
} catch (err) {
  console.error(`the benchmark failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  source?.stop();
  await grid.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
