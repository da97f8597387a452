// Gives the bundle's own variables and functions short names. Espruino keeps the source text and looks
// names up as strings at run time, so long names cost flash, RAM where code is not memory-mapped (the
// Linux interpreter loads .bootcde into JsVars) and parse time on every call.
//
// Top-level names are renamed too: nothing outside the bundle refers to them (the console entry points are
// set on `global` by name, never by declaration). Wrapping the bundle in a function instead would keep its
// names off the global object, but costs about 800 JsVars in the real interpreter: every function defined
// inside another keeps a link to that scope. So the generated names must not shadow an Espruino global:
// the short ones the 2v29 interpreter has are `E` and the pins D0…D47 (found by evaluating every one- and
// two-character name there, and D10…D47). Only names are changed: terser's compressor stays off (it
// reorders and rewrites statements, which the hoisting pass and Espruino's parser depend on), numbers keep
// their text (`1000` reprinted as `1e3` would be a float on Espruino) and output stays ASCII.
import { minify } from 'terser';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

/** Words Espruino 2v29's lexer reserves beyond ES5's, and its globals with names as short as generated ones. */
const RESERVED = [
  'of',
  'let',
  'static',
  'yield',
  'await',
  'async',
  'class',
  'extends',
  'super',
  'const',
  'undefined',
  'NaN',
  'Infinity',
  'global',
  'E',
  ...Array.from({ length: 48 }, (_, pin) => 'D' + pin),
];

export class ShortenNamesError extends VeilgridError {
  constructor(message: string) {
    super('ShortenNamesError', 'shorten-names', message);
  }
}

/** `code` (one ES5 script) with its own names shortened, formatted one statement a line. */
export async function shortenNames(code: string): Promise<string> {
  try {
    const result = await minify(code, {
      ecma: 5,
      compress: false,
      mangle: { reserved: RESERVED, toplevel: true },
      format: { ascii_only: true, keep_numbers: true, beautify: true, comments: false, indent_level: 0 },
    });
    if (result.code === undefined) throw new ShortenNamesError('terser returned no code');
    return result.code + '\n';
  } catch (err) {
    if (err instanceof ShortenNamesError) throw err;
    throw new ShortenNamesError(`shortening names failed: ${(err as Error).message}`);
  }
}
