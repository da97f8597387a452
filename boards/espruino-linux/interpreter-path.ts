// Where the real Espruino 2v29 interpreter built for Linux is: VEILGRID_ESPRUINO_BIN, else
// ../shared/espruino/espruino-2v29-esp32like beside the repository (resolved from the repository root,
// not the working directory). Callers that find none skip the real-interpreter part and say so.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is boards/espruino-linux/interpreter-path.ts). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const DEFAULT_INTERPRETER = path.resolve(REPO_ROOT, '..', 'shared', 'espruino', 'espruino-2v29-esp32like');

/**
 * The interpreter's path, or undefined when there is none. A VEILGRID_ESPRUINO_BIN that names a missing
 * file is an error (a typo should not silently skip the real-interpreter tests).
 */
export function espruinoInterpreterPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const configured = env.VEILGRID_ESPRUINO_BIN;
  if (configured) {
    const resolved = path.resolve(REPO_ROOT, configured);
    if (!existsSync(resolved))
      throw new Error(
        `VEILGRID_ESPRUINO_BIN is ${configured}, but there is no file ${resolved}: point it at the espruino-2v29-esp32like binary or unset it`,
      );
    return resolved;
  }
  return existsSync(DEFAULT_INTERPRETER) ? DEFAULT_INTERPRETER : undefined;
}
