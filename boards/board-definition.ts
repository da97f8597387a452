// Board definitions: veilgrid's description of each board it builds for and emulates, one
// boards/<id>.board-definition.json per board (e.g. boards/esp32-meter.board-definition.json). The build,
// the emulator, provisioning and the tests read the same file, so pins and storage size agree everywhere.
// Not to be confused with the Espruino CLI's board file (boards/espruino/<id>.espruino-board.json,
// EspruinoTools' own schema: firmware version and built-in modules, for uploads).

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VeilgridError } from '../firmware/src/protocol/veilgrid-error.ts';

export interface BoardDefinition {
  id: string;
  description: string;
  espruino: { version: string; build: string };
  /** Named pins (GPIO numbers). */
  pins: { s0Import: number; s0Export: number; i2cScl: number; i2cSda: number; led: number; [name: string]: number };
  /** Espruino Storage area: flash address, total bytes and flash page (erase unit) size. */
  storage: { addr: number; bytes: number; pageBytes: number };
  /**
   * Raw flash partitions for the firmware's power-safe rings (require("Flash")), in order of preference;
   * the firmware takes the first inside Flash.getFree() (firmware/src/persist/partition.ts). `storageAddr`
   * marks one inside the Storage area of the interpreter it is meant for.
   */
  rawFlash: { addr: number; bytes: number; storageAddr?: number; where: string }[];
  /** JsVar ceiling of the build; the emulator does not model JsVar use (it cannot measure it honestly). */
  jsVars: number;
  console: { baud: number };
}

/** A board id that has no definition, or a definition file that is not one. */
export class BoardDefinitionError extends VeilgridError {
  constructor(code: 'unknown-board' | 'bad-board-definition', message: string) {
    super('BoardDefinitionError', code, message);
  }
}

const BOARDS_DIR = dirname(fileURLToPath(import.meta.url));
const SUFFIX = '.board-definition.json';

/** Ids of every board definition in boards/. */
export function listBoardDefinitions(): string[] {
  return readdirSync(BOARDS_DIR)
    .filter((f) => f.endsWith(SUFFIX))
    .map((f) => f.slice(0, -SUFFIX.length))
    .sort();
}

export function loadBoardDefinition(id: string): BoardDefinition {
  const known = listBoardDefinitions();
  if (!/^[a-z0-9][a-z0-9-]*$/.test(id) || !known.includes(id)) {
    throw new BoardDefinitionError(
      'unknown-board',
      `unknown board "${id}": known boards are ${known.join(', ') || '(none)'} (boards/<id>${SUFFIX} in ${BOARDS_DIR})`,
    );
  }
  const file = join(BOARDS_DIR, id + SUFFIX);
  const def = JSON.parse(readFileSync(file, 'utf8')) as BoardDefinition;
  if (def.id !== id)
    throw new BoardDefinitionError(
      'bad-board-definition',
      `${file}: "id" is "${def.id}" but the file is named for "${id}"; make them match`,
    );
  for (const key of ['pins', 'storage', 'espruino', 'rawFlash'] as const) {
    if (typeof def[key] !== 'object' || def[key] === null)
      throw new BoardDefinitionError('bad-board-definition', `${file}: missing "${key}" object`);
  }
  return def;
}
