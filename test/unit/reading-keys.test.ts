// Reading-key rotation (firmware/src/keys/reading-keys.ts) and signed, sealed readings
// (firmware/src/readings/signed-reading.ts) against the emulator's ATECC608 model on an emulated I2C
// bus and the records ring on emulated flash (as main.ts keeps them): slots alternate, the rotation number comes from the SE
// counter, certificates are signed by the identity key and published before first use, state
// survives power cuts at every byte of a rotation's record, and the DSO verifier accepts the readings.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { p256 } from '@noble/curves/nist.js';
import type { SimClock } from '../../boards/emulator/clock.ts';
import { type Flash, PowerLoss } from '../../boards/emulator/flash.ts';
import { NamedRecords } from '../../firmware/src/persist/named-records.ts';
import { emulatedPartition } from '../support/flash-rings.ts';
import { ALG_ATECC608_ATTESTED, decodeSign1, sign1ToBeSigned } from '../../firmware/src/protocol/cose.ts';
import { decodeKeyCertificate, kidOf, openSignedCertificate } from '../../firmware/src/protocol/certificate.ts';
import { ReadingKeys, keyRecordName } from '../../firmware/src/keys/reading-keys.ts';
import { attestationMessage } from '../../firmware/src/protocol/key-attestation.ts';
import {
  MIX_SLOT,
  READING_KEY_SLOTS,
  ROTATION_COUNTER,
  readingSlotForRotation,
} from '../../firmware/src/protocol/slot-map.ts';
import { decodeReading, type Reading } from '../../firmware/src/protocol/reading.ts';
import { decodeEnvelope, openEnvelope } from '../../firmware/src/protocol/sealed-reading.ts';
import { signAndSealReading } from '../../firmware/src/readings/signed-reading.ts';
import { ReadingPublisher } from '../../firmware/src/readings/reading-publisher.ts';
import { notedReadings } from '../../firmware/src/readings/sealed-reading-note.ts';
import { readingTopic } from '../../firmware/src/protocol/topics.ts';
import type { SecureElement } from '../../firmware/src/se/secure-element.ts';
import { nodeCryptoPrimitives, nodeSha256, nodeVerifyEs256 } from '../../host-tools/crypto/node-primitives.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { verifySignedReading } from '../../host-tools/dso/verifier.ts';
import { issueDeviceCertificate } from '../../host-tools/operator/operator-key.ts';
import { makeOperator } from './verifier-fixtures.ts';
import { provisionedSecureElement } from '../support/provisioned-se.ts';

const METER = 'meter-keys-1';
const INTERVAL_SECONDS = 900;
const ROTATION_SECONDS = 86_400; // 96 intervals

interface Rig {
  clock: SimClock;
  se: SecureElement;
  flash: Flash;
  /** The key records as a boot opens them (a new NamedRecords over the ring on the flash). */
  records(): NamedRecords;
  identity: Uint8Array;
  published: Uint8Array[];
  logs: string[];
  keys(): ReadingKeys;
  close(): void;
}

/** A provisioned SE (config locked, identity and mix keys, data locked) and empty Storage. */
function rig(): Rig {
  const { clock, se, identityKey: identity } = provisionedSecureElement();
  const partition = emulatedPartition();
  const flash = partition.flash;
  const records = () => new NamedRecords(partition.recordsRing());
  const published: Uint8Array[] = [];
  const logs: string[] = [];
  return {
    clock,
    se,
    flash,
    records,
    identity,
    published,
    logs,
    keys: () =>
      new ReadingKeys({
        se,
        storage: records(),
        sha256: nodeSha256,
        meterId: METER,
        intervalSeconds: INTERVAL_SECONDS,
        rotationSeconds: ROTATION_SECONDS,
        publishCertificate: (c) => published.push(c),
        log: (m) => logs.push(m),
      }),
    close: () => clock.close(),
  };
}

/** The key certificate's fields, after checking the chip attested its key with the identity key. */
function checkedCertificate(bytes: Uint8Array, identity: Uint8Array) {
  const opened = openSignedCertificate(bytes, ALG_ATECC608_ATTESTED);
  assert.equal(opened.kid, kidOf(nodeSha256, identity), 'kid names the identity key');
  const cert = decodeKeyCertificate(opened.payload);
  const message = attestationMessage(
    nodeSha256,
    nodeSha256(opened.toBeSigned),
    readingSlotForRotation(cert.rotation),
    cert.publicKey,
  );
  assert.ok(nodeVerifyEs256(identity, message, opened.signature), 'attested by the identity key in slot 0');
  return cert;
}

function reading(seq: number, interval: number): Reading {
  return {
    meterId: METER,
    interval,
    importWh: 120 + seq,
    exportWh: 3,
    importTotalWh: 5000 + seq * 130,
    exportTotalWh: 40,
    seq,
    flags: 0,
  };
}

const rotation = suite('reading keys');

rotation(
  'first key: counter 0 -> rotation 1 in the slot for rotation 1, certified by the identity key, published before use',
  () => {
    const r = rig();
    const keys = r.keys();
    assert.is(keys.restore(), null, 'no key before the first rotation');
    assert.is(r.published.length, 0);
    const key = keys.keyFor(1000);
    assert.is(key.rotation, 1);
    assert.is(key.slot, READING_KEY_SLOTS[1]);
    assert.is(r.se.counter(ROTATION_COUNTER, false), 1);
    assert.is(r.published.length, 1, 'certificate published');
    const cert = checkedCertificate(r.published[0], r.identity);
    assert.equal(cert, {
      meterId: METER,
      publicKey: key.publicKey,
      validFromInterval: 1000,
      validToInterval: 1000 + 96 - 1,
      rotation: 1,
    });
    assert.equal(key.kid, kidOf(nodeSha256, key.publicKey));
    assert.is(keys.keyFor(1095), key, 'the same key up to validTo');
    assert.is(r.published.length, 1);
    r.close();
  },
);

rotation(
  'slots alternate; past validTo a new key starts at the reading interval; the previous key covers earlier intervals',
  () => {
    const r = rig();
    const keys = r.keys();
    keys.restore();
    const k1 = keys.keyFor(1000);
    const k2 = keys.keyFor(1096);
    assert.is(k2.rotation, 2);
    assert.is.not(k2.slot, k1.slot, 'the other slot');
    assert.is(k2.validFromInterval, 1096);
    assert.is(keys.previous(), k1);
    const k3 = keys.keyFor(1500); // the meter was off for days: the next key starts where readings resume
    assert.is(k3.rotation, 3);
    assert.is(k3.slot, k1.slot);
    assert.is(k3.validFromInterval, 1500);
    assert.is(keys.keyFor(1190), k2, "a late reading inside the previous key's validity is signed by the previous key");
    const forced = keys.rotate(1510);
    assert.is(forced.rotation, 4);
    assert.is(keys.keyFor(1509), k3, 'after a forced rotation the previous key still covers the interval before it');
    assert.is(r.published.length, 4);
    assert.equal(
      r.published.map((c) => checkedCertificate(c, r.identity).rotation),
      [1, 2, 3, 4],
    );
    r.close();
  },
);

rotation(
  'restore after a reboot: the current and previous keys come back and the current certificate is queued again',
  () => {
    const r = rig();
    const first = r.keys();
    first.restore();
    first.keyFor(1000);
    const k2 = first.keyFor(1096);
    const again = r.keys();
    const restored = again.restore();
    assert.ok(restored);
    assert.is(restored!.rotation, 2);
    assert.equal(restored!.publicKey, k2.publicKey);
    assert.is(restored!.slot, k2.slot);
    assert.is(again.previous()!.rotation, 1);
    assert.equal(
      r.published[r.published.length - 1],
      k2.certificate,
      'republished at boot (retained; the DSO keeps it once)',
    );
    assert.is(again.keyFor(1100).rotation, 2, 'no rotation at boot while the key is valid');
    r.close();
  },
);

rotation("both key records fit one NamedRecords snapshot in a 1 KB flash page (the espruino-linux board's)", () => {
  const r = rig();
  const keys = r.keys();
  keys.restore();
  keys.keyFor(1000);
  keys.keyFor(1000 + 96);
  const records = r.records();
  const values = [keyRecordName(1), keyRecordName(2)].map((name) => records.read(name)!);
  // snapshot: 1 mark byte, per name 1 + name + 2 + value; ring record: 10-byte header + 4-byte CRC
  const snapshotBytes = 1 + values.reduce((sum, v) => sum + 1 + 'vg.rk0'.length + 2 + v.length, 0);
  assert.ok(snapshotBytes + 14 <= 1024, `a snapshot of both takes ${snapshotBytes + 14} bytes`);
  r.close();
});

rotation(
  'a power cut at any byte of a rotation record: the previous key survives, and no rotation number is reused',
  () => {
    const r = rig();
    const keys = r.keys();
    keys.restore();
    keys.keyFor(1000);
    const before = r.flash.bytesProgrammed;
    keys.keyFor(1096);
    const recordBytes = r.flash.bytesProgrammed - before;
    assert.ok(recordBytes > 200, `a record write programs ${recordBytes} bytes`);
    let interval = 1192;
    const step = Math.max(1, Math.floor(recordBytes / 23));
    for (let cut = 1; cut <= recordBytes + step; cut += step) {
      const current = r.keys();
      const was = current.restore()!;
      r.flash.cutPowerAfterBytes(cut);
      let lost = false;
      try {
        current.keyFor(interval);
      } catch (e) {
        assert.instance(e, PowerLoss);
        lost = true;
      }
      r.flash.restorePower();
      const after = r.keys();
      const restored = after.restore();
      const counter = r.se.counter(ROTATION_COUNTER, false);
      if (restored && restored.rotation === counter) {
        assert.ok(restored.rotation > was.rotation, `cut ${cut}: the new record is complete`);
      } else {
        assert.ok(lost, `cut ${cut}: only a cut leaves no record for the counter`);
        assert.is(restored, null);
        const next = after.keyFor(interval);
        assert.is(next.rotation, counter + 1, `cut ${cut}: a fresh rotation number, never ${counter} again`);
        assert.ok(r.records().read(keyRecordName(was.rotation)), 'the record before it was not touched');
      }
      interval += 96;
    }
    r.close();
  },
);

rotation(
  'an outbox that refuses the certificate: the key waits, recorded, and no counter step or GenKey is repeated',
  () => {
    const r = rig();
    let refuse = true;
    const keys = new ReadingKeys({
      se: r.se,
      storage: r.records(),
      sha256: nodeSha256,
      meterId: METER,
      intervalSeconds: INTERVAL_SECONDS,
      rotationSeconds: ROTATION_SECONDS,
      publishCertificate: (c) => {
        if (refuse) throw new Error('outbox full');
        r.published.push(c);
      },
      log: () => {},
    });
    keys.restore();
    assert.throws(() => keys.keyFor(1000), /outbox full/);
    assert.throws(() => keys.keyFor(1000), /outbox full/);
    assert.is(keys.current(), null, 'not used before its certificate is queued');
    assert.is(r.se.counter(ROTATION_COUNTER, false), 1, 'one counter step');
    refuse = false;
    const key = keys.keyFor(1000);
    assert.is(key.rotation, 1);
    assert.is(r.published.length, 1);
    r.close();
  },
);

rotation.run();

const signed = suite('signed and sealed readings');

signed(
  'signAndSealReading: 5 SE commands; the DSO opens, verifies and decodes it; the registry chain accepts it',
  () => {
    const r = rig();
    const keys = r.keys();
    keys.restore();
    const dso = p256.keygen();
    const dsoPublic = p256.getPublicKey(dso.secretKey, false);
    keys.keyFor(2000); // rotation outside the count
    const commandsBefore = r.se.stats.commands;
    const envelope = signAndSealReading(r.se, keys, dsoPublic, reading(1, 2000), nodeCryptoPrimitives);
    assert.is(r.se.stats.commands - commandsBefore, 5, 'Random, Nonce, Sign, GenKey TempKey, ECDH');

    const { ephemeralPublicKey } = decodeEnvelope(envelope);
    const shared = p256.getSharedSecret(dso.secretKey, ephemeralPublicKey, true).subarray(1);
    const cose = decodeSign1(openEnvelope(nodeCryptoPrimitives, shared, envelope));
    const key = keys.current()!;
    assert.ok(
      nodeVerifyEs256(key.publicKey, sign1ToBeSigned(cose.protectedBytes, cose.payload), cose.signature),
      'signed by the current reading key',
    );
    assert.equal(decodeReading(cose.payload), reading(1, 2000));

    const registry = new MeterRegistry(':memory:');
    const operator = makeOperator();
    registry.trustOperator(operator.certificate);
    const mixKey = Uint8Array.of(4, ...r.se.publicKey(MIX_SLOT));
    registry.registerMeter(
      issueDeviceCertificate(operator.key, {
        meterId: METER,
        feeder: 'feeder-1',
        identityKey: r.identity,
        mixKey,
        limits: { maxImportW: 11000, maxExportW: 7000 },
        issuedAt: Math.floor(Date.now() / 1000),
      }),
    );
    for (const c of r.published) registry.addKeyCertificate(METER, c);
    const result = verifySignedReading(registry, dso.secretKey, { topicMeterId: METER, envelope });
    assert.ok(result.ok, JSON.stringify(result));
    // Across a rotation: the last reading of the old key and the first of the new one both verify.
    const late = signAndSealReading(r.se, keys, dsoPublic, reading(2, 2095), nodeCryptoPrimitives);
    const beforeRotation = r.se.stats.commands;
    const next = signAndSealReading(r.se, keys, dsoPublic, reading(3, 2096), nodeCryptoPrimitives);
    assert.is(
      r.se.stats.commands - beforeRotation,
      11,
      'a reading that starts a rotation: 5 + Counter, GenKey, and the attestation: Random, Nonce, GenKey digest, Sign internal',
    );
    assert.is(keys.current()!.rotation, 2);
    for (const c of r.published) registry.addKeyCertificate(METER, c);
    for (const e of [late, next]) {
      const v = verifySignedReading(registry, dso.secretKey, { topicMeterId: METER, envelope: e });
      assert.ok(v.ok, JSON.stringify(v));
    }
    console.log(
      `  figures: 5 SE commands per reading, 11 when it starts a rotation; envelope ${envelope.length} bytes per reading; key certificate ${r.published[0].length} bytes`,
    );
    registry.close();
    r.close();
  },
);

signed('ReadingPublisher: sealed once, kept while the outbox refuses it, stored with its note', () => {
  const r = rig();
  const keys = r.keys();
  keys.restore();
  const dso = p256.keygen();
  const stored: Array<{ topic: string; envelope: Uint8Array; note: string }> = [];
  let full = true;
  const publisher = new ReadingPublisher({
    se: r.se,
    keys,
    dsoPublicKey: p256.getPublicKey(dso.secretKey, false),
    primitives: nodeCryptoPrimitives,
    topic: readingTopic(METER),
    outbox: {
      publish(topic, payload, qos, retain, note) {
        assert.equal([qos, retain], [1, false]);
        if (full) throw new Error('outbox full');
        stored.push({ topic, envelope: payload, note });
      },
    },
  });
  assert.throws(() => publisher.publish(reading(1, 2000)), /outbox full/);
  const afterFirstTry = r.se.stats.commands;
  assert.throws(() => publisher.publish(reading(1, 2000)), /outbox full/);
  assert.is(r.se.stats.commands, afterFirstTry, 'a retry of the same reading costs no SE command');
  full = false;
  publisher.publish(reading(1, 2000));
  assert.is(r.se.stats.commands, afterFirstTry, 'nor does the retry that succeeds');
  publisher.publish(reading(2, 2001));
  assert.is(r.se.stats.commands - afterFirstTry, 5, 'the next reading is sealed anew');
  assert.equal(
    stored.map((m) => m.topic),
    [readingTopic(METER), readingTopic(METER)],
  );
  assert.equal(notedReadings(stored.map((m) => m.note)), [
    { seq: 1, interval: 2000 },
    { seq: 2, interval: 2001 },
  ]);
  const shared = p256
    .getSharedSecret(dso.secretKey, decodeEnvelope(stored[0].envelope).ephemeralPublicKey, true)
    .subarray(1);
  assert.equal(
    decodeReading(decodeSign1(openEnvelope(nodeCryptoPrimitives, shared, stored[0].envelope)).payload),
    reading(1, 2000),
  );
  r.close();
});

signed.run();
