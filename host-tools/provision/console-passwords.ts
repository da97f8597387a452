// The meters' console passwords, for the operator: provisioning generates one per meter, writes it into
// the meter's vg.config (the firmware locks its console with it at every boot: firmware/src/platform/
// console-lock.ts) and keeps it here, in the operator folder, so `veilgrid provision` and `veilgrid flash`
// can unlock the console again. The file is <operator-dir>/console-passwords.json, mode 0600, JSON
// { "<meter id>": "<password>" }: plain text because the tools must type it; never printed unless asked
// (`veilgrid provision --show-console-password`). Why the operator folder and not the broker folder: the
// broker's host and the DSO read the broker folder and have no business at a meter's console.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { consolePasswordProblem } from '../../firmware/src/protocol/meter-config.ts';
import { writePrivateFile } from '../operator/operator-key.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export const CONSOLE_PASSWORDS_FILE = 'console-passwords.json';

/** A new console password: 15 random bytes, base64url, 20 characters (Espruino's limit; 120 bits). */
export function generateConsolePassword(): string {
  return randomBytes(15).toString('base64url');
}

export class ConsolePasswordStoreError extends VeilgridError {
  constructor(message: string) {
    super('ConsolePasswordStoreError', 'console-password-store', message);
  }
}

export class ConsolePasswords {
  constructor(readonly dir: string) {}

  get file(): string {
    return path.join(this.dir, CONSOLE_PASSWORDS_FILE);
  }

  /** The stored console password of meterId, if any. */
  get(meterId: string): string | undefined {
    return this.read()[meterId];
  }

  /** Stores (or replaces) meterId's console password; the file is rewritten 0600 as a whole. */
  set(meterId: string, password: string): void {
    const problem = consolePasswordProblem(password);
    if (problem) throw new ConsolePasswordStoreError(`cannot store the console password of ${meterId}: ${problem}`);
    const all = this.read();
    if (all[meterId] === password) return;
    all[meterId] = password;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writePrivateFile(this.file, JSON.stringify(all, null, 2) + '\n');
  }

  private read(): Record<string, string> {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new ConsolePasswordStoreError(`cannot read ${this.file}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ConsolePasswordStoreError(
        `${this.file} is not JSON (${(err as Error).message}): restore it from a backup`,
      );
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new ConsolePasswordStoreError(`${this.file} must hold one JSON object, meter id → console password`);
    const out: Record<string, string> = Object.create(null);
    for (const [id, value] of Object.entries(parsed as Record<string, unknown>)) {
      if (typeof value !== 'string')
        throw new ConsolePasswordStoreError(`${this.file}: the entry of ${id} is not a string`);
      out[id] = value;
    }
    return out;
  }
}

/** What to tell the technician when a meter's locked console could not be opened (no password stored, or refused). */
export function lockedConsoleAdvice(problem: 'no-password' | 'refused', meterId: string, file: string): string {
  if (problem === 'refused') {
    return (
      `the meter's console is locked and refused the console password stored for meter "${meterId}" in ${file}: ` +
      'is this board another meter (check --meter-id against its label), or was that file replaced by an older copy?'
    );
  }
  return (
    `the meter's console is locked and no console password is stored for meter "${meterId}" in ${file}: ` +
    'if this board is another meter, give its --meter-id (check its label); if it was provisioned with another operator folder, use that one; ' +
    'if the file was lost, restore it from a backup (without one, only someone with the board can recover it: read vg.config from a flash dump, ' +
    'or erase the flash and flash Espruino and the firmware again)'
  );
}
