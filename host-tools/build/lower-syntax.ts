// Lowers the bundle's ES2015+ syntax that Espruino lacks with TypeScript 5.9 targeting ES5 (the last
// TypeScript line that still emits ES5: TypeScript 7 no longer does). Without downlevelIteration, for-of and
// spread become index loops over arrays, so no Symbol.iterator code is emitted; per-iteration `let`
// closures become `_loop_1` functions; class fields move into constructors. Then the output is made to
// mean on Espruino what it means in JavaScript: vars declared in nested statements are declared on function
// entry (hoist-vars.ts), and the __spreadArray helper reads slice from an array, not from Array.prototype
// (where Espruino has no methods: docs/espruino-differences.md).
import ts from 'typescript';
import { hoistVarDeclarations } from './hoist-vars.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export class LoweringError extends VeilgridError {
  constructor(message: string) {
    super('LoweringError', 'lowering', message);
  }
}

const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES5,
  module: ts.ModuleKind.CommonJS, // the bundle has no import/export, so no module wrapper is emitted
  allowJs: true,
  downlevelIteration: false,
  importHelpers: false,
  noEmitHelpers: false,
  removeComments: false,
  useDefineForClassFields: false,
  newLine: ts.NewLineKind.LineFeed,
};

/** Returns `code` (one script) lowered to ES5; throws LoweringError on anything TypeScript refuses. */
export function lowerToEs5(code: string, fileName: string): string {
  const result = ts.transpileModule(code, { fileName, compilerOptions: COMPILER_OPTIONS, reportDiagnostics: true });
  const errors = (result.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    const lines = errors.map((d) => {
      const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
      const text = ts.flattenDiagnosticMessageText(d.messageText, ' ');
      return where ? `${fileName}:${where.line + 1}:${where.character + 1} ${text}` : `${fileName}: ${text}`;
    });
    throw new LoweringError('TypeScript could not lower the bundle to ES5:\n' + lines.join('\n'));
  }
  return hoistVarDeclarations(espruinoHelpers(result.outputText));
}

/** TypeScript's __spreadArray with `[].slice` for `Array.prototype.slice`, which Espruino leaves undefined. */
function espruinoHelpers(code: string): string {
  return code.replace(/var __spreadArray = [\s\S]*?\n};\n/, (helper) =>
    helper.split('Array.prototype.slice.call(').join('[].slice.call('),
  );
}
