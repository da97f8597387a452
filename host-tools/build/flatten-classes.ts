// TypeScript's ES5 classes are wrapped in a function: `var X = /** @class */ (function (_super) {
// __extends(X, _super); function X() {…} X.prototype.m = function () {…}; return X; }(Base));`. On Espruino
// every function defined inside another keeps a link to that function's scope (src/jsparse.c
// jspeiGetScopesAsVar: a "\xFFsco" child), and the wrapper's scope stays alive as long as any method does:
// one JsVar per method and a few per class, for the meter's whole life (about 290 methods). A class whose
// wrapper holds nothing but the constructor, statements on it and `return X` means the same written at the
// top level, with the base class's name where the wrapper had its parameter; this pass writes it so.
// Wrappers holding anything else (a var, another function, a base that is not a plain name) stay as they are.
import { parse } from 'acorn';
import MagicString from 'magic-string';
import { type AnyNode, eachNode } from './ast-walk.ts';

/** True for an identifier that names a variable (not `o.name` or the key of `{ name: … }`). */
function isReference(n: AnyNode, parent: AnyNode | undefined): boolean {
  if (n.type !== 'Identifier' || !parent) return n.type === 'Identifier';
  if (parent.type === 'MemberExpression' && parent.property === n && !parent.computed) return false;
  if (parent.type === 'Property' && parent.key === n && !parent.computed) return false;
  return true;
}

/** The wrapper of `var X = (function (p) { … }(Arg))` (or `… })(Arg)`), with its argument, or undefined. */
function classWrapper(declaration: AnyNode): { fn: AnyNode; arg?: AnyNode; name: string } | undefined {
  if (declaration.type !== 'VariableDeclaration' || declaration.declarations.length !== 1) return undefined;
  const d = declaration.declarations[0];
  if (d.id.type !== 'Identifier' || !d.init || d.init.type !== 'CallExpression') return undefined;
  const call = d.init;
  if (call.callee.type !== 'FunctionExpression' || call.callee.id) return undefined;
  if (call.arguments.length > 1 || call.callee.params.length !== call.arguments.length) return undefined;
  return { fn: call.callee, arg: call.arguments[0], name: d.id.name };
}

/** True when `node` declares `name` anywhere inside (a parameter, var or function of a nested function). */
function declaresName(node: AnyNode, name: string): boolean {
  let found = false;
  eachNode(node, (n) => {
    if (n.type === 'VariableDeclarator' && n.id.type === 'Identifier' && n.id.name === name) found = true;
    if ((n.type === 'FunctionDeclaration' || n.type === 'FunctionExpression') && n.id?.name === name) found = true;
    if (n.type === 'FunctionDeclaration' || n.type === 'FunctionExpression')
      for (const p of n.params) if (p.type === 'Identifier' && p.name === name) found = true;
    if (n.type === 'CatchClause' && n.param?.type === 'Identifier' && n.param.name === name) found = true;
  });
  return found;
}

/** Returns `code` (ES5, one script) with every plain class wrapper at the top level unwrapped. */
export function flattenClasses(code: string): string {
  const program = parse(code, { ecmaVersion: 5, sourceType: 'script' }) as unknown as AnyNode;
  const s = new MagicString(code);
  for (const statement of program.body as AnyNode[]) {
    const w = classWrapper(statement);
    if (!w) continue;
    const body: AnyNode[] = w.fn.body.body;
    const last = body[body.length - 1];
    if (!last || last.type !== 'ReturnStatement' || last.argument?.type !== 'Identifier') continue;
    const inner = body.slice(0, -1);
    const constructors = inner.filter((st) => st.type === 'FunctionDeclaration');
    if (constructors.length !== 1) continue;
    // `var X = class { … }` is lowered with a constructor named class_1: it becomes X.
    const innerName: string = constructors[0].id.name;
    if (last.argument.name !== innerName) continue;
    if (!inner.every((st) => st.type === 'FunctionDeclaration' || st.type === 'ExpressionStatement')) continue;
    const param: AnyNode | undefined = w.fn.params[0];
    if (param && (param.type !== 'Identifier' || w.arg?.type !== 'Identifier')) continue;
    const renames = new Map<string, string>();
    if (param) renames.set(param.name, w.arg!.name);
    if (innerName !== w.name) renames.set(innerName, w.name);
    // Each new name must mean inside the class what it means outside it.
    if (inner.some((st) => [...renames.values()].some((name) => declaresName(st, name)))) continue;
    if (param && inner.some((st) => declaresName(st, param.name))) continue;
    for (const st of inner) {
      eachNode(st, (n, parent) => {
        const to = isReference(n, parent) ? renames.get(n.name) : undefined;
        if (to) s.overwrite(n.start, n.end, to);
      });
    }
    s.overwrite(statement.start, inner[0].start, '');
    s.overwrite(last.start, statement.end, '');
  }
  return s.toString();
}
