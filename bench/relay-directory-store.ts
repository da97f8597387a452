// What storing the relay directory costs a meter (firmware/src/mixnet/relay-directory-store.ts), on the vm: the
// firmware's store in Node over the emulator's Storage (ESP32 layout, 896 KB, the firmware's 112 KB bundle in it)
// and ATECC608 model, fed the DSO's own signed directory of 100 and 1,000 relays through a retained-message
// stand-in for the broker. Prints per directory: secure element commands, flash bytes programmed and erased, the
// time the update took in Node, then the cost of sampling (relayAt, indexOf) in Storage reads. Node's times are
// this machine's, not an ESP32's (and the SE model's arithmetic is not the chip's time: the chip takes at most
// 20 ms for Nonce and 295 ms for Verify, CryptoAuthLib's maximum execution times); SE commands and flash bytes
// are the board's.
// Then, when the real interpreter is there (boards/espruino-linux), the same store in Espruino 2v29 with the
// ESP32's memory layout and its own Storage (bench/fixtures/relay-directory-store-entry.ts): the update's time
// and the JsVars it takes at its peak above what was in use before, and the time of relayAt and indexOf. The
// interpreter runs on this machine's CPU: an ESP32 is slower.
//   node --import tsx bench/relay-directory-store.ts
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { Flash } from '../boards/emulator/flash.ts';
import { espruinoInterpreterPath } from '../boards/espruino-linux/interpreter-path.ts';
import { runEspruinoScript } from '../boards/espruino-linux/run-script.ts';
import { buildFirmware } from '../host-tools/build/build-firmware.ts';
import { EspruinoStorage } from '../boards/emulator/storage.ts';
import { RelayDirectoryStore } from '../firmware/src/mixnet/relay-directory-store.ts';
import { kidOf } from '../firmware/src/protocol/certificate.ts';
import { nodeSha256 } from '../host-tools/crypto/node-primitives.ts';
import { createDsoKey } from '../host-tools/dso/dso-key.ts';
import { exitRecordOf, publishRelayDirectory, signRelayDirectory } from '../host-tools/dso/relay-directory.ts';
import { provisionedSecureElement } from '../test/support/provisioned-se.ts';
import { RetainedBroker } from '../test/support/retained-broker.ts';

const SAMPLES = 2000;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-bench-directory-'));
const chip = provisionedSecureElement();
try {
  const dsoKey = createDsoKey(path.join(work, 'dso-key.json'));
  const exit = exitRecordOf(p256.getPublicKey(p256.utils.randomSecretKey(), false));
  console.log(`relay directory store on the vm; ${os.cpus().length} cores, ${new Date().toISOString()}`);
  console.log(
    '| relays | pages | SE commands | flash bytes programmed | flash bytes erased | update ms (Node) | relayAt µs | indexOf µs | Storage reads per indexOf |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const n of [100, 1000]) {
    const flash = new Flash({ sizeBytes: 917_504, pageBytes: 4096 });
    const storage = new EspruinoStorage(flash);
    storage.write('.bootcde', 'x'.repeat(112_000));
    const broker = new RetainedBroker();
    let reads = 0;
    const counted = Object.create(storage) as EspruinoStorage;
    counted.read = (name: string, offset?: number, length?: number) => {
      reads++;
      return storage.read(name, offset, length);
    };
    const store = new RelayDirectoryStore({
      storage: counted,
      se: chip.se,
      sha256: nodeSha256,
      dsoPublicKey: dsoKey.publicKey,
      mqtt: broker,
      clock: { now: () => Date.now() / 1000, setTimeout: () => 0, clearTimeout: () => {} },
      log: () => {},
    });
    store.start();
    const relays = Array.from({ length: n }, () => {
      const mixKey = new Uint8Array(randomBytes(64));
      return { relayId: kidOf(nodeSha256, mixKey), mixKey };
    });
    const directory = signRelayDirectory(dsoKey, 1_800_000_000 + n, relays, exit);
    await publishRelayDirectory((topic, payload) => broker.publish(topic, payload), directory);
    const commands = chip.se.stats.commands;
    const programmed = flash.bytesProgrammed;
    const erased = flash.bytesErased;
    const t0 = performance.now();
    broker.drain();
    const updateMs = performance.now() - t0;
    if (store.relayCount() !== n) throw new Error(`the store holds ${store.relayCount()} relays, not ${n}`);
    const t1 = performance.now();
    for (let i = 0; i < SAMPLES; i++) store.relayAt((i * 7919) % n);
    const relayAtUs = ((performance.now() - t1) * 1000) / SAMPLES;
    reads = 0;
    const t2 = performance.now();
    for (let i = 0; i < SAMPLES; i++) store.indexOf(relays[i % n].relayId);
    const indexOfUs = ((performance.now() - t2) * 1000) / SAMPLES;
    console.log(
      `| ${n} | ${directory.pages.length} | ${chip.se.stats.commands - commands} | ${flash.bytesProgrammed - programmed} | ${flash.bytesErased - erased} | ${updateMs.toFixed(1)} | ${relayAtUs.toFixed(1)} | ${indexOfUs.toFixed(1)} | ${(reads / SAMPLES).toFixed(1)} |`,
    );
  }
  const binary = espruinoInterpreterPath();
  if (!binary) console.log('\n(no Espruino interpreter: set VEILGRID_ESPRUINO_BIN for the interpreter figures)');
  else {
    const { outFile } = await buildFirmware({
      board: 'esp32-meter',
      entry: path.join(import.meta.dirname, 'fixtures/relay-directory-store-entry.ts'),
      outFile: path.join(work, 'relay-directory-store.js'),
    });
    const run = await runEspruinoScript(binary, fs.readFileSync(outFile, 'latin1'), { timeoutMs: 300_000 });
    const lines = run.output.split(/\r?\n/);
    if (!lines.some((l) => l.startsWith('DONE')))
      throw new Error(`the benchmark did not finish in the interpreter:\n${run.output}`);
    console.log('\nthe same store in Espruino 2v29 (Linux build, ESP32 memory layout; Verify outside)');
    console.log('| relays | pages | update ms | peak JsVars above before | relayAt ms | indexOf ms |');
    console.log('|---|---|---|---|---|---|');
    const reads = new Map<string, string[]>();
    for (const line of lines) {
      const r = /^READ (\d+) (\S+) (\S+)/.exec(line);
      if (r) reads.set(r[1], [r[2], r[3]]);
    }
    for (const line of lines) {
      const d = /^DIR (\d+) (\d+) (\d+) (\d+)/.exec(line);
      if (d) console.log(`| ${d[1]} | ${d[2]} | ${d[3]} | ${d[4]} | ${reads.get(d[1])?.join(' | ')} |`);
      else if (!/^(READ|DONE|directory: epoch)/.test(line) && line.trim()) console.log(line);
    }
  }
} finally {
  chip.close();
  fs.rmSync(work, { recursive: true, force: true });
}
