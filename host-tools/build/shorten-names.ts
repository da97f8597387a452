// Gives the bundle's own variables and functions short names. Espruino keeps the source text and looks
// names up as strings at run time, so long names cost flash, RAM where code is not memory-mapped (the
// Linux interpreter loads .bootcde into JsVars) and parse time on every call.
//
// The bundle is first wrapped in a function so that nothing it declares is a global any more: renaming
// top-level names is then safe (the console entry points are set on `global` by name, never by
// declaration), and none of the bundle's names can shadow one of Espruino's globals (pins D0…D39, `E`,
// `LED1` …) for someone typing at the console. Only names are changed: terser's compressor stays off (it
// reorders and rewrites statements, which the hoisting pass and Espruino's parser depend on), numbers keep
// their text (`1000` reprinted as `1e3` would be a float on Espruino) and output stays ASCII.
import { minify } from 'terser';

/** Words Espruino 2v29's lexer reserves beyond ES5's, and names terser must not invent for other reasons. */
const RESERVED = ['of', 'let', 'static', 'yield', 'await', 'async', 'class', 'extends', 'super', 'const', 'undefined', 'NaN', 'Infinity', 'global'];

export class ShortenNamesError extends Error {}

/** `code` (one ES5 script) inside a function, its own names shortened, formatted one statement a line. */
export async function shortenNames(code: string): Promise<string> {
  const wrapped = '(function () {\n' + code + '\n})();\n';
  try {
    const result = await minify(wrapped, {
      ecma: 5,
      compress: false,
      mangle: { reserved: RESERVED, toplevel: false },
      format: { ascii_only: true, keep_numbers: true, beautify: true, comments: false, indent_level: 0 },
    });
    if (result.code === undefined) throw new ShortenNamesError('terser returned no code');
    return result.code + '\n';
  } catch (err) {
    if (err instanceof ShortenNamesError) throw err;
    throw new ShortenNamesError(`shortening names failed: ${(err as Error).message}`);
  }
}
