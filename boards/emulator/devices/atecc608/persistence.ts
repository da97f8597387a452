// An emulated board's ATECC608: attached to its I2C bus at 0x60 and kept in a JSON file next to
// the board's flash file, rewritten whenever a command changes the EEPROM, so the chip keeps its
// keys, locks and counters across power cycles and runs like the flash does.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { I2CBus } from '../../pins.ts';
import { Atecc608 } from './atecc608.ts';

/** 7-bit I2C address of the ATECC608 (0xC0 in 8-bit form). */
export const ATECC608_ADDRESS = 0x60;

/** `<flashPath>.atecc608.json` */
export function eepromPathFor(flashPath: string): string {
  return `${flashPath}.atecc608.json`;
}

export function attachAtecc608(opts: { bus: I2CBus; clock: { now(): number }; flashPath?: string }): Atecc608 {
  const path = opts.flashPath === undefined ? undefined : eepromPathFor(opts.flashPath);
  let chip: Atecc608;
  if (path && existsSync(path)) {
    try {
      chip = Atecc608.fromJSON(JSON.parse(readFileSync(path, 'utf8')), { clock: opts.clock });
    } catch (err) {
      throw new Error(`${path}: ${(err as Error).message}`);
    }
  } else {
    chip = new Atecc608({ clock: opts.clock });
  }
  if (path) {
    const save = (json: unknown) => {
      // Write-then-rename so a crash of the host never leaves half a file.
      // 0600: the model's EEPROM holds the private keys.
      writeFileSync(`${path}.tmp`, JSON.stringify(json), { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    };
    if (!existsSync(path)) save(chip.toJSON());
    chip.onEepromChange(save);
  }
  opts.bus.attach(ATECC608_ADDRESS, chip);
  return chip;
}
