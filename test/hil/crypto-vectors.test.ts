// The HMAC/HKDF vector suite inside the emulated board: the firmware build of
// test/fixtures/crypto/vectors-entry.ts runs hmac.ts/hkdf.ts over the board's crypto.SHA256 and seals a
// plaintext with its crypto.AES (CTR), which the host opens with node:crypto and noble; and it opens a
// key certificate signed on the host, hashing the same Sig_structure bytes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { p256 } from '@noble/curves/nist.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { ALG_ATECC608_ATTESTED } from '../../firmware/src/protocol/cose.ts';
import { encodeKeyCertificate, kidOf, openSignedCertificate } from '../../firmware/src/protocol/certificate.ts';
import { attestationMessage } from '../../firmware/src/protocol/key-attestation.ts';
import { readingSlotForRotation } from '../../firmware/src/protocol/slot-map.ts';
import { attestKeyCertificate } from '../unit/verifier-fixtures.ts';
import { decodeEnvelope, openEnvelope } from '../../firmware/src/protocol/sealed-reading.ts';
import { RFC4231_HMAC_SHA256, RFC5869_HKDF_SHA256, bytesToHex } from '../fixtures/crypto/rfc-vectors.ts';

const ENTRY = path.resolve('test/fixtures/crypto/vectors-entry.ts');

test('RFC 4231 and RFC 5869 vectors pass on the board, its sealed envelope opens on the host, it reads a signed certificate', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'veilgrid-crypto-vectors-'));
  const clock = new SimClock({ speed: 1000, startEpochSeconds: 1_800_000_000 });
  const board = new Board({ definition: loadBoardDefinition('esp32-meter'), clock, name: 'crypto-vectors' });
  try {
    const { outFile } = await buildFirmware({
      board: 'esp32-meter',
      entry: ENTRY,
      outFile: path.join(work, 'crypto-vectors.js'),
    });

    // The meter's side of the ECDH is an input here (the SE computes it on a real meter).
    const dsoSecret = p256.utils.randomSecretKey();
    const ephemeralSecret = p256.utils.randomSecretKey();
    const ephemeralPublic = p256.getPublicKey(ephemeralSecret, false);
    const shared = p256.getSharedSecret(ephemeralSecret, p256.getPublicKey(dsoSecret, false)).slice(1);
    const plaintext = new Uint8Array(100).map((_, i) => (i * 37 + 11) & 0xff);
    board.storage.write(
      'vgtest.seal',
      JSON.stringify({
        shared: bytesToHex(shared),
        ephemeral: bytesToHex(ephemeralPublic),
        plaintext: bytesToHex(plaintext),
      }),
    );
    const identitySecret = p256.utils.randomSecretKey();
    const identityPublic = p256.getPublicKey(identitySecret, false);
    const keyCert = {
      meterId: 'meter-hil',
      publicKey: p256.getPublicKey(p256.utils.randomSecretKey(), false),
      validFromInterval: 1_988_000,
      validToInterval: 1_988_096,
      rotation: 7,
    };
    const identity = {
      publicKey: identityPublic,
      signDigest: (d: Uint8Array) => p256.sign(d, identitySecret, { prehash: false }),
    };
    const signedCert = attestKeyCertificate(
      identity,
      encodeKeyCertificate(keyCert),
      keyCert.rotation,
      keyCert.publicKey,
    );
    board.storage.write('vgtest.cert', JSON.stringify({ signed: bytesToHex(signedCert) }));
    board.storage.write('.bootcde', readFileSync(outFile, 'latin1'));

    let output = '';
    board.onOutput((text) => {
      output += text;
    });
    board.powerOn();
    assert.ok(output.includes('DONE'), `the firmware ran to the end; it printed:\n${output}`);
    const lines = output.split(/\r?\n/);
    const line = (prefix: string) => {
      const found = lines.find((l) => l.startsWith(prefix + ' '));
      if (!found) throw new Error(`no "${prefix}" line in the board output:\n${output}`);
      return found.slice(prefix.length + 1).split(' ');
    };

    RFC4231_HMAC_SHA256.forEach((v, i) => {
      const [mac] = line(`HMAC ${i}`);
      assert.is(mac.length, 64, `${v.name}: a full 32-byte tag`);
      assert.is(mac.slice(0, v.mac.length), v.mac, v.name); // case 5 compares the truncated tag
      assert.is(
        mac,
        bytesToHex(hmac(nobleSha256, Buffer.from(v.key, 'hex'), Buffer.from(v.data, 'hex'))),
        `${v.name} (noble)`,
      );
    });
    RFC5869_HKDF_SHA256.forEach((v, i) => {
      const [prk, okm] = line(`HKDF ${i}`);
      assert.is(prk, v.prk, `${v.name} PRK`);
      assert.is(okm, v.okm, `${v.name} OKM`);
    });

    const [kid, meterId, validFrom, rotation, digest] = line('CERT');
    assert.is(kid, bytesToHex(kidOf(nodeSha256, identityPublic)));
    assert.equal([meterId, Number(validFrom), Number(rotation)], ['meter-hil', 1_988_000, 7]);
    const opened = openSignedCertificate(signedCert, ALG_ATECC608_ATTESTED);
    const hostMessage = attestationMessage(
      nodeSha256,
      nodeSha256(opened.toBeSigned),
      readingSlotForRotation(keyCert.rotation),
      keyCert.publicKey,
    );
    assert.is(digest, bytesToHex(nodeSha256(hostMessage)), 'the board builds the same attestation message as the host');
    assert.ok(
      p256.verify(opened.signature, nodeSha256(hostMessage), identityPublic, { prehash: false, lowS: false }),
      'and the identity key signed it',
    );

    const envelope = new Uint8Array(Buffer.from(line('SEAL')[0], 'hex'));
    const parts = decodeEnvelope(envelope);
    assert.equal(parts.ephemeralPublicKey, ephemeralPublic);
    const dsoShared = p256.getSharedSecret(dsoSecret, parts.ephemeralPublicKey).slice(1);
    assert.equal(
      openEnvelope(nodeCryptoPrimitives, dsoShared, envelope),
      plaintext,
      'the host opens what the board sealed',
    );
  } finally {
    board.close();
    clock.close();
    rmSync(work, { recursive: true, force: true });
  }
});

test.run();
