// `veilgrid build --board BOARD [--out FILE] [--no-minify]`: builds the firmware bundle and prints its path and size.
import { CliError, parseOptions, type Command } from '../cli/command.ts';
import { buildFirmware, BuildError } from './build-firmware.ts';
import path from 'node:path';

export const command: Command = {
  help: [
    'usage: veilgrid build --board BOARD [--out FILE] [--no-minify]',
    '',
    'Bundles firmware/src/main.ts into one script Espruino 2v29 can run: TypeScript syntax Espruino lacks is',
    'lowered to ES5, require("Storage"/"net"/"Wifi"/"crypto"/"heatshrink") stays literal, function',
    'declarations are moved where Espruino (which does not hoist) needs them, and the output is ASCII.',
    'Comments and indentation are taken out (Espruino runs the source text: it costs flash and parse time);',
    'tokens and line breaks that matter are kept as they are. Then the Espruino profile check reads the',
    'output; any violation fails the build with file:line:col.',
    '',
    'Prints the output file, its size and its build id: the first 16 hex digits of the SHA-256 of the bundle',
    'with a fixed placeholder where the id goes, then put in its place (firmware/src/version.ts BUILD_ID), so',
    'the same sources give the same id and `veilgrid flash` can tell which bundle a meter runs.',
    '',
    'options:',
    '  --board BOARD   board id: boards/BOARD.board-definition.json (e.g. esp32-meter)',
    '  --out FILE      output file (default dist/firmware/BOARD.js)',
    '  --no-minify     keep names, comments and whitespace, to read or debug the output',
  ].join('\n'),

  async run(argv) {
    const { values } = parseOptions(argv, {
      board: { type: 'string' },
      out: { type: 'string' },
      'no-minify': { type: 'boolean' },
    });
    if (!values.board) throw new CliError('--board is required, e.g. --board esp32-meter (see --help)');
    try {
      const { outFile, bytes, buildId } = await buildFirmware({
        board: values.board,
        outFile: values.out,
        minify: !values['no-minify'],
      });
      console.log(`${path.relative(process.cwd(), outFile) || outFile}  ${bytes} bytes  build ${buildId}`);
      return 0;
    } catch (err) {
      if (err instanceof BuildError) throw new CliError(err.message, 1);
      throw err;
    }
  },
};
