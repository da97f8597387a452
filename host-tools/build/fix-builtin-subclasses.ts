// ES5 classes call the base constructor as `_super.call(this, …) || this`. For a built-in base such as
// Error the call ignores `this` and returns a fresh Error, so the instance loses its class: `instanceof
// ConfigError` is false and methods of the subclass are missing — on Espruino and in Node alike. This pass
// wraps every such call in a helper that gives the returned object the subclass's prototype when it lacks it
// (a no-op for ordinary base classes, whose call returns `this`). Such a class also gets a toString
// (`name: message`): Espruino turns an object whose prototype is not a built-in's own into "[object Object]"
// when it makes it a string, so an uncaught ConfigError printed `Uncaught [object Object]`.
import { parse } from 'acorn';
import MagicString from 'magic-string';

type AnyNode = { type: string; start: number; end: number } & Record<string, any>;

const HELPER_NAME = '__vgOwnPrototype';
const HELPER =
  `function ${HELPER_NAME}(self, Class) {\n` +
  '    if (Object.getPrototypeOf(self) !== Class.prototype) {\n' +
  '        Object.setPrototypeOf(self, Class.prototype);\n' +
  "        if (!Class.prototype.hasOwnProperty('toString')) Object.defineProperty(Class.prototype, 'toString', { value: function () { return this.name + ': ' + this.message; }, writable: true, configurable: true });\n" +
  '    }\n' +
  '    return self;\n}\n';

function isNode(value: unknown): value is AnyNode {
  return typeof value === 'object' && value !== null && typeof (value as AnyNode).type === 'string';
}

function eachNode(
  node: AnyNode,
  visit: (node: AnyNode, ancestors: AnyNode[]) => void,
  ancestors: AnyNode[] = [],
): void {
  visit(node, ancestors);
  ancestors.push(node);
  for (const key of Object.keys(node)) {
    const value = node[key];
    for (const child of Array.isArray(value) ? value : [value]) if (isNode(child)) eachNode(child, visit, ancestors);
  }
  ancestors.pop();
}

/** True for `_super.call(this, …)` / `_super.apply(this, …)` where `_super` is the lowered class's base. */
function isSuperCall(node: AnyNode, superName: string): boolean {
  return (
    node.type === 'CallExpression' &&
    node.callee.type === 'MemberExpression' &&
    node.callee.object.type === 'Identifier' &&
    node.callee.object.name === superName &&
    !node.callee.computed &&
    (node.callee.property.name === 'call' || node.callee.property.name === 'apply') &&
    node.arguments[0]?.type === 'ThisExpression'
  );
}

function containsSuperCall(node: AnyNode, superName: string): boolean {
  let found = false;
  eachNode(node, (n) => {
    if (isSuperCall(n, superName)) found = true;
  });
  return found;
}

/** Returns `code` with every `<super call> || this` in a lowered constructor keeping the subclass prototype. */
export function fixBuiltinSubclasses(code: string): string {
  const program = parse(code, {
    ecmaVersion: 'latest',
    sourceType: 'script',
    allowReturnOutsideFunction: true,
  }) as unknown as AnyNode;
  const s = new MagicString(code);
  let changed = false;
  eachNode(program, (node, ancestors) => {
    if (node.type !== 'LogicalExpression' || node.operator !== '||' || node.right.type !== 'ThisExpression') return;
    const functions = ancestors.filter((a) => a.type === 'FunctionDeclaration' || a.type === 'FunctionExpression');
    const constructor = functions[functions.length - 1];
    const classWrapper = functions[functions.length - 2];
    if (!constructor || constructor.type !== 'FunctionDeclaration' || !classWrapper) return;
    const superName: string | undefined = classWrapper.params[0]?.name;
    if (!superName || !containsSuperCall(node.left, superName)) return;
    s.appendLeft(node.start, HELPER_NAME + '(');
    s.appendRight(node.end, ', ' + constructor.id.name + ')');
    changed = true;
  });
  if (!changed) return code;
  // After the directive prologue ("use strict"), which must stay first to remain a directive.
  const prologue = program.body.filter(
    (st: AnyNode, i: number) =>
      st.type === 'ExpressionStatement' && st.directive && program.body.slice(0, i).every((p: AnyNode) => p.directive),
  );
  const at = prologue.length > 0 ? prologue[prologue.length - 1].end : 0;
  s.appendRight(at, at === 0 ? HELPER : '\n' + HELPER);
  return s.toString();
}
