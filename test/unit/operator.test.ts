// The operator key store and `veilgrid operator`: init writes an encrypted key (0600) and a self-signed
// certificate the DSO accepts; the right passphrase unlocks a key that signs device certificates; a
// wrong passphrase or any altered field is refused with the same clear error; show needs no passphrase.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { p256 } from '@noble/curves/nist.js';
import { CliError } from '../../host-tools/cli/command.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { command, PASSPHRASE_ENV } from '../../host-tools/operator/operator-command.ts';
import {
  OPERATOR_CERT_FILE,
  OPERATOR_KEY_FILE,
  OperatorKeyError,
  WRONG_PASSPHRASE,
  initOperator,
  issueDeviceCertificate,
  readOperatorCertificate,
  showOperator,
  unlockOperatorKey,
} from '../../host-tools/operator/operator-key.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { keyPair } from './verifier-fixtures.ts';

const PASSPHRASE = 'correct horse battery staple';

interface Context {
  dir: string;
}
const test = suite<Context>('operator');

test.before.each((ctx) => {
  ctx.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-operator-'));
});
test.after.each((ctx) => {
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

async function rejectsWith(promise: Promise<unknown>, message: string): Promise<void> {
  try {
    await promise;
  } catch (err) {
    assert.ok((err as Error).message.includes(message), `"${(err as Error).message}" should mention "${message}"`);
    return;
  }
  assert.unreachable(`expected an error mentioning "${message}"`);
}

/** Captures console.log while fn runs. */
async function captured(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  try {
    return { code: await fn(), out: lines.join('\n') };
  } finally {
    console.log = log;
  }
}

test('init writes a 0600 key file and a certificate the DSO trusts; the unlocked key signs device certificates', async (ctx) => {
  const dir = path.join(ctx.dir, 'operator');
  const summary = await initOperator({ dir, passphrase: PASSPHRASE, operatorId: 'operator-north', validityDays: 30 });
  assert.is(summary.operatorId, 'operator-north');
  assert.is(summary.notAfter - summary.notBefore, 30 * 86_400);
  assert.is(fs.statSync(path.join(dir, OPERATOR_KEY_FILE)).mode & 0o777, 0o600);
  const file = JSON.parse(fs.readFileSync(path.join(dir, OPERATOR_KEY_FILE), 'utf8'));
  assert.equal(
    { name: file.kdf.name, N: file.kdf.N, r: file.kdf.r, p: file.kdf.p, cipher: file.cipher.name },
    { name: 'scrypt', N: 32768, r: 8, p: 1, cipher: 'aes-256-gcm' },
  );
  assert.is(file.kdf.salt.length, 32);
  assert.is(file.cipher.nonce.length, 24);
  assert.not.ok(JSON.stringify(file).includes(PASSPHRASE));

  const registry = new MeterRegistry(':memory:');
  const trusted = registry.trustOperator(readOperatorCertificate(dir));
  assert.is(trusted.operatorId, 'operator-north');
  assert.is(Buffer.from(trusted.kid).toString('hex'), summary.kid);

  const key = await unlockOperatorKey(dir, PASSPHRASE);
  assert.is(Buffer.from(key.publicKey).toString('hex'), summary.publicKey);
  const digest = nodeSha256(new Uint8Array([1, 2, 3]));
  assert.ok(p256.verify(key.signDigest(digest), digest, key.publicKey, { prehash: false }));
  const deviceCertificate = issueDeviceCertificate(key, {
    meterId: 'meter-1',
    feeder: 'feeder-1',
    identityKey: keyPair().publicKey,
    mixKey: keyPair().publicKey,
    limits: { maxImportW: 1, maxExportW: 1 },
    issuedAt: summary.notBefore,
  });
  assert.is(registry.registerMeter(deviceCertificate).outcome, 'registered');
  registry.close();
});

test('a wrong passphrase and every altered field give the same refusal', async (ctx) => {
  await initOperator({ dir: ctx.dir, passphrase: PASSPHRASE });
  await rejectsWith(unlockOperatorKey(ctx.dir, 'correct horse battery stapler'), WRONG_PASSPHRASE);
  const keyFile = path.join(ctx.dir, OPERATOR_KEY_FILE);
  const original = fs.readFileSync(keyFile, 'utf8');
  const other = keyPair();
  const alterations: Array<(f: any) => void> = [
    (f) => (f.operatorId = 'operator-evil'),
    (f) => (f.publicKey = Buffer.from(other.publicKey).toString('hex')),
    (f) => (f.kid = Buffer.from(other.kid).toString('hex')),
    (f) => (f.createdAt = '2020-01-01T00:00:00.000Z'),
    (f) => (f.kdf.N = 65536),
    (f) => (f.kdf.salt = '00'.repeat(16)),
    (f) => (f.cipher.nonce = '00'.repeat(12)),
    (f) => (f.ciphertext = (f.ciphertext[0] === '0' ? '1' : '0') + f.ciphertext.slice(1)),
    (f) => (f.tag = '00'.repeat(16)),
  ];
  for (const alter of alterations) {
    const file = JSON.parse(original);
    alter(file);
    fs.writeFileSync(keyFile, JSON.stringify(file));
    await rejectsWith(unlockOperatorKey(ctx.dir, PASSPHRASE), WRONG_PASSPHRASE);
  }
  fs.writeFileSync(keyFile, JSON.stringify({ ...JSON.parse(original), kdf: { ...JSON.parse(original).kdf, N: 1024 } }));
  await rejectsWith(unlockOperatorKey(ctx.dir, PASSPHRASE), 'kdf.N 1024');
  fs.writeFileSync(keyFile, '{"format":');
  await rejectsWith(unlockOperatorKey(ctx.dir, PASSPHRASE), 'not JSON');
  fs.writeFileSync(keyFile, original);
  assert.ok((await unlockOperatorKey(ctx.dir, PASSPHRASE)).publicKey.length === 65);
});

test('init refuses to overwrite a key without force, and short passphrases', async (ctx) => {
  const first = await initOperator({ dir: ctx.dir, passphrase: PASSPHRASE });
  await rejectsWith(initOperator({ dir: ctx.dir, passphrase: PASSPHRASE }), 'already exists');
  assert.is(showOperator(ctx.dir).publicKey, first.publicKey);
  const second = await initOperator({ dir: ctx.dir, passphrase: PASSPHRASE, force: true });
  assert.is.not(second.publicKey, first.publicKey);
  await rejectsWith(initOperator({ dir: path.join(ctx.dir, 'new'), passphrase: 'short' }), 'at least 8');
  await rejectsWith(
    initOperator({ dir: path.join(ctx.dir, 'bad-id'), passphrase: PASSPHRASE, operatorId: 'no/slashes' }),
    'operatorId',
  );
  assert.throws(
    () => showOperator(path.join(ctx.dir, 'missing')),
    (err: Error) => err instanceof OperatorKeyError && err.message.includes('operator init'),
  );
});

test('show reports a certificate that does not belong to the key', async (ctx) => {
  await initOperator({ dir: path.join(ctx.dir, 'a'), passphrase: PASSPHRASE });
  await initOperator({ dir: path.join(ctx.dir, 'b'), passphrase: PASSPHRASE });
  fs.copyFileSync(path.join(ctx.dir, 'b', OPERATOR_CERT_FILE), path.join(ctx.dir, 'a', OPERATOR_CERT_FILE));
  assert.throws(() => showOperator(path.join(ctx.dir, 'a')), /does not belong/);
});

test('veilgrid operator init/show: passphrase from a file or the environment, never the command line', async (ctx) => {
  const passphraseFile = path.join(ctx.dir, 'passphrase.txt');
  fs.writeFileSync(passphraseFile, PASSPHRASE + '\n');
  const dir = path.join(ctx.dir, 'op');
  const init = await captured(() =>
    command.run(['init', '--dir', dir, '--operator-id', 'operator-cli', '--passphrase-file', passphraseFile]),
  );
  assert.is(init.code, 0);
  assert.match(init.out, /operator id\s+operator-cli/);
  assert.ok(await unlockOperatorKey(dir, PASSPHRASE));

  const show = await captured(() => command.run(['show', '--dir', dir, '--json']));
  const summary = JSON.parse(show.out);
  assert.is(summary.operatorId, 'operator-cli');
  assert.match(summary.kid, /^[0-9a-f]{16}$/);
  assert.match(summary.publicKey, /^04[0-9a-f]{128}$/);
  assert.ok(summary.notAfter > summary.notBefore);
  assert.match((await captured(() => command.run(['show', '--dir', dir]))).out, /public key\s+04[0-9a-f]{128}/);

  const fails = async (argv: string[], message: string) => {
    try {
      await command.run(argv);
    } catch (err) {
      assert.instance(err, CliError);
      assert.ok((err as Error).message.includes(message), `"${(err as Error).message}" should mention "${message}"`);
      return;
    }
    assert.unreachable(`veilgrid operator ${argv.join(' ')} should fail`);
  };
  await fails(['init', '--dir', dir, '--passphrase', PASSPHRASE], "Unknown option '--passphrase'");
  await fails(['init', '--dir', dir, '--passphrase-file', passphraseFile], 'already exists');
  const saved = process.env[PASSPHRASE_ENV];
  delete process.env[PASSPHRASE_ENV];
  try {
    await fails(['init', '--dir', path.join(ctx.dir, 'x')], PASSPHRASE_ENV);
    process.env[PASSPHRASE_ENV] = PASSPHRASE;
    assert.is((await captured(() => command.run(['init', '--dir', dir, '--force']))).code, 0);
  } finally {
    if (saved === undefined) delete process.env[PASSPHRASE_ENV];
    else process.env[PASSPHRASE_ENV] = saved;
  }
  await fails(['rotate'], 'unknown subcommand');
  assert.match(command.help, /init --dir DIR/);
  assert.match(command.help, /show --dir DIR/);
});

test.run();
