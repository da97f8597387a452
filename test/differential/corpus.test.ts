// The differential corpora (corpus.ts, transport-corpus.ts, market-corpus.ts) on three
// engines: Node, the vm emulator's realm and the real Espruino 2v29 interpreter, the last two running the
// firmware build of the corpus's entry file. Every case
// must give the same output line on all three. Where the input itself differs by nature (text built
// from char codes above 0xFF, which Espruino cuts to 8 bits) Node must refuse, and the realm must give
// the device's answer. Without the interpreter binary the test says so and still compares Node with the
// realm, the realm then held to the device answers recorded below.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { espruinoInterpreterPath } from '../../boards/espruino-linux/interpreter-path.ts';
import { runEspruinoScript } from '../../boards/espruino-linux/run-script.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { nodeCryptoPrimitives } from '../../host-tools/crypto/node-primitives.ts';
import { CORPUS_END, NATURE_DIFFERS, runCorpus, type CorpusEnvironment } from './corpus.ts';
import { runMarketCorpus } from './market-corpus.ts';
import { runTransportCorpus } from './transport-corpus.ts';

/** What the real interpreter answers for the cases whose input differs by nature (recorded from it). */
const DEVICE_ANSWERS: Record<string, string> = {
  'cbor.encode.text-u20ac': '62c2ac',
  'mqtt.topic-u20ac':
    'ERR MqttPacketError: topic "x\u00ac" has char code 172 at index 1: only ASCII 1..127 is allowed (device strings are 8-bit)',
};

/** Cases whose refusal quotes the engine's own error text in parentheses (JSON.parse): compared before it. */
const ENGINE_WORDS = ['config.not-json'];

/** Case name -> result, from the corpus output; fails unless the output is complete. */
function results(output: string, engine: string): Map<string, string> {
  const lines = output.split(/\r?\n/);
  assert.ok(lines.includes(CORPUS_END), `${engine} ran the corpus to its end; it printed:\n${output.slice(-3000)}`);
  const out = new Map<string, string>();
  for (const line of lines) {
    if (!line.startsWith('C ')) continue;
    const space = line.indexOf(' ', 2);
    out.set(line.slice(2, space), line.slice(space + 1));
  }
  return out;
}

function comparable(name: string, result: string): string {
  return ENGINE_WORDS.includes(name) ? result.slice(0, result.indexOf(' (')) : result;
}

function runInNode(corpus: (env: CorpusEnvironment) => void): Map<string, string> {
  let output = '';
  corpus({
    ...nodeCryptoPrimitives,
    print: (line) => {
      output += line + '\n';
    },
  });
  return results(output, 'Node');
}

function runInRealm(bundle: string): Map<string, string> {
  const clock = new SimClock({ speed: 1000, startEpochSeconds: 1_800_000_000 });
  const board = new Board({ definition: loadBoardDefinition('esp32-meter'), clock, name: 'differential' });
  try {
    board.storage.write('.bootcde', bundle);
    let output = '';
    board.onOutput((text) => {
      output += text;
    });
    board.powerOn();
    return results(output, 'the vm realm');
  } finally {
    board.close();
    clock.close();
  }
}

function assertSame(name: string, actual: string | undefined, expected: string | undefined, what: string): void {
  assert.ok(actual !== undefined, `${what}: case ${name} printed nothing`);
  assert.is(comparable(name, actual as string), comparable(name, expected as string), `${what}: case ${name}`);
}

/** Node, the realm and (when present) the interpreter run the corpus; every case must agree. */
async function compareEngines(
  entryFile: string,
  corpus: (env: CorpusEnvironment) => void,
  minimumCases: number,
): Promise<Map<string, string>> {
  const work = mkdtempSync(path.join(tmpdir(), 'veilgrid-differential-'));
  try {
    const { outFile } = await buildFirmware({
      board: 'esp32-meter',
      entry: path.resolve('test/differential', entryFile),
      outFile: path.join(work, 'corpus.js'),
    });
    const bundle = readFileSync(outFile, 'latin1');
    const node = runInNode(corpus);
    const realm = runInRealm(bundle);
    assert.ok(node.size >= minimumCases, `the corpus has its cases (${node.size})`);
    assert.equal([...realm.keys()], [...node.keys()], 'the realm ran the same cases');

    const binary = espruinoInterpreterPath();
    let device: Map<string, string>;
    if (binary) {
      const run = await runEspruinoScript(binary, bundle, { timeoutMs: 60_000 });
      device = results(run.output, 'the Espruino interpreter');
      assert.equal([...device.keys()], [...node.keys()], 'the interpreter ran the same cases');
    } else {
      console.log(
        '  (no Espruino interpreter: set VEILGRID_ESPRUINO_BIN or put it at ../shared/espruino/; skipping the real-interpreter part, comparing Node with the vm realm)',
      );
      device = new Map(Object.entries(DEVICE_ANSWERS));
    }

    for (const [name, result] of node) {
      if (NATURE_DIFFERS.includes(name)) {
        assert.ok(
          result.startsWith('ERR '),
          `Node refuses ${name}, whose input the device cannot represent (got ${result})`,
        );
        assertSame(name, realm.get(name), DEVICE_ANSWERS[name], "the realm gives the device's answer");
        assertSame(name, device.get(name), DEVICE_ANSWERS[name], 'the interpreter still gives the recorded answer');
        continue;
      }
      if (binary) assertSame(name, device.get(name), result, 'the interpreter agrees with Node');
      assertSame(name, realm.get(name), binary ? device.get(name) : result, 'the realm agrees with the interpreter');
    }
    return realm;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

test("the firmware's pure modules give the same bytes in Node, the vm realm and the real interpreter", async () => {
  const realm = await compareEngines('corpus-entry.ts', runCorpus, 200);
  // The bug this corpus was built after: byte strings (the kid) must stay Uint8Array on the device.
  assert.match(realm.get('cbor.roundtrip.bytes-are-uint8array') as string, /^Uint8Array /);
  assert.not.match(realm.get('cose.sign-reading') as string, /^ERR/);
});

test('the 8-bit string formats (MQTT packets, journal records, configuration) give the same bytes in Node, the vm realm and the real interpreter', async () => {
  const realm = await compareEngines('transport-corpus-entry.ts', runTransportCorpus, 37);
  assert.match(
    realm.get('mqtt.encode.publish-20000') as string,
    /^20\d{3} /,
    'a 20,000-byte PUBLISH fits beside the code',
  );
});

test('the market and mixnet formats give the same bytes in Node, the vm realm and the real interpreter', async () => {
  const realm = await compareEngines('market-corpus-entry.ts', runMarketCorpus, 29);
  for (const name of [
    'offer.decode',
    'asset-request.attested',
    'onion.peel-path',
    'directory.walk',
    'relay.batch',
    'onion.sender',
  ])
    assert.not.match(realm.get(name) as string, /^ERR/, name);
  for (const name of ['onion.tampered', 'onion.wrong-key'])
    assert.match(realm.get(name) as string, /^ERR OnionPacketError: the onion packet does not verify/, name);
  assert.match(realm.get('directory.tampered') as string, /^ERR RelayDirectoryError: directory page 0 does not match/);
});

test.run();
