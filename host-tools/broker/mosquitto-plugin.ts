// Builds mosquitto's veilgrid_login plugin (mosquitto-plugin/veilgrid_login.c) with the machine's C
// compiler, once per version of its source, into dist/mosquitto/. It needs gcc and mosquitto's plugin
// headers: Debian's mosquitto-dev and libmosquitto-dev packages.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

const SOURCE = fileURLToPath(new URL('./mosquitto-plugin/veilgrid_login.c', import.meta.url));
const OUT_DIR = fileURLToPath(new URL('../../dist/mosquitto/', import.meta.url));

export class PluginBuildError extends VeilgridError {
  constructor(message: string) {
    super('PluginBuildError', 'plugin-build', message);
  }
}

/** Why the plugin cannot be built here (undefined: it is built, or can be), for tests that need it. */
export function loginPluginUnavailable(): string | undefined {
  try {
    loginPluginPath();
    return undefined;
  } catch (err) {
    if (err instanceof PluginBuildError) return err.message;
    throw err;
  }
}

/** The built plugin's path (building it first when this version of the source has no build yet). */
export function loginPluginPath(): string {
  const source = fs.readFileSync(SOURCE);
  const out = path.join(OUT_DIR, `veilgrid_login-${createHash('sha256').update(source).digest('hex').slice(0, 12)}.so`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const cc = spawnSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-o', tmp, SOURCE], {
    encoding: 'utf8',
  });
  if (cc.error || cc.status !== 0) {
    fs.rmSync(tmp, { force: true });
    const why = cc.error ? cc.error.message : cc.stderr.trim().split('\n').slice(0, 6).join('\n');
    throw new PluginBuildError(
      `cannot build mosquitto's veilgrid_login plugin from ${SOURCE}: ${why}\n` +
        'It needs gcc and the mosquitto plugin headers (Debian: apt-get install gcc mosquitto-dev libmosquitto-dev).',
    );
  }
  fs.renameSync(tmp, out);
  return out;
}
