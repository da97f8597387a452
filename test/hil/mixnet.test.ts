// A meter's mix node on Espruino 2v29's own interpreter: one round of mixnet-scenario.ts (carry an offer,
// build and send its packet in slot 0, relay three packets at slot 1) gives exactly the same log lines and
// published bytes there as in Node, and those bytes peel with the relays' and the exit's keys in node:crypto:
// the offer reaches the exit through two relays, and each relayed packet reaches its next relay.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createECDH, randomBytes, type ECDH } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { espruinoInterpreterPath } from '../../boards/espruino-linux/interpreter-path.ts';
import { runEspruinoScript } from '../../boards/espruino-linux/run-script.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { kidOf } from '../../firmware/src/protocol/certificate.ts';
import { slotMs, type MarketClock } from '../../firmware/src/protocol/mix-schedule.ts';
import {
  buildOnionPacket,
  PAYLOAD_DUMMY,
  PAYLOAD_OFFER,
  peelOnionPacket,
} from '../../firmware/src/protocol/onion-packet.ts';
import { MIX_EXIT_TOPIC, relayInboxTopic } from '../../firmware/src/protocol/topics.ts';
import { hopTo, type TestRelay } from '../support/onion-relays.ts';
import { runMixScenario, type MixScenarioData } from './mixnet-scenario.ts';

const hex = (b: Uint8Array | Buffer) => Buffer.from(b).toString('hex');

function relayWithId(key: ECDH): TestRelay {
  return { id: kidOf(nodeSha256, new Uint8Array(key.getPublicKey())), key };
}

function keyPair(): ECDH {
  const k = createECDH('prime256v1');
  k.generateKeys();
  return k;
}

/** The interval whose offer window the round is in. */
const INTERVAL = 100;

/** The scenario's data and the keys behind it. */
function scenario() {
  const market: MarketClock = { genesisTime: 1_790_000_000, intervalSeconds: 10 };
  const meters = [keyPair(), keyPair(), keyPair(), keyPair()].map(relayWithId);
  const self = meters[0];
  const exit = relayWithId(keyPair());
  const sorted = [...meters].sort((a, b) => Buffer.compare(Buffer.from(a.id), Buffer.from(b.id)));
  const ephemerals = [keyPair(), keyPair(), keyPair()];
  const tempShared: Record<string, string> = {};
  ephemerals.forEach((e, i) => {
    for (const r of [...meters, exit]) tempShared[`${i}:${hex(r.id)}`] = hex(e.computeSecret(r.key.getPublicKey()));
  });
  const mixShared: Record<string, string> = {};
  const inbound = meters.slice(1).map((next) => {
    const hops = [self, next, exit].map(hopTo);
    mixShared[hex(hops[0].ephemeralKey)] = hex(hops[0].shared);
    return { next, packet: buildOnionPacket(nodeCryptoPrimitives, INTERVAL, hops, PAYLOAD_DUMMY, new Uint8Array(0)) };
  });
  const data: MixScenarioData = {
    market,
    interval: INTERVAL,
    relayId: hex(self.id),
    seed: hex(randomBytes(32)),
    relays: sorted.map((r) => [hex(r.id), hex(r.key.getPublicKey().subarray(1))]),
    exit: [hex(exit.id), hex(exit.key.getPublicKey().subarray(1))],
    ephemerals: ephemerals.map((e) => hex(e.getPublicKey().subarray(1))),
    tempShared,
    mixShared,
    inbound: inbound.map((i) => hex(i.packet)),
    offer: hex(randomBytes(177)),
  };
  return { data, meters, exit, inbound };
}

function peel(relay: TestRelay, packet: Uint8Array) {
  const shared = relay.key.computeSecret(Buffer.concat([Buffer.from([4]), packet.subarray(1, 65)]));
  return peelOnionPacket(nodeCryptoPrimitives, INTERVAL, new Uint8Array(shared), packet);
}

const lines = (output: string) => output.split(/\r?\n/).filter((l) => l.startsWith('L ') || l.startsWith('P '));

test('one round of the mix node: the same lines in Node and on Espruino, and every published packet peels', async () => {
  const binary = espruinoInterpreterPath();
  if (!binary) {
    console.log('  (no Espruino interpreter: set VEILGRID_ESPRUINO_BIN or put it at ../shared/espruino/; skipped)');
    return;
  }
  const { data, meters, exit, inbound } = scenario();
  let nodeOutput = '';
  runMixScenario({ ...nodeCryptoPrimitives, print: (l) => (nodeOutput += l + '\n') }, data);
  const inNode = lines(nodeOutput);

  const work = mkdtempSync(path.join(tmpdir(), 'veilgrid-mixnet-'));
  try {
    const { outFile } = await buildFirmware({
      board: 'esp32-meter',
      entry: path.resolve('test/hil/mixnet-entry.ts'),
      outFile: path.join(work, 'mixnet.js'),
    });
    const bundle = `var VG_MIX=${JSON.stringify(data)};\n${readFileSync(outFile, 'latin1')}`;
    const run = await runEspruinoScript(binary, bundle, { timeoutMs: 30_000 });
    const onDevice = lines(run.output);
    assert.ok(onDevice.includes('L end'), `the interpreter ran to the end:\n${run.output.slice(-2000)}`);
    assert.equal(onDevice, [...inNode, 'L end'], 'the same log lines and bytes as in Node');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }

  const slot = slotMs(data.market);
  const published = inNode
    .filter((l) => l.startsWith('P '))
    .map((l) => {
      const [, at, topic, bytes] = l.split(' ');
      return { at: Number(at), topic, packet: new Uint8Array(Buffer.from(bytes, 'hex')) };
    });
  assert.ok(inNode.includes('L mix: sent offer for interval 100 round 0'), inNode.join('\n'));
  assert.ok(inNode.includes('L mix: forwarded 3 in 100.0.1'), inNode.join('\n'));
  const sent = published.filter((p) => p.at < slot);
  assert.is(sent.length, 1, 'one packet in slot 0');
  assert.ok(sent[0].at >= 0 && sent[0].at < slot / 2, `sent in the first half of slot 0 (at ${sent[0].at} ms)`);
  // The offer through the two relays the node chose, to the exit.
  const first = meters.find((m) => sent[0].topic === relayInboxTopic(hex(m.id)))!;
  assert.ok(first && first !== meters[0], 'to another meter');
  const atFirst = peel(first, sent[0].packet);
  const second = meters.find((m) => hex(m.id) === hex(atFirst.nextRelayId!))!;
  assert.ok(second && second !== meters[0] && second !== first, 'then a third meter');
  const atSecond = peel(second, atFirst.packet!);
  assert.is(hex(atSecond.nextRelayId!), hex(exit.id));
  const atExit = peel(exit, atSecond.packet!);
  assert.is(atExit.payloadType, PAYLOAD_OFFER);
  assert.is(hex(atExit.payload!), data.offer);
  // The three packets it relayed, at slot 1, each to its next relay, where they peel.
  const relayed = published.filter((p) => p.at === slot);
  assert.is(relayed.length, 3);
  for (const { next } of inbound) {
    const out = relayed.find((p) => p.topic === relayInboxTopic(hex(next.id)));
    assert.ok(out, `a packet for ${hex(next.id)}`);
    assert.is(hex(peel(next, out!.packet).nextRelayId!), hex(exit.id));
  }
  assert.not.ok(
    published.some((p) => p.topic === MIX_EXIT_TOPIC),
    'the exit is reached only by second relays',
  );
});

test.run();
