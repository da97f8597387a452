// The one error shape (firmware/src/protocol/veilgrid-error.ts): every error the project throws on
// purpose is a VeilgridError with its class's name and a code a program or test can act on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PowerLoss } from '../../boards/emulator/flash.ts';
import { CborError, decode } from '../../firmware/src/protocol/cbor.ts';
import { ConfigError, parseMeterConfig } from '../../firmware/src/protocol/meter-config.ts';
import { SealedEnvelopeError, openEnvelope } from '../../firmware/src/protocol/sealed-reading.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';
import { nodeCryptoPrimitives } from '../../host-tools/crypto/node-primitives.ts';
import { CliError } from '../../host-tools/cli/command.ts';
import { MeterRegistry, RegistryError } from '../../host-tools/dso/registry.ts';
import { MeterConsoleError } from '../../boards/console/meter-console.ts';

/** The error fn throws. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('nothing was thrown');
}

function shape(err: unknown) {
  assert.instance(err, VeilgridError);
  assert.instance(err, Error);
  const e = err as VeilgridError;
  return { name: e.name, code: e.code };
}

test('errors carry their class name and a code', () => {
  assert.equal(shape(thrown(() => decode(Uint8Array.of(0xff)))), { name: 'CborError', code: 'cbor' });
  assert.instance(
    thrown(() => decode(Uint8Array.of(0xff))),
    CborError,
  );
  assert.equal(shape(thrown(() => parseMeterConfig('{}'))), { name: 'ConfigError', code: 'config' });
  assert.instance(
    thrown(() => parseMeterConfig('{}')),
    ConfigError,
  );
  const envelope = thrown(() => openEnvelope(nodeCryptoPrimitives, new Uint8Array(32), Uint8Array.of(1, 2, 3)));
  assert.instance(envelope, SealedEnvelopeError);
  assert.is(
    (envelope as SealedEnvelopeError).code,
    (envelope as SealedEnvelopeError).reason,
    "an envelope error's code is its reason",
  );
  const registry = new MeterRegistry(':memory:');
  const refused = thrown(() => registry.addKeyCertificate('meter-1', Uint8Array.of(0xd2)));
  registry.close();
  assert.instance(refused, RegistryError);
  assert.is((refused as RegistryError).code, 'malformed', "a registry refusal's code is its rejection reason");
  assert.equal(shape(new MeterConsoleError('x', true)), { name: 'MeterConsoleError', code: 'timeout' });
  assert.equal(shape(new MeterConsoleError('x', false, 'refused')), {
    name: 'MeterConsoleError',
    code: 'console-refused',
  });
  assert.equal(shape(new CliError('x')), { name: 'CliError', code: 'cli' });
  assert.equal(shape(new PowerLoss()), { name: 'PowerLoss', code: 'power-loss' });
});

test('a cause is kept when given', () => {
  const cause = new Error('underneath');
  assert.is((new VeilgridError('X', 'x', 'on top', cause) as { cause?: unknown }).cause, cause);
  assert.not.ok('cause' in new VeilgridError('X', 'x', 'alone'));
});

test.run();
