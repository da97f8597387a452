// The DSO's meter registry: trusted operators, device certificates, key certificates, revocation and
// the replay state, in SQLite (in memory, in a file that is reopened, and sharing the ReadingStore's db).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  encodeKeyCertificate,
  encodeOperatorCertificate,
  kidOf,
  signedCertificate,
} from '../../firmware/src/protocol/certificate.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import { MeterRegistry, RegistryError } from '../../host-tools/dso/registry.ts';
import { issueDeviceCertificate } from '../../host-tools/operator/operator-key.ts';
import {
  DAY_SECONDS,
  keyPair,
  makeMeter,
  makeOperator,
  makeReadingKey,
  reading,
  attestKeyCertificate,
} from './verifier-fixtures.ts';

const test = suite('registry');

function refused(fn: () => unknown, reason: string, messageIncludes?: string): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, RegistryError);
    assert.is((err as RegistryError).reason, reason, (err as Error).message);
    if (messageIncludes)
      assert.ok(
        (err as Error).message.includes(messageIncludes),
        `"${(err as Error).message}" should mention "${messageIncludes}"`,
      );
    return;
  }
  assert.unreachable(`expected RegistryError ${reason}`);
}

const digest = (n: number) => nodeSha256(new Uint8Array([n]));

test('trustOperator: accepts a self-signed certificate once, refuses forged, expired and malformed ones', () => {
  const registry = new MeterRegistry(':memory:');
  const operator = makeOperator('operator-a');
  const trusted = registry.trustOperator(operator.certificate);
  assert.is(trusted.operatorId, 'operator-a');
  assert.equal(trusted.kid, operator.key.kid);
  assert.equal(registry.trustOperator(operator.certificate), trusted);
  assert.is(registry.trustedOperators().length, 1);

  // Certificate names key A but is signed by key B.
  const a = keyPair();
  const b = keyPair();
  const now = Math.floor(Date.now() / 1000);
  const payload = encodeOperatorCertificate({
    operatorId: 'operator-b',
    publicKey: a.publicKey,
    notBefore: now,
    notAfter: now + DAY_SECONDS,
  });
  refused(
    () => registry.trustOperator(signedCertificate({ sha256: nodeSha256, sign: b.signDigest }, b.publicKey, payload)),
    'bad-operator-certificate',
    'not self-signed',
  );
  // Self-signed kid, wrong signature.
  const wrongSignature = signedCertificate({ sha256: nodeSha256, sign: (d) => b.signDigest(d) }, a.publicKey, payload);
  refused(() => registry.trustOperator(wrongSignature), 'bad-operator-certificate', 'does not verify');
  refused(
    () => registry.trustOperator(makeOperator('operator-old', now - 10 * DAY_SECONDS, 5).certificate),
    'bad-operator-certificate',
    'expired',
  );
  refused(() => registry.trustOperator(new Uint8Array([0x80])), 'malformed');
  // A device certificate is not an operator certificate.
  refused(
    () => registry.trustOperator(makeMeter(operator, 'm-1').deviceCertificate),
    'malformed',
    'operator certificate',
  );
  assert.is(registry.distrustOperator('operator-a'), 1);
  assert.equal(registry.trustedOperators(), []);
  registry.close();
});

test('registerMeter: verifies against a trusted operator, idempotent, refuses a second certificate unless re-provisioning', () => {
  const registry = new MeterRegistry(':memory:');
  const operator = makeOperator('operator-a');
  registry.trustOperator(operator.certificate);
  const meter = makeMeter(operator, 'meter-1', { feeder: 'feeder-7', limits: { maxImportW: 9000, maxExportW: 4000 } });
  const { meter: record, outcome } = registry.registerMeter(meter.deviceCertificate);
  assert.is(outcome, 'registered');
  assert.is(record.meterId, 'meter-1');
  assert.is(record.operatorId, 'operator-a');
  assert.is(record.feeder, 'feeder-7');
  assert.equal(record.identityKey, meter.identity.publicKey);
  assert.equal(record.mixKey, meter.mix.publicKey);
  assert.equal(record.limits, { maxImportW: 9000, maxExportW: 4000 });
  assert.is(record.status, 'active');
  assert.equal(record.deviceCertificate, meter.deviceCertificate);
  assert.is(registry.registerMeter(meter.deviceCertificate).outcome, 'unchanged');

  const replacement = makeMeter(operator, 'meter-1');
  refused(() => registry.registerMeter(replacement.deviceCertificate), 'meter-conflict', 're-provision');
  registry.addKeyCertificate('meter-1', makeReadingKey(meter, 1, 0, 10).certificate);
  registry.acceptReading('meter-1', 1, 5, digest(5));
  registry.revoke('meter-1', 'stolen');
  const again = registry.registerMeter(replacement.deviceCertificate, { reprovision: true });
  assert.is(again.outcome, 'reprovisioned');
  assert.equal(again.meter.identityKey, replacement.identity.publicKey);
  assert.is(again.meter.status, 'active');
  assert.is(again.meter.revokedReason, undefined);
  assert.equal(registry.keyCertificates('meter-1'), [], 'key certificates of the old identity key are dropped');
  assert.equal(registry.replayState('meter-1'), { rotation: 1, seq: 5 }, 'the meter keeps counting seq');
  registry.resetReplayState('meter-1');
  assert.is(registry.replayState('meter-1'), undefined);
  registry.close();
});

test('registerMeter: refuses foreign operators and certificates that do not verify', () => {
  const registry = new MeterRegistry(':memory:');
  const operator = makeOperator('operator-a');
  registry.trustOperator(operator.certificate);
  refused(
    () => registry.registerMeter(makeMeter(makeOperator('operator-x'), 'meter-2').deviceCertificate),
    'foreign-operator',
    'does not trust',
  );
  // Signed with operator-a's key but naming another operator.
  const misnamed = issueDeviceCertificate(
    { ...operator.key, operatorId: 'operator-z' },
    {
      meterId: 'meter-3',
      feeder: 'f',
      identityKey: keyPair().publicKey,
      mixKey: keyPair().publicKey,
      limits: { maxImportW: 1, maxExportW: 1 },
      issuedAt: Math.floor(Date.now() / 1000),
    },
  );
  refused(() => registry.registerMeter(misnamed), 'bad-device-certificate', 'operator-z');
  const corrupted = new Uint8Array(makeMeter(operator, 'meter-4').deviceCertificate);
  corrupted[corrupted.length - 1] ^= 0x01;
  refused(() => registry.registerMeter(corrupted), 'bad-device-certificate', 'signature');
  refused(
    () => registry.registerMeter(makeMeter(operator, 'meter-5', { issuedAt: 1000 }).deviceCertificate),
    'bad-device-certificate',
    'outside',
  );
  // A public key that has the right form (65 bytes, 04...) but is not on the curve.
  const offCurve = keyPair().publicKey;
  offCurve[10] ^= 0xff;
  const badKey = issueDeviceCertificate(operator.key, {
    meterId: 'meter-6',
    feeder: 'f',
    identityKey: offCurve,
    mixKey: keyPair().publicKey,
    limits: { maxImportW: 1, maxExportW: 1 },
    issuedAt: Math.floor(Date.now() / 1000),
  });
  refused(() => registry.registerMeter(badKey), 'bad-device-certificate', 'identityKey');
  assert.equal(registry.meters(), []);
  registry.close();
});

test('addKeyCertificate: verified with the identity key, rotation must increase, lookups by kid', () => {
  const registry = new MeterRegistry(':memory:');
  const operator = makeOperator();
  registry.trustOperator(operator.certificate);
  const meter = makeMeter(operator, 'meter-1');
  registry.registerMeter(meter.deviceCertificate);
  const key3 = makeReadingKey(meter, 3, 100, 196);
  const added = registry.addKeyCertificate('meter-1', key3.certificate);
  assert.is(added.outcome, 'added');
  assert.equal(added.keyCertificate.kid, kidOf(nodeSha256, key3.publicKey));
  assert.equal(
    {
      rotation: added.keyCertificate.rotation,
      from: added.keyCertificate.validFromInterval,
      to: added.keyCertificate.validToInterval,
    },
    { rotation: 3, from: 100, to: 196 },
  );
  assert.is(registry.addKeyCertificate('meter-1', key3.certificate).outcome, 'unchanged');
  refused(
    () => registry.addKeyCertificate('meter-1', makeReadingKey(meter, 2, 197, 290).certificate),
    'replay',
    'rotations must increase',
  );
  refused(() => registry.addKeyCertificate('meter-1', makeReadingKey(meter, 3, 197, 290).certificate), 'replay');
  refused(
    () => registry.addKeyCertificate('meter-1', makeReadingKey(meter, 4, 197, 290, keyPair()).certificate),
    'bad-signature',
    'not by the meter',
  );
  // The identity key signing a certificate digest it was handed (what slot 0 could do before it was
  // limited to internal signatures) is not the chip's attestation: refused.
  const plain = keyPair();
  const plainPayload = encodeKeyCertificate({
    meterId: 'meter-1',
    publicKey: plain.publicKey,
    validFromInterval: 197,
    validToInterval: 290,
    rotation: 4,
  });
  refused(
    () =>
      registry.addKeyCertificate(
        'meter-1',
        signedCertificate(
          { sha256: nodeSha256, sign: meter.identity.signDigest },
          meter.identity.publicKey,
          plainPayload,
        ),
      ),
    'malformed',
    'only ATECC608-attested ES256',
  );
  // Attested for the other reading-key slot than its rotation's: not a key the chip holds there.
  const otherSlot = attestKeyCertificate(meter.identity, plainPayload, 5, plain.publicKey);
  refused(() => registry.addKeyCertificate('meter-1', otherSlot), 'bad-signature', 'a key it holds in slot 1');
  refused(() => registry.addKeyCertificate('meter-2', key3.certificate), 'malformed', 'names meter "meter-1"');
  const key4 = makeReadingKey(meter, 4, 190, 290);
  registry.addKeyCertificate('meter-1', key4.certificate);
  assert.equal(
    registry.keyCertificates('meter-1').map((k) => k.rotation),
    [3, 4],
  );
  assert.is(registry.keyCertificateByKid('meter-1', key4.kid)?.rotation, 4);
  assert.is(registry.keyCertificateByKid('meter-1', keyPair().kid), undefined);
  const stranger = makeMeter(operator, 'meter-9');
  refused(() => registry.addKeyCertificate('meter-9', makeReadingKey(stranger, 1, 0, 1).certificate), 'unknown-meter');
  registry.revoke('meter-1', 'decommissioned');
  refused(
    () => registry.addKeyCertificate('meter-1', makeReadingKey(meter, 5, 290, 390).certificate),
    'revoked',
    'decommissioned',
  );
  registry.close();
});

test('revoke: keeps the first reason and time; counts by status; unknown meters are an error', () => {
  const registry = new MeterRegistry(':memory:');
  const operator = makeOperator();
  registry.trustOperator(operator.certificate);
  registry.registerMeter(makeMeter(operator, 'meter-1').deviceCertificate);
  registry.registerMeter(makeMeter(operator, 'meter-2').deviceCertificate);
  const revoked = registry.revoke('meter-1', 'key compromised', 1_000);
  assert.equal(
    { status: revoked.status, reason: revoked.revokedReason, at: revoked.revokedAtMs },
    { status: 'revoked', reason: 'key compromised', at: 1_000 },
  );
  const again = registry.revoke('meter-1', 'second thoughts', 2_000);
  assert.equal({ reason: again.revokedReason, at: again.revokedAtMs }, { reason: 'key compromised', at: 1_000 });
  assert.equal(registry.meterCounts(), { active: 1, revoked: 1 });
  refused(() => registry.revoke('meter-404', 'x'), 'unknown-meter');
  assert.ok(registry.removeMeter('meter-2'));
  assert.equal(
    registry.meters().map((m) => m.meterId),
    ['meter-1'],
  );
  registry.close();
});

test('acceptReading: new, duplicate, late, replays by content, age and rotation', () => {
  const registry = new MeterRegistry(':memory:', { replayWindow: 3 });
  const operator = makeOperator();
  registry.trustOperator(operator.certificate);
  registry.registerMeter(makeMeter(operator, 'meter-1').deviceCertificate);
  assert.equal(registry.acceptReading('meter-1', 1, 10, digest(10)), { outcome: 'new' });
  assert.equal(registry.acceptReading('meter-1', 1, 10, digest(10)), { outcome: 'duplicate' });
  assert.is(registry.acceptReading('meter-1', 1, 10, digest(99)).outcome, 'replay');
  assert.equal(registry.acceptReading('meter-1', 1, 12, digest(12)), { outcome: 'new' });
  assert.equal(
    registry.acceptReading('meter-1', 1, 11, digest(11)),
    { outcome: 'new' },
    'a late reading fills its gap',
  );
  assert.equal(registry.acceptReading('meter-1', 1, 11, digest(11)), { outcome: 'duplicate' });
  assert.equal(registry.acceptReading('meter-1', 2, 14, digest(14)), { outcome: 'new' });
  assert.is(registry.acceptReading('meter-1', 1, 15, digest(15)).outcome, 'replay', 'back to a retired rotation');
  assert.is(registry.acceptReading('meter-1', 1, 10, digest(10)).outcome, 'replay', 'seq 10 is older than 14 - 3');
  assert.equal(registry.replayState('meter-1'), { rotation: 2, seq: 14 });
  const window = registry.db
    .prepare("SELECT seq FROM registry_accepted_readings WHERE meter_id = 'meter-1' ORDER BY seq")
    .all() as Array<{ seq: number }>;
  assert.equal(
    window.map((r) => r.seq),
    [11, 12, 14],
    'rows older than the window are pruned',
  );
  registry.close();
});

test('persists in a file and shares the ReadingStore database', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-registry-'));
  try {
    const file = path.join(dir, 'dso.db');
    const store = new ReadingStore(file);
    const shared = new MeterRegistry(store.db);
    const operator = makeOperator();
    shared.trustOperator(operator.certificate);
    const meter = makeMeter(operator, 'meter-1');
    shared.registerMeter(meter.deviceCertificate);
    shared.addKeyCertificate('meter-1', makeReadingKey(meter, 1, 0, 99).certificate);
    shared.acceptReading('meter-1', 1, 3, digest(3));
    assert.is(store.insert(reading('meter-1', 3, 50)), 'stored');
    shared.close(); // leaves the shared handle open
    assert.is(store.readings().length, 1);
    store.close();

    const reopened = new MeterRegistry(file);
    assert.is(reopened.trustedOperators().length, 1);
    assert.equal(reopened.meter('meter-1')?.deviceCertificate, meter.deviceCertificate);
    assert.is(reopened.keyCertificates('meter-1').length, 1);
    assert.equal(reopened.replayState('meter-1'), { rotation: 1, seq: 3 });
    assert.ok(reopened.checkChain('meter-1').ok);
    reopened.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
