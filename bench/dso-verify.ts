// DSO readings verified per second: M registered meters each send N readings, sealed to the DSO and
// signed by the meter's reading key (built beforehand on the host with noble keys standing in for the
// SE). The clock covers verifySignedReading only: ECDH with the DSO key, HKDF + HMAC + AES, COSE decode,
// registry lookups (chain, key certificate), the ES256 verify, reading decode and the replay-state
// write to SQLite. Figures for an in-memory registry and a file database (synchronous FULL = one fsync
// per accepted reading, as the collector runs it, and NORMAL).
// Usage: node --import tsx bench/dso-verify.ts [--meters 20] [--readings 50]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { p256 } from '@noble/curves/nist.js';
import { MeterRegistry } from '../host-tools/dso/registry.ts';
import { verifySignedReading } from '../host-tools/dso/verifier.ts';
import { makeMeter, makeOperator, makeReadingKey, reading, sealedReading } from '../test/unit/verifier-fixtures.ts';

const { values } = parseArgs({
  options: { meters: { type: 'string', default: '20' }, readings: { type: 'string', default: '50' } },
});
const meters = Number(values.meters);
const perMeter = Number(values.readings);

const dsoPrivate = p256.utils.randomSecretKey();
const dsoPublic = p256.getPublicKey(dsoPrivate, false);
const operator = makeOperator();
const fleet = Array.from({ length: meters }, (_, i) => {
  const meter = makeMeter(operator, `meter-${String(i).padStart(4, '0')}`);
  return { meter, key: makeReadingKey(meter, 1, 0, 99_999) };
});
// Interleaved as they would arrive: one reading of every meter per interval.
const messages: Array<{ topicMeterId: string; envelope: Uint8Array }> = [];
for (let seq = 1; seq <= perMeter; seq++) {
  for (const { meter, key } of fleet)
    messages.push({
      topicMeterId: meter.meterId,
      envelope: sealedReading(dsoPublic, key, reading(meter.meterId, seq, 1000 + seq)),
    });
}
const envelopeBytes = messages.reduce((n, m) => n + m.envelope.length, 0) / messages.length;

function run(label: string, registry: MeterRegistry): void {
  registry.trustOperator(operator.certificate);
  for (const { meter, key } of fleet) {
    registry.registerMeter(meter.deviceCertificate);
    registry.addKeyCertificate(meter.meterId, key.certificate);
  }
  const started = process.hrtime.bigint();
  let accepted = 0;
  for (const message of messages) if (verifySignedReading(registry, dsoPrivate, message).ok) accepted++;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  registry.close();
  if (accepted !== messages.length)
    throw new Error(`${label}: only ${accepted} of ${messages.length} readings verified`);
  console.log(
    `${label.padEnd(28)} ${messages.length} readings in ${seconds.toFixed(2)} s = ${Math.round(messages.length / seconds)} readings/s (${((seconds / messages.length) * 1000).toFixed(2)} ms each)`,
  );
}

console.log(
  `DSO verification: ${meters} meters x ${perMeter} readings, ${envelopeBytes.toFixed(0)} bytes per sealed reading, Node ${process.version}`,
);
run('in-memory registry', new MeterRegistry(':memory:'));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-bench-dso-'));
try {
  run('file registry, sync FULL', new MeterRegistry(path.join(dir, 'full.db'), { synchronous: 'FULL' }));
  run('file registry, sync NORMAL', new MeterRegistry(path.join(dir, 'normal.db'), { synchronous: 'NORMAL' }));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
