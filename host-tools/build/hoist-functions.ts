// Espruino binds a function declaration only when execution reaches it (no hoisting: src/jsparse.c
// jspeStatementFunctionDecl runs where it stands; docs/espruino-differences.md), while JavaScript makes it
// callable from the top of its scope. Moving every declaration to the top of the body it sits in gives
// Espruino the binding order JavaScript promises. TypeScript's ES5 classes rely on this:
// `__extends(Foo, _super)` runs before `function Foo()` in the emitted code.
import { parse } from 'acorn';
import MagicString from 'magic-string';
import { type AnyNode, eachNode } from './ast-walk.ts';

/** Start of the line holding `index` when only whitespace precedes it there, else `index`. */
function lineStartIfBlank(code: string, index: number): number {
  let i = index;
  while (i > 0 && (code[i - 1] === ' ' || code[i - 1] === '\t')) i--;
  return i === 0 || code[i - 1] === '\n' ? i : index;
}

/** Position after the line end following `index` when only whitespace follows it there, else `index`. */
function lineEndIfBlank(code: string, index: number): number {
  let i = index;
  while (i < code.length && (code[i] === ' ' || code[i] === '\t' || code[i] === '\r')) i++;
  return code[i] === '\n' ? i + 1 : index;
}

function hoistInBody(code: string, s: MagicString, statements: AnyNode[]): void {
  const firstIndex = statements.findIndex((st) => !(st.type === 'ExpressionStatement' && st.directive));
  if (firstIndex < 0) return;
  const insertAt = statements[firstIndex].start;
  const lineStart = lineStartIfBlank(code, insertAt);
  const onOwnLine = insertAt === 0 || code[lineStart - 1] === '\n' || lineStart === 0;
  const separator = onOwnLine ? '\n' + code.slice(lineStart, insertAt) : ' ';
  let seenOther = false;
  for (const statement of statements.slice(firstIndex)) {
    if (statement.type !== 'FunctionDeclaration') {
      seenOther = true;
      continue;
    }
    if (!seenOther) continue; // already in the leading run of declarations
    s.remove(lineStartIfBlank(code, statement.start), statement.start);
    s.remove(statement.end, lineEndIfBlank(code, statement.end));
    s.appendLeft(statement.end, separator);
    s.move(statement.start, statement.end, insertAt);
  }
}

/** Returns `code` with every function declaration moved to the top of its enclosing body, order kept. */
export function hoistFunctionDeclarations(code: string): string {
  const program = parse(code, {
    ecmaVersion: 'latest',
    sourceType: 'script',
    allowReturnOutsideFunction: true,
  }) as unknown as AnyNode;
  const s = new MagicString(code);
  eachNode(program, (node) => {
    if (node.type === 'Program' || node.type === 'BlockStatement' || node.type === 'StaticBlock')
      hoistInBody(code, s, node.body);
  });
  return s.toString();
}
