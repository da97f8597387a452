// The SE driver inside an emulated meter: a small firmware, built like the real one, reaches the
// board's ATECC608 model only through secureElementBus() (software I2C on the board's pins), provisions it and
// prints what it got. The host then checks the signature and the ECDH result with @noble/curves
// and node:crypto — the private keys never left the chip model.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { buildFirmware, REPO_ROOT } from '../../host-tools/build/build-firmware.ts';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

function firmwareSource(peerPublicHex: string, digestHex: string): string {
  const src = (p: string) => JSON.stringify(path.join(REPO_ROOT, 'firmware/src', p));
  return `
import { secureElementBus } from ${src('platform/i2c.ts')};
import { log } from ${src('platform/console.ts')};
import { SecureElement } from ${src('se/secure-element.ts')};
import { provisioningConfig } from ${src('protocol/se-config-zone.ts')};
import { IDENTITY_SLOT, MIX_SLOT, READING_KEY_SLOTS, ROTATION_COUNTER } from ${src('protocol/slot-map.ts')};

function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return s;
}

function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

function run(): void {
  const se = new SecureElement(secureElementBus());
  log('se: info ' + toHex(se.info()));
  const config = provisioningConfig(se.readConfigZone());
  se.writeConfigZone(config);
  se.lockConfig(config);
  log('se: random ' + toHex(se.random()));
  log('se: identity ' + toHex(se.genKey(IDENTITY_SLOT)));
  log('se: mix ' + toHex(se.genKey(MIX_SLOT)));
  log('se: reading ' + toHex(se.genKey(READING_KEY_SLOTS[0])));
  se.lockData();
  log('se: signature ' + toHex(se.sign(READING_KEY_SLOTS[0], fromHex('${digestHex}'))));
  log('se: ecdh ' + toHex(se.ecdh(MIX_SLOT, fromHex('${peerPublicHex}'))));
  log('se: counter ' + se.counter(ROTATION_COUNTER, true));
  log('se: done');
}

try {
  run();
} catch (e) {
  log('se: error ' + (e as Error).message);
}
`;
}

/** Polls (real time) until cond holds; a bound against hangs, not a timing assertion. */
function until(cond: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let tries = 0;
    const poll = () => {
      if (cond()) return resolve();
      if (++tries > 5000) return reject(new Error(`gave up waiting for ${what}`));
      setTimeout(poll, 2);
    };
    poll();
  });
}

test('firmware on the emulated meter provisions the ATECC608 through secureElementBus(); the host verifies its signature and ECDH', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-se-hil-'));
  const clock = new SimClock({ speed: 1000 });
  const definition = loadBoardDefinition('esp32-meter');
  const board = new Board({ definition, clock, name: 'se-hil' });
  try {
    const peer = p256.keygen();
    const peerPublic = p256.getPublicKey(peer.secretKey, false);
    const entry = path.join(work, 'se-entry.ts');
    const message = 'veilgrid: a reading signed inside the emulated meter';
    const digest = new Uint8Array(createHash('sha256').update(message).digest());
    fs.writeFileSync(entry, firmwareSource(hex(peerPublic.subarray(1)), hex(digest)));
    const { outFile, violations } = await buildFirmware({
      board: 'esp32-meter',
      entry,
      outFile: path.join(work, 'se.js'),
    });
    assert.equal(violations, []);
    board.storage.write('.bootcde', fs.readFileSync(outFile, 'latin1'));
    const lines: string[] = [];
    let text = '';
    board.onOutput((t) => {
      text += t;
      const parts = text.split('\n');
      text = parts.pop() ?? '';
      for (const line of parts) if (line.startsWith('se: ')) lines.push(line.slice(4));
    });
    board.powerOn();
    await until(
      () => lines.some((l) => l === 'done' || l.startsWith('error')),
      'the firmware to finish with the secure element',
    );
    const got = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]));
    assert.is(got.error, undefined, got.error);

    // Software I2C reaches the chip only on the board definition's pins; the ESP32's I2C1 stays unused.
    assert.is(board.i2c1.configured, undefined, 'I2C1 not set up');
    assert.is(got.info, '00006003', 'ATECC608B revision');
    assert.is(got.random.length, 64);
    assert.is(got.counter, '1');
    const readingKey = unhex(got.reading);
    const signature = unhex(got.signature);
    assert.is(unhex(got.identity).length, 64);
    assert.is(readingKey.length, 64);
    assert.ok(
      p256.verify(signature, digest, Uint8Array.of(4, ...readingKey), { prehash: false, lowS: false }),
      "@noble/curves verifies the reading key's signature",
    );
    const key = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: Buffer.from(readingKey.subarray(0, 32)).toString('base64url'),
        y: Buffer.from(readingKey.subarray(32)).toString('base64url'),
      },
      format: 'jwk',
    });
    assert.ok(
      nodeVerify('sha256', Buffer.from(message), { key, dsaEncoding: 'ieee-p1363' }, signature),
      'node:crypto verifies it over the message',
    );
    const mix = unhex(got.mix);
    assert.is(
      got.ecdh,
      hex(p256.getSharedSecret(peer.secretKey, Uint8Array.of(4, ...mix)).subarray(1, 33)),
      'ECDH in the chip = ECDH on the host',
    );
  } finally {
    board.close();
    clock.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test.run();
