// `veilgrid check FILE`: runs the Espruino profile check alone on a JavaScript file.
import { readFile } from 'node:fs/promises';
import { CliError, parseOptions, type Command } from '../cli/command.ts';
import { checkEspruinoProfile } from '../../espruino-profile/profile-check.ts';

export const command: Command = {
  help: [
    'usage: veilgrid check FILE',
    '',
    'Reads FILE (JavaScript) and lists everything Espruino 2v29 (ESP32 build) cannot parse, runs',
    'differently, or lacks: one line per violation, "FILE:line:col  construct  what to do instead".',
    'Exits 1 when there is any violation, 0 when the file passes.',
  ].join('\n'),

  async run(argv) {
    const { positionals } = parseOptions(argv, {}, true);
    if (positionals.length !== 1) throw new CliError('give exactly one FILE to check (see --help)');
    const file = positionals[0];
    let code: string;
    try {
      code = await readFile(file, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
    }
    const violations = checkEspruinoProfile(code, file);
    for (const v of violations) console.log(`${file}:${v.line}:${v.column}  ${v.construct}  ${v.message}`);
    if (violations.length > 0) return 1;
    console.log(`${file}: passes the Espruino 2v29 profile check`);
    return 0;
  },
};
