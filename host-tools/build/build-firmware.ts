// `veilgrid build`: turns firmware/src/main.ts into the one script Espruino 2v29 runs (ES5 syntax, where
// it differs from V8 as docs/espruino-differences.md says). Steps: esbuild bundles (Espruino modules stay
// literal `require("…")`, async/generators refused at their source line) → the profile check on the
// bundle, reported at TypeScript source positions, for what lowering cannot fix → TypeScript lowers to ES5 → built-in subclasses keep their
// prototype → classes leave their ES5 wrapper functions (flatten-classes.ts) → function declarations move to the top of their bodies → non-ASCII becomes escapes → the
// profile check on the lowered code (reported at its lines, with the module each came from) → the bundle's own
// names are shortened inside one wrapping function (shorten-names.ts) and comments and whitespace are taken
// out (compact-whitespace.ts); --no-minify skips both, for reading the output → the profile check on the
// final bytes. Any violation fails the build. Last, the build id is computed from
// those bytes and put in place of its placeholder (BUILD_ID_PLACEHOLDER, `buildIdOf`). The board's facts
// (pins, raw flash) go in at bundling, from its board definition (`firmwareBoardFacts`).
import { build, type Message } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkEspruinoProfile, type Violation } from '../../espruino-profile/profile-check.ts';
import { lowerToEs5, LoweringError } from './lower-syntax.ts';
import { fixBuiltinSubclasses } from './fix-builtin-subclasses.ts';
import { hoistFunctionDeclarations } from './hoist-functions.ts';
import { flattenClasses } from './flatten-classes.ts';
import { SourceMapLookup } from './source-map-lookup.ts';
import { compactWhitespace } from './compact-whitespace.ts';
import { shortenNames, ShortenNamesError } from './shorten-names.ts';
import { BoardDefinitionError, loadBoardDefinition, type BoardDefinition } from '../../boards/board-definition.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Espruino's built-in modules: left as literal require("…") so the device (and EspruinoTools) resolve them. */
export const ESPRUINO_MODULES = ['Storage', 'Flash', 'net', 'Wifi', 'crypto', 'heatshrink', 'TelnetServer'];

/**
 * Prefixes of construct names the ES5 lowering rewrites, so finding them in the bundle before lowering is
 * not an error. Whatever lowering leaves behind, the check on the final output still catches.
 */
const LOWERED_CONSTRUCTS = [
  'destructuring',
  'rest parameter',
  'spread',
  'default parameter',
  'computed key',
  'computed class member key',
  'class member named',
  'optional chaining ?.',
  'exponent operator **',
  'exponent assignment **=',
  'logical assignment',
  'class field without initialiser',
  'class instance field',
  'static block',
  'closure over a for (',
  'function used before its declaration',
  'tagged template',
  'extends <expression>',
  'new.target',
  'non-ASCII character', // only in comments (esbuild escapes strings); escapeNonAscii rewrites them
];

/**
 * What esbuild puts for `__VEILGRID_BUILD_ID__` (firmware/src/version.ts): 16 characters like the id that
 * replaces it, so the bundle keeps its size, and not hex, so it can never be mistaken for an id.
 */
export const BUILD_ID_PLACEHOLDER = 'VEILGRID-BUILDID';

/**
 * The build id of a bundle holding the placeholder: the first 16 hex digits of the SHA-256 of its bytes
 * (latin1, as written to flash). The same sources and options give the same bundle, so the same id.
 */
export function buildIdOfPlaceholderBundle(code: string): string {
  return createHash('sha256').update(code, 'latin1').digest('hex').slice(0, 16);
}

/**
 * The build id a finished bundle carries (as `veilgrid build` produced it), or undefined when it carries
 * none that checks out: every 16-hex-digit string literal is tried by putting the placeholder back in its
 * place and hashing; the one that hashes to itself is the id. So a bundle's id is verified, not trusted.
 */
export function buildIdOf(code: string): string | undefined {
  const candidates = new Set(Array.from(code.matchAll(/["']([0-9a-f]{16})["']/g), (m) => m[1]));
  for (const id of candidates) {
    if (buildIdOfPlaceholderBundle(code.split(id).join(BUILD_ID_PLACEHOLDER)) === id) return id;
  }
  return undefined;
}

export interface LocatedViolation extends Violation {
  file: string;
}

export interface BuildOptions {
  board: string;
  /** Entry module; default firmware/src/main.ts. */
  entry?: string;
  /** Output file; default dist/firmware/<board>.js. */
  outFile?: string;
  /**
   * Shorten the bundle's own names and take comments and whitespace out (default true): Espruino runs
   * the source text, so they cost flash, RAM and parse time. False keeps the lowered code as it is, for
   * reading it.
   */
  minify?: boolean;
}

export interface BuildResult {
  outFile: string;
  bytes: number;
  violations: LocatedViolation[];
  /** The bundle's build id (`buildIdOf`), also what firmware/src/version.ts BUILD_ID holds on the device. */
  buildId: string;
}

/** The firmware cannot be built; `violations` (possibly empty) holds every located problem. */
export class BuildError extends VeilgridError {
  constructor(
    message: string,
    readonly violations: LocatedViolation[] = [],
  ) {
    super(
      'BuildError',
      violations.length === 0 ? 'build' : 'profile-violation',
      violations.length === 0
        ? message
        : message +
            '\n' +
            violations.map((v) => `${v.file}:${v.line}:${v.column} ${v.construct} — ${v.message}`).join('\n'),
    );
  }
}

/**
 * The facts of a board definition the firmware reads (firmware/src/platform/board.ts `BoardFacts`), which
 * the build puts into the bundle as __VEILGRID_BOARD__: only these, so the bundle carries no other bytes.
 */
export function firmwareBoardFacts(def: BoardDefinition) {
  return {
    pins: { i2cScl: def.pins.i2cScl, i2cSda: def.pins.i2cSda },
    rawFlash: def.rawFlash.map(({ addr, bytes, storageAddr }) => ({ addr, bytes, storageAddr })),
  };
}

/** Builds the firmware for `board` and writes it; throws BuildError naming every problem. */
export async function buildFirmware(options: BuildOptions): Promise<BuildResult> {
  let definition: BoardDefinition;
  try {
    definition = loadBoardDefinition(options.board);
  } catch (err) {
    if (err instanceof BoardDefinitionError) throw new BuildError(err.message);
    throw err;
  }
  const entry = path.resolve(options.entry ?? path.join(REPO_ROOT, 'firmware/src/main.ts'));
  if (!existsSync(entry)) throw new BuildError(`entry ${path.relative(process.cwd(), entry) || entry} does not exist`);
  const outFile = path.resolve(options.outFile ?? path.join(REPO_ROOT, 'dist/firmware', options.board + '.js'));
  const shownOut = path.relative(process.cwd(), outFile) || outFile;

  const facts = firmwareBoardFacts(definition);
  const bundle = await bundleEntry(entry, outFile, { __VEILGRID_BOARD__: JSON.stringify(facts) });
  const sourceViolations = checkEspruinoProfile(bundle.code)
    .filter((v) => !LOWERED_CONSTRUCTS.some((c) => v.construct.startsWith(c)))
    .map((v) => locateInSource(v, bundle.map, shownOut));
  if (sourceViolations.length > 0)
    throw new BuildError('the firmware uses what Espruino 2v29 cannot run:', sourceViolations);

  let code: string;
  try {
    code = lowerToEs5(bundle.code, shownOut);
  } catch (err) {
    if (err instanceof LoweringError) throw new BuildError(err.message);
    throw err;
  }
  code = escapeNonAscii(hoistFunctionDeclarations(flattenClasses(fixBuiltinSubclasses(code))));

  const violations = checkEspruinoProfile(code, shownOut).map((v) => ({
    ...v,
    file: shownOut,
    message: v.message + fromModule(code, v.line),
  }));
  if (violations.length > 0)
    throw new BuildError('the lowered bundle still holds what Espruino 2v29 cannot run:', violations);

  if (options.minify !== false) {
    try {
      code = compactWhitespace(await shortenNames(code));
    } catch (err) {
      if (err instanceof ShortenNamesError)
        throw new BuildError(err.message + ' (a build tool bug: build with --no-minify meanwhile)');
      throw err;
    }
    const compacted = checkEspruinoProfile(code, shownOut).map((v) => ({ ...v, file: shownOut }));
    if (compacted.length > 0) {
      throw new BuildError(
        'shortening the bundle produced what Espruino 2v29 cannot run (a build tool bug: build with --no-minify meanwhile):',
        compacted,
      );
    }
  }

  const buildId = buildIdOfPlaceholderBundle(code);
  code = code.split(BUILD_ID_PLACEHOLDER).join(buildId);

  await mkdir(path.dirname(outFile), { recursive: true });
  await writeFile(outFile, code, 'latin1');
  return { outFile, bytes: Buffer.byteLength(code, 'latin1'), violations: [], buildId };
}

async function bundleEntry(
  entry: string,
  outFile: string,
  boardDefines: Record<string, string>,
): Promise<{ code: string; map: SourceMapLookup }> {
  try {
    const result = await build({
      entryPoints: [entry],
      outfile: outFile,
      bundle: true,
      write: false,
      format: 'cjs', // keeps require("Storage") literal; iife would rewrite it to __require (§1.3)
      platform: 'neutral',
      external: ESPRUINO_MODULES,
      target: 'esnext', // syntax lowering is TypeScript's job; esbuild only refuses what cannot be lowered
      supported: { 'async-await': false, 'async-generator': false, 'for-await': false, generator: false },
      charset: 'ascii',
      minify: false, // esbuild's identifier mangling can produce `of`, a reserved word on Espruino
      sourcemap: 'external',
      tsconfig: path.join(REPO_ROOT, 'firmware/tsconfig.json'),
      define: { __VEILGRID_BUILD_ID__: JSON.stringify(BUILD_ID_PLACEHOLDER), ...boardDefines },
      logLevel: 'silent',
    });
    const js = result.outputFiles.find((f) => f.path.endsWith('.js'))!;
    const map = result.outputFiles.find((f) => f.path.endsWith('.map'))!;
    return { code: js.text, map: new SourceMapLookup(JSON.parse(map.text), path.dirname(map.path), process.cwd()) };
  } catch (err) {
    const errors = (err as { errors?: Message[] }).errors;
    if (!errors) throw err;
    throw new BuildError('esbuild could not bundle the firmware:', errors.map(describeEsbuildError));
  }
}

function describeEsbuildError(e: Message): LocatedViolation {
  const where = { file: e.location?.file ?? '?', line: e.location?.line ?? 0, column: (e.location?.column ?? 0) + 1 };
  if (/async functions|await/.test(e.text)) {
    return {
      ...where,
      construct: 'async function',
      message: 'Espruino has no async/await: return a Promise and chain .then(), or use callbacks',
    };
  }
  if (/generator/.test(e.text)) {
    return {
      ...where,
      construct: 'generator',
      message: 'Espruino has no generators: write an explicit iterator object or use callbacks',
    };
  }
  return { ...where, construct: 'esbuild', message: e.text };
}

function locateInSource(v: Violation, map: SourceMapLookup, bundleName: string): LocatedViolation {
  const original = map.original(v.line, v.column);
  return original ? { ...v, ...original } : { ...v, file: bundleName };
}

/** Names the firmware module a bundle line came from, using esbuild's `// path` markers. */
function fromModule(code: string, line: number): string {
  const lines = code.split('\n').slice(0, line).reverse();
  const marker = lines.find((l) => /^\s*\/\/ \S+\.ts$/.test(l));
  return marker ? ` (from ${marker.trim().slice(3)})` : '';
}

/** ESP32 strings are 8-bit: bytes 0x80-0xFF become \xHH; anything above stays \uHHHH so the check rejects it. */
function escapeNonAscii(code: string): string {
  return code.replace(/[^\x00-\x7f]/g, (c) => {
    const n = c.charCodeAt(0);
    return n <= 0xff ? '\\x' + n.toString(16).padStart(2, '0') : '\\u' + n.toString(16).padStart(4, '0');
  });
}
