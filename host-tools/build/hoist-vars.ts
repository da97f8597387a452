// Espruino declares a `var` only when execution reaches the declaration (no hoisting): a `var` inside a
// branch that did not run, or a `try` block that threw before it, is "not defined" when read afterwards,
// where JavaScript gives undefined. TypeScript's ES5 helpers rely on hoisting (__spreadArray reads `ar`,
// declared in a `for` that may not run). This pass declares, at the top of every function body, each
// `var` name that is declared only inside nested statements and read outside the block that declares it
// (or before its declaration there), so both engines bind it on entry. Block-local vars (most of them:
// TypeScript's lowering of `let` and `const` in blocks) are left alone, to keep the bundle small.
import { parse } from 'acorn';
import MagicString from 'magic-string';

type AnyNode = { type: string; start: number; end: number } & Record<string, any>;

const FUNCTION_TYPES = new Set(['FunctionDeclaration', 'FunctionExpression', 'ArrowFunctionExpression']);

function isNode(value: unknown): value is AnyNode {
  return typeof value === 'object' && value !== null && typeof (value as AnyNode).type === 'string';
}

function children(node: AnyNode): AnyNode[] {
  const out: AnyNode[] = [];
  for (const key of Object.keys(node)) {
    const value = node[key];
    for (const child of Array.isArray(value) ? value : [value]) if (isNode(child)) out.push(child);
  }
  return out;
}

function declaredNames(declaration: AnyNode, into: string[]): void {
  for (const d of declaration.declarations)
    if (d.id.type === 'Identifier' && !into.includes(d.id.name)) into.push(d.id.name);
}

interface NestedVar {
  name: string;
  /** Where the declaration is, and the statement list (block) holding it. */
  at: number;
  block: AnyNode;
}

/** `var` declarations inside node, with the block each sits in, without entering nested functions. */
function nestedVars(node: AnyNode, block: AnyNode, into: NestedVar[]): void {
  if (node.type === 'VariableDeclaration' && node.kind === 'var') {
    for (const d of node.declarations)
      if (d.id.type === 'Identifier') into.push({ name: d.id.name, at: d.start, block });
  }
  for (const child of children(node)) {
    if (!FUNCTION_TYPES.has(child.type))
      nestedVars(child, child.type === 'BlockStatement' || child.type === 'SwitchCase' ? child : block, into);
  }
}

/** Positions of every identifier named `name` in node, nested functions included (shadowing ignored). */
function references(node: AnyNode, name: string, into: number[]): void {
  if (node.type === 'Identifier' && node.name === name) into.push(node.start);
  for (const child of children(node)) references(child, name, into);
}

/** True when the var must be declared on entry: it is declared in more than one place, or read outside its block or before it. */
function needsHoisting(declarations: NestedVar[], body: AnyNode[]): boolean {
  if (declarations.length !== 1) return true;
  const { at, block } = declarations[0];
  const positions: number[] = [];
  for (const st of body) references(st, declarations[0].name, positions);
  return positions.some((p) => p < at || p > block.end);
}

/** The statements of a body that are themselves var declarations (or a `for (var …)` at that level). */
function directNames(statements: AnyNode[]): string[] {
  const names: string[] = [];
  for (const st of statements) {
    if (st.type === 'VariableDeclaration' && st.kind === 'var') declaredNames(st, names);
    if (st.type === 'ForStatement' && st.init?.type === 'VariableDeclaration' && st.init.kind === 'var')
      declaredNames(st.init, names);
  }
  return names;
}

function hoistInBody(s: MagicString, statements: AnyNode[], params: AnyNode[]): void {
  const nested: NestedVar[] = [];
  for (const st of statements) {
    if (st.type === 'VariableDeclaration' || FUNCTION_TYPES.has(st.type)) continue;
    // A `for (var …)` at this level declares its init on entry to the loop: only its body is nested.
    if (st.type === 'ForStatement' && st.init?.type === 'VariableDeclaration') nestedVars(st.body, st.body, nested);
    else nestedVars(st, st, nested);
  }
  const direct = directNames(statements);
  const paramNames = params.filter((p) => p.type === 'Identifier').map((p) => p.name);
  const names: string[] = [];
  for (const v of nested) {
    if (names.includes(v.name) || direct.includes(v.name) || paramNames.includes(v.name)) continue;
    if (
      needsHoisting(
        nested.filter((other) => other.name === v.name),
        statements,
      )
    )
      names.push(v.name);
  }
  if (names.length === 0) return;
  const first = statements.find((st) => !(st.type === 'ExpressionStatement' && st.directive));
  if (!first) return;
  const lineStart = s.original.lastIndexOf('\n', first.start - 1) + 1;
  const indent = /^[ \t]*/.exec(s.original.slice(lineStart, first.start))![0];
  s.appendLeft(first.start, 'var ' + names.join(', ') + ';\n' + indent);
}

/** Returns `code` with every var that is declared only in nested statements also declared on function entry. */
export function hoistVarDeclarations(code: string): string {
  const program = parse(code, {
    ecmaVersion: 'latest',
    sourceType: 'script',
    allowReturnOutsideFunction: true,
  }) as unknown as AnyNode;
  const s = new MagicString(code);
  const visit = (node: AnyNode): void => {
    if (node.type === 'Program') hoistInBody(s, node.body, []);
    if (FUNCTION_TYPES.has(node.type) && node.body.type === 'BlockStatement')
      hoistInBody(s, node.body.body, node.params);
    for (const child of children(node)) visit(child);
  };
  visit(program);
  return s.toString();
}
