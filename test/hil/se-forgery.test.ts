// The secure-element half of the console attack (issue 8 item 2), done for real against a running,
// provisioned emulated meter: an attacker who can run code on the board (the console password leaked,
// or the board is in their hands) drives the ATECC608 over I2C1 with hand-written commands, as ten
// lines at the console would, to certify a key of their own under the meter's identity key.
//   1. Nonce + Sign external with the identity key (slot 0) over the digest of a forged key
//      certificate: the chip refuses (slot 0 signs internal messages only).
//   2. The only signature slot 0 gives: the chip's attestation of a key it holds (Nonce with the forged
//      certificate's digest, GenKey making a key in the slot of the forged rotation with its digest in
//      TempKey, Sign internal). Put on a key
//      certificate for the attacker's key and published to the DSO as the meter, it is refused, and a
//      reading signed with the attacker's key is refused too.
// The genuine meter's readings keep arriving and verifying throughout.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import {
  ALG_ATECC608_ATTESTED,
  encodeSign1,
  sign1ToBeSigned,
  signerProtectedHeader,
} from '../../firmware/src/protocol/cose.ts';
import { CborMap } from '../../firmware/src/protocol/cbor.ts';
import { encodeKeyCertificate, kidOf } from '../../firmware/src/protocol/certificate.ts';
import { readingSlotForRotation } from '../../firmware/src/protocol/slot-map.ts';
import { keyCertificateTopic, readingTopic } from '../../firmware/src/protocol/topics.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { startSigningDso } from '../support/signing-dso.ts';
import { keyPair, reading, sealedReading } from '../unit/verifier-fixtures.ts';

const INTERVAL = 60;
const METER = 'meter-victim';

/** Polls (real time) until cond holds; a bound against hangs, not a timing assertion. */
async function until(cond: () => boolean, what: string, tries = 3000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/**
 * The attacker's code, run on the board: ATECC608 commands framed by hand (count, opcode, params,
 * data, CRC-16 poly 0x8005 bit-reflected, as the data sheet gives it) over I2C1, each response read
 * after the command's maximum execution time. Returns every response as hex.
 */
function attackerProgram(forgedDigestHex: string, forgedNonceHex: string, slot: number): string {
  return `(function(){
function crc(b){var c=0;for(var i=0;i<b.length;i++){for(var s=1;s<256;s<<=1){var d=(b[i]&s)?1:0;var x=(c>>15)&1;c=(c<<1)&0xffff;if(d!==x)c^=0x8005;}}return [c&255,c>>8];}
function bytes(h){var a=[];for(var i=0;i<h.length;i+=2)a.push(parseInt(h.substr(i,2),16));return a;}
function hex(u){var s='';for(var i=0;i<u.length;i++)s+=(u[i]<16?'0':'')+u[i].toString(16);return s;}
function pause(ms){var t=getTime()+ms/1000;while(getTime()<t);}
function cmd(op,p1,p2,data,n,ms){var p=[7+data.length,op,p1,p2&255,p2>>8].concat(data);I2C1.writeTo(0x60,[3].concat(p,crc(p)));pause(ms);return hex(I2C1.readFrom(0x60,n));}
try{I2C1.writeTo(0x60,[2]);}catch(e){}
try{I2C1.writeTo(0,0);}catch(e){}
pause(2);
var out={wake:hex(I2C1.readFrom(0x60,4))};
out.nonceDigest=cmd(0x16,0x43,0,bytes('${forgedDigestHex}'),4,20);
out.signExternal=cmd(0x41,0xa0,0,[],4,120);
out.nonceTempKey=cmd(0x16,0x03,0,bytes('${forgedNonceHex}'),4,20);
out.genKeyDigest=cmd(0x40,0x0c,${slot},[],67,120);
out.signInternal=cmd(0x41,0x00,0,[],67,120);
I2C1.writeTo(0x60,[2]);
return JSON.stringify(out);
})()`;
}

test("driving the SE over I2C cannot make the identity key certify an attacker's key", async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-forgery-'));
  const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(work, 'esp32-meter.js') });
  const definition = loadBoardDefinition('esp32-meter');
  const start = Math.ceil(1_790_000_000 / INTERVAL) * INTERVAL + 5;
  const clock = new SimClock({ speed: 20, startEpochSeconds: start });
  const dso = await startSigningDso(work);
  const { store, registry, rejections } = dso;
  const board = new Board({ definition, clock, name: METER, flashPath: path.join(work, 'meter.flash') });
  const attacker = await mqtt.connectAsync(dso.broker.url, { clientId: 'attacker', reconnectPeriod: 0 });
  try {
    board.storage.write('.bootcde', fs.readFileSync(outFile, 'latin1'));
    board.powerOn();
    const provisioned = dso.provision(board, definition, METER, { intervalSeconds: INTERVAL, rotationSeconds: 86_400 });
    await until(
      () => store.readings(METER).length >= 2,
      `two verified readings from the genuine meter; rejections: ${rejections.join('\n')}`,
    );
    const genuineKeys = registry.keyCertificates(METER).length;
    assert.ok(genuineKeys >= 1);

    // The attacker's key and the certificate they want: rotation one past the meter's (within the
    // DSO's bounds), attested through the slot the DSO expects for that rotation.
    const attackerKey = keyPair();
    const rotation = registry.keyCertificates(METER).at(-1)!.rotation + 1;
    const slot = readingSlotForRotation(rotation);
    const firstInterval = Math.floor(clock.now() / INTERVAL);
    const payload = encodeKeyCertificate({
      meterId: METER,
      publicKey: attackerKey.publicKey,
      validFromInterval: firstInterval,
      validToInterval: firstInterval + 1000,
      rotation,
    });
    const identityKey = new Uint8Array(Buffer.from(provisioned.identityKey, 'hex'));
    const es256Digest = nodeSha256(sign1ToBeSigned(signerProtectedHeader(-7, kidOf(nodeSha256, identityKey)), payload));
    const attestedHeader = signerProtectedHeader(ALG_ATECC608_ATTESTED, kidOf(nodeSha256, identityKey));
    const nonce = nodeSha256(sign1ToBeSigned(attestedHeader, payload));

    const answer = board.evaluate(
      attackerProgram(Buffer.from(es256Digest).toString('hex'), Buffer.from(nonce).toString('hex'), slot),
    );
    assert.is(answer.error, undefined, `the attacker's program ran: ${answer.error}`);
    const out = JSON.parse(answer.value as string) as Record<string, string>;
    assert.is(out.wake.slice(0, 4), '0411', 'the chip woke');
    assert.is(out.nonceDigest.slice(0, 4), '0400', 'Nonce into the message digest buffer accepted');
    assert.is(
      out.signExternal.slice(0, 4),
      '040f',
      'Sign external by the identity key: execution error, refused by the slot configuration',
    );
    assert.is(out.nonceTempKey.slice(0, 4), '0400');
    assert.is(
      out.genKeyDigest.slice(0, 2),
      '43',
      `GenKey makes a new key in slot ${slot} and hashes it into TempKey: ${JSON.stringify(out)}`,
    );
    assert.is(out.signInternal.slice(0, 2), '43', 'Sign internal: the chip attests the key it holds');

    // The attestation put on the forged certificate, published as the meter would publish it.
    const signature = new Uint8Array(Buffer.from(out.signInternal.slice(2, 130), 'hex'));
    const forged = encodeSign1({
      protectedHeader: attestedHeader,
      unprotectedHeader: new CborMap([]),
      payload,
      signature,
    });
    await attacker.publishAsync(keyCertificateTopic(METER), Buffer.from(forged), { qos: 1 });
    const forgedReading = sealedReading(dso.dsoPublicKey, attackerKey, reading(METER, 900_000, firstInterval - 1));
    await attacker.publishAsync(readingTopic(METER), Buffer.from(forgedReading), { qos: 1 });
    await until(() => rejections.length >= 2, 'the DSO to refuse the forged certificate and reading');
    assert.match(rejections.join('\n'), /not the secure element's attestation/);
    assert.is(registry.keyCertificates(METER).length, genuineKeys, 'the forged certificate was not stored');
    assert.is(registry.keyCertificateByKid(METER, attackerKey.kid), undefined);
    assert.is(store.get(METER, 900_000), undefined, 'the forged reading was not stored');

    // The genuine meter carries on: its next reading verifies.
    const before = store.readings(METER).length;
    await until(() => store.readings(METER).length > before, "the genuine meter's next reading");
  } finally {
    await attacker.endAsync();
    board.close();
    clock.close();
    await dso.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test.run();
