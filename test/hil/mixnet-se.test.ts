// Onion packets sealed with the espruino-linux board's own secure element, on Espruino 2v29's interpreter: the
// ATECC608 model behind the board's I2C executes in real time, its watchdog puts it to sleep 1.3 s after a wake
// and TempKey goes with it, and every transfer the chip does not acknowledge costs the interpreter an exception.
// mixnet.test.ts answers the SE from stand-ins; on the board, meters lost TempKey between a hop's GenKey and
// its ECDH (status 0x0f) and sent no packet. Here a packet after a reading's burst, and one with the meter held
// up 1.4 s between a hop's GenKey and ECDH: the driver sees the chip slept, the sender makes that hop again, and
// both packets peel with the relays' and the exit's keys in node:crypto down to the offer.
import { createECDH, randomBytes, type ECDH } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { espruinoInterpreterPath } from '../../boards/espruino-linux/interpreter-path.ts';
import { LinuxBoard } from '../../boards/espruino-linux/linux-board.ts';
import { kidOf } from '../../firmware/src/protocol/certificate.ts';
import { PAYLOAD_OFFER, peelOnionPacket } from '../../firmware/src/protocol/onion-packet.ts';
import { buildFirmware, REPO_ROOT } from '../../host-tools/build/build-firmware.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';

const hex = (b: Uint8Array | Buffer) => Buffer.from(b).toString('hex');

function relay(): { id: Uint8Array; key: ECDH } {
  const key = createECDH('prime256v1');
  key.generateKeys();
  return { id: kidOf(nodeSha256, new Uint8Array(key.getPublicKey())), key };
}

function peel(key: ECDH, packet: Uint8Array) {
  const shared = key.computeSecret(Buffer.concat([Buffer.from([4]), packet.subarray(1, 65)]));
  return peelOnionPacket(nodeCryptoPrimitives, WINDOW, new Uint8Array(shared), packet);
}

/**
 * The firmware the board runs (written to the work folder, as test/hil/se.test.ts does: it names Espruino's
 * globals, which the host's type check does not know): the board's own SE provisioned, then a packet sealed as
 * a mix node's sender does (onion-sender.ts) right after a reading's burst, and one with the meter held up past
 * the chip's watchdog between a hop's GenKey and its ECDH. VG_MIX_SE is the data the test puts in front.
 */
/** The offer window the packets travel in. */
const WINDOW = 29944038;

function firmwareSource(): string {
  const src = (p: string) => JSON.stringify(path.join(REPO_ROOT, 'firmware/src', p));
  return `
import { sealOnion, type OnionSecureElement } from ${src('mixnet/onion-sender.ts')};
import { nativeAes128Ctr, nativeSha256 } from ${src('platform/crypto.ts')};
import { deviceBusClock } from ${src('platform/device-clock.ts')};
import { secureElementBus } from ${src('platform/i2c.ts')};
import { bytesToHex, hexToBytes } from ${src('protocol/hex.ts')};
import { PAYLOAD_OFFER } from ${src('protocol/onion-packet.ts')};
import type { RelayRecord } from ${src('protocol/relay-directory.ts')};
import { provisioningConfig } from ${src('protocol/se-config-zone.ts')};
import { IDENTITY_SLOT, MIX_SLOT, READING_KEY_SLOTS } from ${src('protocol/slot-map.ts')};
import { SecureElement } from ${src('se/secure-element.ts')};
declare const VG_MIX_SE: { relays: string[][]; exit: string[]; offer: string };

/** The chip's watchdog is 1.3 s from a wake: a meter busy this long between GenKey and ECDH loses TempKey. */
const STALL_MS = 1400;
/** The offer window the packets are for. */
const WINDOW = ${WINDOW};

function record(pair: string[]): RelayRecord {
  return { relayId: hexToBytes(pair[0]) as Uint8Array, mixKey: hexToBytes(pair[1]) as Uint8Array };
}

function run(): void {
  const clock = deviceBusClock();
  const se = new SecureElement(secureElementBus(), { clock: clock });
  const config = provisioningConfig(se.readConfigZone());
  se.writeConfigZone(config);
  se.lockConfig(config);
  se.genKey(IDENTITY_SLOT);
  se.genKey(MIX_SLOT);
  se.genKey(READING_KEY_SLOTS[0]);
  se.lockData();
  const primitives = { sha256: nativeSha256, aes128Ctr: nativeAes128Ctr };
  const relays = [record(VG_MIX_SE.relays[0]), record(VG_MIX_SE.relays[1])];
  const exit = record(VG_MIX_SE.exit);
  const offer = hexToBytes(VG_MIX_SE.offer) as Uint8Array;
  // As right after a reading: Random, Nonce, Sign, then the seal's GenKey and ECDH, in one wake.
  se.sign(READING_KEY_SLOTS[0], nativeSha256(offer));
  se.genTempKey();
  se.ecdh('tempkey', exit.mixKey);
  console.log('P ' + bytesToHex(sealOnion(se, primitives, WINDOW, relays, exit, PAYLOAD_OFFER, offer)));
  let stalled = false;
  const heldUp: OnionSecureElement = {
    genTempKey: function () {
      const key = se.genTempKey();
      if (!stalled) clock.waitMs(STALL_MS);
      stalled = true;
      return key;
    },
    ecdh: function (source, peer) {
      return se.ecdh(source, peer);
    },
  };
  const before = se.stats.commands;
  console.log('S ' + bytesToHex(sealOnion(heldUp, primitives, WINDOW, relays, exit, PAYLOAD_OFFER, offer)));
  console.log('C ' + (se.stats.commands - before));
}

try {
  run();
} catch (e) {
  console.log('E ' + ((e as Error).message || e));
}
console.log('L end');
`;
}

test('onion packets sealed with the board SE in real time, also when TempKey is lost to the watchdog', async () => {
  const binary = espruinoInterpreterPath();
  if (!binary) {
    console.log('  (no Espruino interpreter: set VEILGRID_ESPRUINO_BIN or put it at ../shared/espruino/; skipped)');
    return;
  }
  const relays = [relay(), relay()];
  const exit = relay();
  const pair = (r: ReturnType<typeof relay>) => [hex(r.id), hex(r.key.getPublicKey().subarray(1))];
  const data = { relays: relays.map(pair), exit: pair(exit), offer: hex(randomBytes(177)) };
  const work = mkdtempSync(path.join(tmpdir(), 'veilgrid-mixnet-se-'));
  let output = '';
  const board = await LinuxBoard.create({
    definition: loadBoardDefinition('esp32-meter'),
    dir: path.join(work, 'board'),
  });
  try {
    const entry = path.join(work, 'mixnet-se-entry.ts');
    writeFileSync(entry, firmwareSource());
    const { outFile } = await buildFirmware({
      board: 'esp32-meter',
      entry,
      outFile: path.join(work, 'mixnet-se.js'),
    });
    const bundle = `var VG_MIX_SE=${JSON.stringify(data)};\n${readFileSync(outFile, 'latin1')}`;
    board.withStorage((storage) => storage.write('.bootcde', bundle));
    const ended = new Promise<void>((resolve) =>
      board.onOutput((text) => {
        output += text;
        if (output.includes('L end')) resolve();
      }),
    );
    await board.powerOn();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise((resolve) => (timer = setTimeout(resolve, 60_000)))]);
    clearTimeout(timer);
  } finally {
    await board.close();
    rmSync(work, { recursive: true, force: true });
  }
  // Console lines, less the erase-line escape the interpreter writes before output that follows its prompt.
  const lines = output.split(/[\r\n]+/).map((l) => l.replace(/^>?\x1b\[J/, ''));
  const line = (tag: string) => lines.find((l) => l.startsWith(`${tag} `))?.slice(2);
  assert.ok(output.includes('L end'), `the interpreter ran to the end:\n${output.slice(-2000)}`);
  assert.not.ok(line('E'), `no error on the board: ${line('E')}`);
  assert.ok(line('P') && line('S'), `both packets printed:\n${output.slice(-3000)}`);
  for (const tag of ['P', 'S']) {
    const packet = new Uint8Array(Buffer.from(line(tag)!, 'hex'));
    const atFirst = peel(relays[0].key, packet);
    assert.is(hex(atFirst.nextRelayId!), hex(relays[1].id), `${tag}: the first relay forwards to the second`);
    const atSecond = peel(relays[1].key, atFirst.packet!);
    assert.is(hex(atSecond.nextRelayId!), hex(exit.id), `${tag}: the second relay forwards to the exit`);
    const atExit = peel(exit.key, atSecond.packet!);
    assert.is(atExit.payloadType, PAYLOAD_OFFER);
    assert.is(hex(atExit.payload!), data.offer, `${tag}: the exit finds the offer`);
  }
  // The held-up hop: its GenKey made again, no ECDH sent to a chip that had slept (6 commands and 1 more).
  assert.is(line('C'), '7', 'the commands of the held-up packet');
});

test.run();
