// `veilgrid build --board BOARD [--out FILE]`: builds the firmware bundle and prints its path and size.
import { CliError, parseOptions, type Command } from '../cli/command.ts';
import { buildFirmware, BuildError } from './build-firmware.ts';
import path from 'node:path';

export const command: Command = {
  help: [
    'usage: veilgrid build --board BOARD [--out FILE]',
    '',
    'Bundles firmware/src/main.ts into one script Espruino 2v29 can run: TypeScript syntax Espruino lacks is',
    'lowered to ES5, require("Storage"/"net"/"Wifi"/"crypto"/"heatshrink") stays literal, function',
    'declarations are moved where Espruino (which does not hoist) needs them, and the output is ASCII.',
    'Then the Espruino profile check reads the output; any violation fails the build with file:line:col.',
    '',
    'options:',
    '  --board BOARD   board id, one of boards/*.json (e.g. esp32-meter)',
    '  --out FILE      output file (default dist/firmware/BOARD.js)',
  ].join('\n'),

  async run(argv) {
    const { values } = parseOptions(argv, { board: { type: 'string' }, out: { type: 'string' } });
    if (!values.board) throw new CliError('--board is required, e.g. --board esp32-meter (see --help)');
    try {
      const { outFile, bytes } = await buildFirmware({ board: values.board, outFile: values.out });
      console.log(`${path.relative(process.cwd(), outFile) || outFile}  ${bytes} bytes`);
      return 0;
    } catch (err) {
      if (err instanceof BuildError) throw new CliError(err.message, 1);
      throw err;
    }
  },
};
