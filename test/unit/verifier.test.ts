// The DSO's reading verifier: genuine readings (sealed and signed on the host exactly as the meter does,
// with noble keys standing in for its secure element) are accepted; every kind of bad reading is
// refused with its own reason, logged as one JSON line and counted on /metrics.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { p256 } from '@noble/curves/nist.js';
import { CborMap } from '../../firmware/src/protocol/cbor.ts';
import { decodeSign1, encodeSign1 } from '../../firmware/src/protocol/cose.ts';
import { encodeReading } from '../../firmware/src/protocol/reading.ts';
import { startServiceHttpServer } from '../../host-tools/service/http-server.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import {
  DEFAULT_KEY_OVERLAP_INTERVALS,
  ReadingVerifier,
  acceptKeyCertificate,
  verifySignedReading,
  type VerificationResult,
} from '../../host-tools/dso/verifier.ts';
import { REJECTION_REASONS } from '../../host-tools/dso/rejection-reasons.ts';
import {
  DAY_SECONDS,
  keyPair,
  makeMeter,
  makeOperator,
  makeReadingKey,
  reading,
  seal,
  sealedReading,
  signReadingBytes,
  type ReadingKey,
  type TestMeter,
  type TestOperator,
} from './verifier-fixtures.ts';

interface Context {
  registry: MeterRegistry;
  dso: { privateKey: Uint8Array; publicKey: Uint8Array };
  operator: TestOperator;
  meter: TestMeter;
  key1: ReadingKey;
}

const test = suite<Context>('verifier');

test.before.each((ctx) => {
  ctx.registry = new MeterRegistry(':memory:');
  const dsoPrivate = p256.utils.randomSecretKey();
  ctx.dso = { privateKey: dsoPrivate, publicKey: p256.getPublicKey(dsoPrivate, false) };
  ctx.operator = makeOperator();
  ctx.registry.trustOperator(ctx.operator.certificate);
  ctx.meter = makeMeter(ctx.operator, 'meter-001');
  ctx.registry.registerMeter(ctx.meter.deviceCertificate);
  ctx.key1 = makeReadingKey(ctx.meter, 1, 100, 195);
  ctx.registry.addKeyCertificate('meter-001', ctx.key1.certificate);
});

test.after.each((ctx) => {
  ctx.registry.close();
});

function verify(ctx: Context, envelope: Uint8Array, topicMeterId = 'meter-001', nowMs?: number): VerificationResult {
  return verifySignedReading(ctx.registry, ctx.dso.privateKey, { topicMeterId, envelope }, nowMs);
}

function assertRejected(result: VerificationResult, reason: string, detailIncludes?: string): void {
  if (result.ok) assert.unreachable(`expected ${reason}, but the reading was accepted`);
  else {
    assert.is(result.reason, reason, result.detail);
    if (detailIncludes)
      assert.ok(result.detail.includes(detailIncludes), `detail "${result.detail}" should mention "${detailIncludes}"`);
  }
}

test('a genuine reading is accepted with its rotation, and its seq is recorded', (ctx) => {
  const r = reading('meter-001', 1, 100);
  const result = verify(ctx, sealedReading(ctx.dso.publicKey, ctx.key1, r));
  assert.equal(result, { ok: true, reading: r, rotation: 1, duplicate: false });
  assert.equal(ctx.registry.replayState('meter-001'), { rotation: 1, seq: 1 });
});

test('high-S signatures (the SE does not normalize s) are accepted', (ctx) => {
  const n = p256.Point.CURVE().n;
  for (const seq of [1, 2, 3]) {
    const bytes = encodeReading(reading('meter-001', seq, 100 + seq));
    const signed = decodeSign1(signReadingBytes(ctx.key1, bytes));
    const s = BigInt('0x' + Buffer.from(signed.signature.subarray(32)).toString('hex'));
    const highS = new Uint8Array(signed.signature);
    // Flip to the other valid s (n - s) when this one is low, so every reading here carries a high S.
    if (s <= n / 2n) highS.set(Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex'), 32);
    const envelope = seal(
      ctx.dso.publicKey,
      encodeSign1({ ...signed, protectedHeader: signed.protectedBytes, signature: highS }),
    );
    assert.ok(verify(ctx, envelope).ok, 'a high-S signature must verify');
  }
});

test('a redelivered reading is accepted as a duplicate, and the ReadingStore keeps one copy', (ctx) => {
  const store = new ReadingStore(':memory:');
  const r = reading('meter-001', 7, 120);
  const envelope = sealedReading(ctx.dso.publicKey, ctx.key1, r);
  const first = verify(ctx, envelope);
  const again = verify(ctx, envelope);
  // Sealed afresh (new ephemeral key, new signature) but the same reading: still a duplicate.
  const resent = verify(ctx, sealedReading(ctx.dso.publicKey, ctx.key1, r));
  assert.ok(first.ok && !first.duplicate);
  assert.ok(again.ok && again.duplicate);
  assert.ok(resent.ok && resent.duplicate);
  assert.is(store.insert(first.ok ? first.reading : r), 'stored');
  assert.is(store.insert(again.ok ? again.reading : r), 'duplicate');
  store.close();
});

test('tampered: a changed envelope byte fails the MAC; a changed reading re-sealed fails the signature', (ctx) => {
  const envelope = sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1, 100));
  for (const offset of [envelope.length - 40, envelope.length - 1]) {
    const tampered = new Uint8Array(envelope);
    tampered[offset] ^= 0x01;
    assertRejected(verify(ctx, tampered), 'bad-mac');
  }
  // Anyone can seal to the DSO's public key, so an attacker on the path re-seals a modified reading.
  const signed = decodeSign1(signReadingBytes(ctx.key1, encodeReading(reading('meter-001', 1, 100, 120))));
  const forged = encodeSign1({
    ...signed,
    protectedHeader: signed.protectedBytes,
    payload: encodeReading(reading('meter-001', 1, 100, 12)),
  });
  assertRejected(verify(ctx, seal(ctx.dso.publicKey, forged)), 'bad-signature');
});

test('bad signature: corrupted signature bytes, or signed with the identity key instead of the reading key', (ctx) => {
  const signed = decodeSign1(signReadingBytes(ctx.key1, encodeReading(reading('meter-001', 1, 100))));
  const corrupted = new Uint8Array(signed.signature);
  corrupted[5] ^= 0x80;
  assertRejected(
    verify(
      ctx,
      seal(ctx.dso.publicKey, encodeSign1({ ...signed, protectedHeader: signed.protectedBytes, signature: corrupted })),
    ),
    'bad-signature',
  );
  // Claims key1's kid but is signed by another key.
  const impostor = { ...keyPair(), kid: ctx.key1.kid };
  assertRejected(
    verify(ctx, sealedReading(ctx.dso.publicKey, impostor, reading('meter-001', 2, 101))),
    'bad-signature',
  );
});

test('replayed: same seq with other content, a seq before the window, and a retired rotation are refused', () => {
  const registry = new MeterRegistry(':memory:', { replayWindow: 4 });
  const dsoPrivate = p256.utils.randomSecretKey();
  const dsoPublic = p256.getPublicKey(dsoPrivate, false);
  const operator = makeOperator();
  registry.trustOperator(operator.certificate);
  const meter = makeMeter(operator, 'meter-009');
  registry.registerMeter(meter.deviceCertificate);
  const key1 = makeReadingKey(meter, 1, 0, 50);
  const key2 = makeReadingKey(meter, 2, 40, 90);
  registry.addKeyCertificate('meter-009', key1.certificate);
  registry.addKeyCertificate('meter-009', key2.certificate);
  const check = (key: ReadingKey, seq: number, interval: number, importWh?: number) =>
    verifySignedReading(registry, dsoPrivate, {
      topicMeterId: 'meter-009',
      envelope: sealedReading(dsoPublic, key, reading('meter-009', seq, interval, importWh)),
    });

  const old = sealedReading(dsoPublic, key1, reading('meter-009', 1, 10));
  assert.ok(verifySignedReading(registry, dsoPrivate, { topicMeterId: 'meter-009', envelope: old }).ok);
  for (let seq = 2; seq <= 10; seq++) assert.ok(check(key1, seq, 10 + seq).ok);
  // A genuine old reading captured and sent again after it fell out of the window.
  assertRejected(
    verifySignedReading(registry, dsoPrivate, { topicMeterId: 'meter-009', envelope: old }),
    'replay',
    'older than the replay window',
  );
  // A different reading under an accepted seq (e.g. the meter's flash rolled back to an old image).
  assertRejected(check(key1, 9, 19, 999), 'replay', 'different content');
  // A seq the DSO never saw (a late reading filling a gap) is new.
  assert.ok(check(key1, 11, 21).ok);
  // Once the meter signed with rotation 2, a newer seq signed with the retired rotation-1 key is a replay.
  assert.ok(check(key2, 12, 45).ok);
  assertRejected(check(key1, 13, 46), 'replay', 'rotation 1');
  assert.equal(registry.replayState('meter-009'), { rotation: 2, seq: 12 });
  registry.close();
});

test('wrongly encrypted: sealed to another DSO key, or not an envelope at all', (ctx) => {
  const other = p256.getPublicKey(p256.utils.randomSecretKey(), false);
  assertRejected(verify(ctx, sealedReading(other, ctx.key1, reading('meter-001', 1, 100))), 'bad-mac');
  assertRejected(verify(ctx, encodeReading(reading('meter-001', 1, 100))), 'bad-envelope');
  assertRejected(verify(ctx, new Uint8Array([1, 2, 3])), 'bad-envelope');
  // A well-formed envelope whose ephemeral key is not on the curve.
  const envelope = sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1, 100));
  const offCurve = new Uint8Array(envelope);
  offCurve[10] ^= 0xff; // inside the ephemeral key's x (which follows 84 01 58 41 04)
  assertRejected(verify(ctx, offCurve), 'bad-envelope', 'not a point');
});

test('foreign operator: unknown to the DSO at registration, distrusted later, or expired', (ctx) => {
  const foreign = makeOperator('operator-elsewhere');
  const stranger = makeMeter(foreign, 'meter-900');
  assert.throws(
    () => ctx.registry.registerMeter(stranger.deviceCertificate),
    (err: Error & { reason?: string }) => err.reason === 'foreign-operator',
  );
  const strangerKey = makeReadingKey(stranger, 1, 0, 1000);
  assertRejected(
    verify(ctx, sealedReading(ctx.dso.publicKey, strangerKey, reading('meter-900', 1, 100)), 'meter-900'),
    'unknown-meter',
  );

  const envelope = () => sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1, 100));
  // makeOperator's default certificate runs from a day ago for 365 days.
  const notAfterMs = (Math.floor(Date.now() / 1000) - DAY_SECONDS + 365 * DAY_SECONDS) * 1000;
  assertRejected(verify(ctx, envelope(), 'meter-001', notAfterMs + 2000), 'foreign-operator', 'not valid now');
  ctx.registry.distrustOperator('operator-test');
  assertRejected(verify(ctx, envelope()), 'foreign-operator', 'no longer trusts');
  assert.is(
    acceptKeyCertificate(ctx.registry, 'meter-001', makeReadingKey(ctx.meter, 2, 196, 290).certificate).ok,
    false,
  );
});

test('bad device certificate: the stored certificate no longer verifies with the operator key', (ctx) => {
  const altered = new Uint8Array(ctx.meter.deviceCertificate);
  altered[altered.length - 3] ^= 0x01; // inside the signature
  ctx.registry.db
    .prepare('UPDATE registry_meters SET device_certificate = ? WHERE meter_id = ?')
    .run(altered, 'meter-001');
  assertRejected(
    verify(ctx, sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1, 100))),
    'bad-device-certificate',
    'signature does not verify',
  );
});

test('revoked meter: its readings and key certificates are refused', (ctx) => {
  ctx.registry.revoke('meter-001', 'tamper switch opened');
  assertRejected(
    verify(ctx, sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1, 100))),
    'revoked',
    'tamper switch opened',
  );
  const result = acceptKeyCertificate(ctx.registry, 'meter-001', makeReadingKey(ctx.meter, 2, 196, 290).certificate);
  assert.equal(result.ok ? '' : result.reason, 'revoked');
});

test('unknown key: a reading key without a key certificate, or without a kid', (ctx) => {
  const uncertified = keyPair();
  assertRejected(
    verify(ctx, sealedReading(ctx.dso.publicKey, uncertified, reading('meter-001', 1, 100))),
    'unknown-key',
  );
  // Signed by meter-001's key but published on meter-002's topic: meter-002 has no such key.
  const other = makeMeter(ctx.operator, 'meter-002');
  ctx.registry.registerMeter(other.deviceCertificate);
  assertRejected(
    verify(ctx, sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1, 100)), 'meter-002'),
    'unknown-key',
  );
  const signed = decodeSign1(signReadingBytes(ctx.key1, encodeReading(reading('meter-001', 1, 100))));
  const noKid = encodeSign1({
    protectedHeader: new CborMap([[1, -7]]),
    unprotectedHeader: new CborMap([]),
    payload: signed.payload,
    signature: signed.signature,
  });
  assertRejected(verify(ctx, seal(ctx.dso.publicKey, noKid)), 'malformed', 'kid');
});

test('key outside its interval: before validFrom and after validTo + overlap; inside the overlap is fine', (ctx) => {
  assertRejected(
    verify(ctx, sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1, 99))),
    'key-not-valid-for-interval',
    '100..195',
  );
  assert.ok(
    verify(
      ctx,
      sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 2, 195 + DEFAULT_KEY_OVERLAP_INTERVALS)),
    ).ok,
  );
  assertRejected(
    verify(
      ctx,
      sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 3, 196 + DEFAULT_KEY_OVERLAP_INTERVALS)),
    ),
    'key-not-valid-for-interval',
  );
});

test('malformed: a signed payload that is not a reading, or a reading naming another meter', (ctx) => {
  assertRejected(
    verify(ctx, seal(ctx.dso.publicKey, signReadingBytes(ctx.key1, new Uint8Array([0xa1, 0x01, 0x02])))),
    'malformed',
    'not a reading',
  );
  assertRejected(
    verify(ctx, sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-777', 1, 100))),
    'malformed',
    'meter-777',
  );
  assertRejected(verify(ctx, seal(ctx.dso.publicKey, new Uint8Array([0x01]))), 'malformed', 'signed reading');
});

test('key certificates arriving on their own: new rotation added, repeat unchanged, old or forged refused', (ctx) => {
  const key2 = makeReadingKey(ctx.meter, 2, 190, 290);
  assert.equal(acceptKeyCertificate(ctx.registry, 'meter-001', key2.certificate), {
    ok: true,
    rotation: 2,
    outcome: 'added',
  });
  assert.equal(acceptKeyCertificate(ctx.registry, 'meter-001', key2.certificate), {
    ok: true,
    rotation: 2,
    outcome: 'unchanged',
  });
  const stale = acceptKeyCertificate(ctx.registry, 'meter-001', makeReadingKey(ctx.meter, 2, 190, 290).certificate);
  assert.is(stale.ok ? '' : stale.reason, 'replay');
  const forged = acceptKeyCertificate(
    ctx.registry,
    'meter-001',
    makeReadingKey(ctx.meter, 3, 290, 390, keyPair()).certificate,
  );
  assert.is(forged.ok ? '' : forged.reason, 'bad-signature');
  assert.ok(verify(ctx, sealedReading(ctx.dso.publicKey, key2, reading('meter-001', 5, 250))).ok);
});

test('out of bounds: a seq far past the newest, a rotation far past the last, a validity too long, an interval not yet over are refused and change nothing', (ctx) => {
  assert.ok(verify(ctx, sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1, 100))).ok);
  // A stolen reading key must not push the replay state so far that the genuine meter is locked out.
  assertRejected(
    verify(ctx, sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1 + 100_001, 101))),
    'out-of-bounds',
    'more than 100000 past',
  );
  assert.equal(ctx.registry.replayState('meter-001'), { rotation: 1, seq: 1 }, 'the refused reading changed nothing');
  // A key certificate far ahead (rotation 1001 once locked the genuine meter out for good), or valid too long.
  const farAhead = acceptKeyCertificate(ctx.registry, 'meter-001', makeReadingKey(ctx.meter, 12, 190, 290).certificate);
  assert.is(farAhead.ok ? '' : farAhead.reason, 'out-of-bounds');
  const tooLong = acceptKeyCertificate(
    ctx.registry,
    'meter-001',
    makeReadingKey(ctx.meter, 2, 190, 190 + 100_000).certificate,
  );
  assert.is(tooLong.ok ? '' : tooLong.reason, 'out-of-bounds');
  assert.equal(
    ctx.registry.keyCertificates('meter-001').map((k) => k.rotation),
    [1],
    'neither was stored',
  );
  // The genuine meter's next rotation is accepted.
  const nowMs = Date.now();
  const nowInterval = Math.floor(nowMs / 60_000);
  const key2 = makeReadingKey(ctx.meter, 2, nowInterval - 10, nowInterval + 100);
  assert.equal(acceptKeyCertificate(ctx.registry, 'meter-001', key2.certificate), {
    ok: true,
    rotation: 2,
    outcome: 'added',
  });
  // With the grid's interval length the DSO refuses readings for intervals its clock says are not over.
  const atDso = (r: ReturnType<typeof reading>) =>
    verifySignedReading(
      ctx.registry,
      ctx.dso.privateKey,
      { topicMeterId: 'meter-001', envelope: sealedReading(ctx.dso.publicKey, key2, r) },
      nowMs,
      { intervalSeconds: 60 },
    );
  assertRejected(atDso(reading('meter-001', 2, nowInterval + 10)), 'out-of-bounds', "after the DSO's clock");
  assert.equal(ctx.registry.replayState('meter-001'), { rotation: 1, seq: 1 });
  assert.ok(
    atDso(reading('meter-001', 2, nowInterval - 1)).ok,
    "the genuine meter's next reading, for an interval that has ended",
  );
});

/** Parses Prometheus text format 0.0.4 into HELP/TYPE per metric and samples keyed "name{labels}". */
function parsePrometheus(text: string) {
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      help.set(m[1], m[2]);
      continue;
    }
    m = /^# TYPE (\S+) (counter|gauge|untyped|summary|histogram)$/.exec(line);
    if (m) {
      type.set(m[1], m[2]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus text line: ${JSON.stringify(line)}`);
    if (!type.has(m[1])) throw new Error(`sample ${m[1]} comes before its # TYPE line`);
    samples.set(m[1] + (m[2] ?? ''), Number(m[3]));
  }
  return { help, type, samples };
}

test('ReadingVerifier logs each rejection as one JSON line and counts it by reason on /metrics', async (ctx) => {
  const lines: string[] = [];
  const verifier = new ReadingVerifier({
    registry: ctx.registry,
    dsoPrivateKey: ctx.dso.privateKey,
    log: (line) => lines.push(line),
  });
  const server = await startServiceHttpServer({ name: 'DSO', metrics: verifier.metrics });
  try {
    const good = sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-001', 1, 100));
    verifier.verify({ topicMeterId: 'meter-001', envelope: good });
    verifier.verify({ topicMeterId: 'meter-001', envelope: good });
    verifier.verify({ topicMeterId: 'meter-001', envelope: new Uint8Array([0]) });
    verifier.verify({
      topicMeterId: 'meter-404',
      envelope: sealedReading(ctx.dso.publicKey, ctx.key1, reading('meter-404', 1, 100)),
    });
    verifier.verify({
      topicMeterId: 'meter-001',
      envelope: sealedReading(ctx.dso.publicKey, keyPair(), reading('meter-001', 2, 101)),
    });
    verifier.acceptKeyCertificate('meter-001', makeReadingKey(ctx.meter, 2, 190, 290).certificate);
    verifier.acceptKeyCertificate('meter-001', makeReadingKey(ctx.meter, 1, 190, 290).certificate);

    assert.is(lines.length, 4);
    const first = JSON.parse(lines[0]);
    assert.equal(Object.keys(first), ['time', 'level', 'component', 'event', 'meterId', 'reason', 'detail']);
    assert.is(first.level, 'warn');
    assert.is(first.event, 'reading_rejected');
    assert.is(first.meterId, 'meter-001');
    assert.is(first.reason, 'bad-envelope');
    assert.ok(!Number.isNaN(Date.parse(first.time)));
    assert.equal(
      lines.map((l) => JSON.parse(l).reason),
      ['bad-envelope', 'unknown-meter', 'unknown-key', 'replay'],
    );
    assert.is(JSON.parse(lines[3]).event, 'key_certificate_rejected');

    const response = await fetch(`${server.url}/metrics`);
    assert.is(response.status, 200);
    assert.is(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const { help, type, samples } = parsePrometheus(await response.text());
    assert.is(type.get('veilgrid_dso_readings_rejected_total'), 'counter');
    assert.ok(help.get('veilgrid_dso_readings_rejected_total'));
    assert.is(samples.get('veilgrid_dso_readings_verified_total'), 1);
    assert.is(samples.get('veilgrid_dso_readings_duplicate_total'), 1);
    for (const reason of REJECTION_REASONS) {
      const expected = reason === 'bad-envelope' || reason === 'unknown-meter' || reason === 'unknown-key' ? 1 : 0;
      assert.is(samples.get(`veilgrid_dso_readings_rejected_total{reason="${reason}"}`), expected, reason);
    }
    assert.is(samples.get('veilgrid_dso_key_certificates_accepted_total'), 1);
    assert.is(samples.get('veilgrid_dso_key_certificates_rejected_total{reason="replay"}'), 1);
    assert.is(type.get('veilgrid_dso_meters'), 'gauge');
    assert.is(samples.get('veilgrid_dso_meters{status="active"}'), 1);
    assert.is(samples.get('veilgrid_dso_meters{status="revoked"}'), 0);

    const health = await fetch(`${server.url}/healthz`);
    assert.is(health.status, 200);
    assert.equal(await health.json(), { ok: true });
    assert.is((await fetch(`${server.url}/nothing`)).status, 404);
  } finally {
    await server.close();
  }
});

test("a reading's twin signature (r, n-s) verifies like the original and is the same reading: a duplicate, never a second one", (ctx) => {
  const n = p256.Point.CURVE().n;
  const r = reading('meter-001', 5, 105);
  const signed = decodeSign1(signReadingBytes(ctx.key1, encodeReading(r)));
  const s = BigInt('0x' + Buffer.from(signed.signature.subarray(32)).toString('hex'));
  const twin = new Uint8Array([
    ...signed.signature.subarray(0, 32),
    ...Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex'),
  ]);
  const twinBytes = encodeSign1({ ...signed, protectedHeader: signed.protectedBytes, signature: twin });
  assert.equal(
    verify(ctx, seal(ctx.dso.publicKey, encodeSign1({ ...signed, protectedHeader: signed.protectedBytes }))),
    { ok: true, reading: r, rotation: 1, duplicate: false },
  );
  assert.equal(
    verify(ctx, seal(ctx.dso.publicKey, twinBytes)),
    { ok: true, reading: r, rotation: 1, duplicate: true },
    'high and low S both verify (the SE does not normalise S), and the twin is the same reading',
  );
  assert.equal(ctx.registry.replayState('meter-001'), { rotation: 1, seq: 5 });
});

test('an envelope above the size cap is refused as oversize before it is opened', (ctx) => {
  assertRejected(verify(ctx, new Uint8Array(64 * 1024)), 'oversize', '65536 bytes');
  const cert = acceptKeyCertificate(ctx.registry, 'meter-001', new Uint8Array(4096));
  assert.equal(cert.ok ? 'accepted' : cert.reason, 'oversize');
});

test.run();
