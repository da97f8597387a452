// The Espruino profile check: reads JavaScript and lists everything Espruino 2v29 (ESP32 build) cannot
// parse, runs differently, or lacks (src/jsparse.c, src/jslex.c and the /*JSON{…}*/ blocks of src/jswrap_*.c
// at RELEASE_2V29; docs/espruino-differences.md). The emulator cannot model Espruino's parser,
// so this check is the gate between the build and any board, real or emulated.
import { parse, type Node, type Options } from 'acorn';
import { checkRegexProfile } from './regex-profile.ts';
import { FORBIDDEN_GLOBALS, FORBIDDEN_METHODS, MEMBER_ADVICE, NAMESPACE_MEMBERS } from './forbidden-globals.ts';

export interface Violation {
  construct: string;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  column: number;
  /** What to write instead. */
  message: string;
}

// acorn's node types are loose for our purposes: every check reads a few well-known fields.
type AnyNode = Node & Record<string, any>;
interface Step {
  node: AnyNode;
  key: string;
}

/** Words Espruino's lexer reserves that JavaScript still allows as names (src/jslex.h). */
const ESPRUINO_ONLY_RESERVED = new Set(['of', 'static']);
/** Words Espruino's lexer turns into keywords, so a class member cannot be named by them. */
const ESPRUINO_RESERVED = new Set([
  'if',
  'else',
  'do',
  'while',
  'for',
  'break',
  'continue',
  'function',
  'return',
  'var',
  'let',
  'const',
  'this',
  'throw',
  'try',
  'catch',
  'finally',
  'true',
  'false',
  'null',
  'undefined',
  'new',
  'in',
  'instanceof',
  'switch',
  'case',
  'default',
  'delete',
  'typeof',
  'void',
  'debugger',
  'class',
  'extends',
  'super',
  'static',
  'of',
]);
const FUNCTION_TYPES = new Set(['FunctionDeclaration', 'FunctionExpression', 'ArrowFunctionExpression']);

function isNode(value: unknown): value is AnyNode {
  return typeof value === 'object' && value !== null && typeof (value as AnyNode).type === 'string';
}

/** Calls visit(node, path) for every node; path[i].key is the field of path[i].node holding the next one. */
function walk(node: AnyNode, visit: (node: AnyNode, path: Step[]) => void, path: Step[] = []): void {
  visit(node, path);
  for (const key of Object.keys(node)) {
    if (key === 'loc' || key === 'regex') continue;
    const value = node[key];
    const children = Array.isArray(value) ? value : [value];
    for (const child of children) {
      if (!isNode(child)) continue;
      path.push({ node, key });
      walk(child, visit, path);
      path.pop();
    }
  }
}

/** True when an Identifier at the end of `path` is a name being read or written, not a key or a binding. */
function isReference(path: Step[]): boolean {
  const { node: parent, key } = path[path.length - 1] ?? { node: undefined, key: '' };
  if (!parent) return true;
  switch (parent.type) {
    case 'MemberExpression':
      return key === 'object' || parent.computed;
    case 'Property':
    case 'MethodDefinition':
    case 'PropertyDefinition':
      return key === 'value' || parent.computed;
    case 'VariableDeclarator':
      return key === 'init';
    case 'FunctionDeclaration':
    case 'FunctionExpression':
    case 'ArrowFunctionExpression':
      return key === 'body';
    case 'ClassDeclaration':
    case 'ClassExpression':
      return key === 'superClass';
    case 'CatchClause':
      return false;
    case 'LabeledStatement':
    case 'BreakStatement':
    case 'ContinueStatement':
      return false;
    case 'MetaProperty':
      return false;
    case 'ImportSpecifier':
    case 'ImportDefaultSpecifier':
    case 'ImportNamespaceSpecifier':
      return false;
    case 'ExportSpecifier':
      return key === 'local';
    case 'AssignmentPattern':
      return key === 'right';
    case 'ArrayPattern':
    case 'ObjectPattern':
    case 'RestElement':
      return false;
    default:
      return true;
  }
}

/** Names bound anywhere in the program: a program that defines its own `Map` may use it. */
function collectDeclaredNames(program: AnyNode): Set<string> {
  const names = new Set<string>();
  walk(program, (node, path) => {
    if (node.type !== 'Identifier' || path.length === 0) return;
    const { node: parent, key } = path[path.length - 1];
    const binding =
      (parent.type === 'VariableDeclarator' && key === 'id') ||
      (FUNCTION_TYPES.has(parent.type) && (key === 'id' || key === 'params')) ||
      ((parent.type === 'ClassDeclaration' || parent.type === 'ClassExpression') && key === 'id') ||
      (parent.type === 'CatchClause' && key === 'param') ||
      parent.type === 'ArrayPattern' ||
      parent.type === 'RestElement' ||
      (parent.type === 'AssignmentPattern' && key === 'left') ||
      (parent.type === 'Property' && key === 'value' && path[path.length - 2]?.node.type === 'ObjectPattern');
    if (binding) names.add(node.name);
  });
  return names;
}

/** Source text of an Identifier or a non-computed member chain (`Object.freeze`), else undefined. */
function dottedName(node: AnyNode): string | undefined {
  if (node.type === 'Identifier') return node.name;
  if (node.type === 'MemberExpression') {
    const object = dottedName(node.object);
    const property = memberName(node);
    if (object !== undefined && property !== undefined) return object + '.' + property;
  }
  return undefined;
}

/** The property name of `a.b` or `a["b"]`. */
function memberName(member: AnyNode): string | undefined {
  if (!member.computed && member.property.type === 'Identifier') return member.property.name;
  if (member.computed && member.property.type === 'Literal' && typeof member.property.value === 'string')
    return member.property.value;
  return undefined;
}

function containsTypeofOf(node: AnyNode, name: string): boolean {
  let found = false;
  walk(node, (n) => {
    if (n.type === 'UnaryExpression' && n.operator === 'typeof' && dottedName(n.argument) === name) found = true;
  });
  return found;
}

/** A reference is allowed when it is `typeof X` itself, or sits in a branch that only runs when `typeof X` said so. */
function isGuardedByTypeof(path: Step[], name: string): boolean {
  const last = path[path.length - 1];
  if (last && last.node.type === 'UnaryExpression' && last.node.operator === 'typeof') return true;
  for (const { node, key } of path) {
    if (
      (node.type === 'IfStatement' || node.type === 'ConditionalExpression') &&
      key === 'consequent' &&
      containsTypeofOf(node.test, name)
    )
      return true;
    if (
      node.type === 'LogicalExpression' &&
      node.operator === '&&' &&
      key === 'right' &&
      containsTypeofOf(node.left, name)
    )
      return true;
  }
  return false;
}

function isPrimitiveConstant(node: AnyNode | null): boolean {
  if (!node) return false;
  if (node.type === 'Literal') return !node.regex && node.bigint === undefined;
  if (node.type === 'TemplateLiteral') return node.expressions.length === 0;
  if (node.type === 'UnaryExpression')
    return (
      (node.operator === '-' || node.operator === '!' || node.operator === 'void') && isPrimitiveConstant(node.argument)
    );
  return node.type === 'Identifier' && (node.name === 'undefined' || node.name === 'NaN' || node.name === 'Infinity');
}

const OBJECT_INITIALISERS = new Set([
  'ObjectExpression',
  'ArrayExpression',
  'NewExpression',
  'FunctionExpression',
  'ArrowFunctionExpression',
  'ClassExpression',
]);

/** Every Identifier reference inside `node` that is not a key, with its path. */
function references(node: AnyNode, visit: (id: AnyNode, path: Step[]) => void): void {
  walk(node, (n, path) => {
    if (n.type === 'Identifier' && isReference(path)) visit(n, path);
  });
}

function bindingNames(pattern: AnyNode, out: string[] = []): string[] {
  if (pattern.type === 'Identifier') out.push(pattern.name);
  else if (pattern.type === 'VariableDeclaration')
    pattern.declarations.forEach((d: AnyNode) => bindingNames(d.id, out));
  else if (pattern.type === 'ArrayPattern') pattern.elements.forEach((e: AnyNode | null) => e && bindingNames(e, out));
  else if (pattern.type === 'ObjectPattern')
    pattern.properties.forEach((p: AnyNode) => bindingNames(p.type === 'RestElement' ? p : p.value, out));
  else if (pattern.type === 'RestElement') bindingNames(pattern.argument, out);
  else if (pattern.type === 'AssignmentPattern') bindingNames(pattern.left, out);
  return out;
}

const ACORN_OPTIONS: Options = {
  ecmaVersion: 'latest',
  locations: true,
  allowReturnOutsideFunction: true,
  allowAwaitOutsideFunction: true,
  allowHashBang: false,
};

/** Parses as a script; falls back to module only so that import/export are reported, not a parse failure. */
function parseProgram(code: string): AnyNode {
  try {
    return parse(code, { ...ACORN_OPTIONS, sourceType: 'script' }) as AnyNode;
  } catch (scriptError) {
    try {
      return parse(code, { ...ACORN_OPTIONS, sourceType: 'module' }) as AnyNode;
    } catch {
      throw scriptError;
    }
  }
}

/** Lists everything in `code` that Espruino 2v29 cannot run as written; an empty list means it passes. */
export function checkEspruinoProfile(code: string, fileName?: string): Violation[] {
  const violations: Violation[] = [];
  const at = (node: { loc?: any } | null, construct: string, message: string, columnOffset = 0) => {
    const start = node?.loc?.start ?? { line: 1, column: 0 };
    violations.push({ construct, line: start.line, column: start.column + 1 + columnOffset, message });
  };

  checkCharacters(code, violations);
  let program: AnyNode;
  try {
    program = parseProgram(code);
  } catch (err) {
    const loc = (err as { loc?: { line: number; column: number } }).loc ?? { line: 1, column: 0 };
    const text = (err as Error).message.replace(/ \(\d+:\d+\)$/, '');
    violations.push({
      construct: 'syntax error',
      line: loc.line,
      column: loc.column + 1,
      message: text + ': ' + (fileName ?? 'the code') + ' is not valid JavaScript',
    });
    return sortViolations(violations);
  }
  const declared = collectDeclaredNames(program);

  walk(program, (node, path) => {
    const parent = path[path.length - 1]?.node;
    const parentKey = path[path.length - 1]?.key;
    switch (node.type) {
      case 'ImportDeclaration':
      case 'ExportNamedDeclaration':
      case 'ExportDefaultDeclaration':
      case 'ExportAllDeclaration':
        return at(node, 'ES module syntax', 'Espruino has no ES modules: build one script with `veilgrid build`');
      case 'ImportExpression':
        return at(node, 'dynamic import()', 'use require("Module") for Espruino modules, or bundle the code');
      case 'MetaProperty':
        return at(
          node,
          node.meta.name + '.' + node.property.name,
          'Espruino has no meta properties: pass the value explicitly',
        );
      case 'ObjectPattern':
      case 'ArrayPattern':
        if (
          parent?.type === 'ObjectPattern' ||
          parent?.type === 'ArrayPattern' ||
          (parent?.type === 'Property' && path[path.length - 2]?.node.type === 'ObjectPattern')
        )
          return;
        return at(node, 'destructuring', 'read the properties one by one: var a = o.a');
      case 'RestElement':
        if (FUNCTION_TYPES.has(parent?.type))
          return at(node, 'rest parameter', 'use `arguments` ([].slice.call(arguments, n))');
        return;
      case 'SpreadElement':
        return at(
          node,
          'spread',
          parent?.type === 'ObjectExpression' ? 'use Object.assign({}, o)' : 'use concat() or fn.apply(null, args)',
        );
      case 'AssignmentPattern':
        if (FUNCTION_TYPES.has(parent?.type))
          return at(node, 'default parameter', 'test the parameter: if (x === undefined) x = …');
        return;
      case 'Property':
        if (node.computed && parent?.type === 'ObjectExpression')
          return at(node.key, 'computed key', 'create the object, then assign o[key] = value');
        return;
      case 'MethodDefinition':
      case 'PropertyDefinition':
        return checkClassMember(node, at);
      case 'StaticBlock':
        return at(node, 'static block', 'run the code after the class definition');
      case 'PrivateIdentifier':
        if (parent?.type === 'MethodDefinition' || parent?.type === 'PropertyDefinition') return;
        return at(node, 'private class member #' + node.name, 'use an ordinary property (e.g. _name)');
      case 'ClassDeclaration':
      case 'ClassExpression':
        if (node.superClass && node.superClass.type !== 'Identifier') {
          at(node.superClass, 'extends <expression>', 'assign the base class to a variable and extend that identifier');
        }
        return;
      case 'FunctionDeclaration':
      case 'FunctionExpression':
      case 'ArrowFunctionExpression':
        if (node.async) at(node, 'async function', 'return a Promise and chain .then(), or use callbacks');
        if (node.generator) at(node, 'generator', 'write an explicit iterator object or use callbacks');
        return;
      case 'AwaitExpression':
        if (!path.some((s) => FUNCTION_TYPES.has(s.node.type) && s.node.async))
          at(node, 'await', 'chain .then() on the Promise');
        return;
      case 'ForOfStatement':
        if (node.await) at(node, 'for await', 'chain .then() on each Promise');
        return checkLoopClosures(node, at);
      case 'ForStatement':
      case 'ForInStatement':
        return checkLoopClosures(node, at);
      case 'ChainExpression':
        return at(node, 'optional chaining ?.', 'test first: (a == null ? undefined : a.b)');
      case 'BinaryExpression':
        if (node.operator === '**') at(node, 'exponent operator **', 'use Math.pow(a, b)');
        return;
      case 'AssignmentExpression':
        if (node.operator === '**=') at(node, 'exponent assignment **=', 'use a = Math.pow(a, b)');
        if (node.operator === '&&=' || node.operator === '||=' || node.operator === '??=') {
          at(node, 'logical assignment ' + node.operator, 'write it out: if (a == null) a = b');
        }
        return;
      case 'LabeledStatement':
        return at(node, 'label', 'use a flag variable or move the loop into a function and return');
      case 'WithStatement':
        return at(node, 'with statement', 'name the object explicitly');
      case 'TaggedTemplateExpression':
        return at(node, 'tagged template', 'call the function with a plain string or a template literal');
      case 'TemplateElement':
        return checkEscapes(node.value.raw, node, at, 0);
      case 'Literal':
        return checkLiteral(node, at);
      case 'NewExpression':
      case 'CallExpression':
        checkRegExpConstructor(node, at);
        if (node.type === 'CallExpression') checkMethodCall(node, at);
        return;
      case 'MemberExpression':
        return checkStaticMember(node, path, declared, at);
      case 'BlockStatement':
      case 'Program':
        return checkUseBeforeDefine(node.body, at);
      case 'SwitchCase':
        return checkUseBeforeDefine(node.consequent, at);
      case 'Identifier':
        if (ESPRUINO_ONLY_RESERVED.has(node.name) && !isPropertyKey(parent, parentKey)) {
          return at(
            node,
            'identifier named ' + node.name,
            '`' + node.name + '` is a reserved word on Espruino: rename it',
          );
        }
        if (
          isReference(path) &&
          Object.hasOwn(FORBIDDEN_GLOBALS, node.name) &&
          !declared.has(node.name) &&
          !isGuardedByTypeof(path, node.name)
        ) {
          return at(node, node.name, 'Espruino 2v29 has no ' + node.name + ': ' + FORBIDDEN_GLOBALS[node.name]);
        }
        return;
    }
  });
  return sortViolations(violations);
}

type At = (node: AnyNode | null, construct: string, message: string, columnOffset?: number) => void;

function isPropertyKey(parent: AnyNode | undefined, key: string | undefined): boolean {
  if (!parent) return false;
  if (parent.type === 'MemberExpression') return key === 'property' && !parent.computed;
  if (parent.type === 'Property') return key === 'key' && !parent.computed && !parent.shorthand;
  if (parent.type === 'MethodDefinition' || parent.type === 'PropertyDefinition')
    return key === 'key' && !parent.computed;
  return false;
}

function checkClassMember(node: AnyNode, at: At): void {
  const key = node.key;
  if (node.computed) at(key, 'computed class member key', 'name the member with a plain identifier');
  else if (key.type === 'Literal')
    at(key, 'class member named by a string or number', 'name the member with a plain identifier');
  else if (key.type === 'PrivateIdentifier')
    at(key, 'private class member #' + key.name, 'use an ordinary property (e.g. _name)');
  else if (key.type === 'Identifier' && ESPRUINO_RESERVED.has(key.name)) {
    at(key, 'class member named ' + key.name, '`' + key.name + '` is a keyword on Espruino: rename the member');
  }
  if (node.type !== 'PropertyDefinition' || node.static) return;
  if (node.value === null) {
    at(
      node,
      'class field without initialiser',
      'Espruino needs `= value` on every field: assign it in the constructor',
    );
  } else if (OBJECT_INITIALISERS.has(node.value.type) || (node.value.type === 'Literal' && node.value.regex)) {
    at(
      node,
      'class instance field holding an object',
      'Espruino stores field values once on the prototype, so every instance would share it: assign it in the constructor',
    );
  } else if (!isPrimitiveConstant(node.value)) {
    at(
      node,
      'class instance field with a computed initialiser',
      'Espruino evaluates field initialisers once, at class definition: assign it in the constructor',
    );
  }
}

/** Espruino creates one scope for a whole `for (let …)` loop, so closures all see the final value. */
function checkLoopClosures(loop: AnyNode, at: At): void {
  const head = loop.type === 'ForStatement' ? loop.init : loop.left;
  if (!head || head.type !== 'VariableDeclaration' || head.kind === 'var') return;
  const names = new Set(bindingNames(head));
  const parts = loop.type === 'ForStatement' ? [loop.test, loop.update, loop.body] : [loop.body];
  for (const part of parts) {
    if (!part) continue;
    walk(part, (node) => {
      if (!FUNCTION_TYPES.has(node.type)) return;
      let captured: string | undefined;
      references(node, (id) => {
        if (names.has(id.name)) captured ??= id.name;
      });
      if (captured) {
        at(
          node,
          'closure over a for (' + head.kind + ') loop variable',
          'Espruino shares one `' +
            captured +
            '` across all iterations: move the loop body into a function taking `' +
            captured +
            '` as a parameter',
        );
      }
    });
  }
}

/** Espruino binds a function declaration only when its statement runs: no hoisting. */
function checkUseBeforeDefine(statements: AnyNode[], at: At): void {
  statements.forEach((statement, index) => {
    if (statement.type !== 'FunctionDeclaration' || !statement.id) return;
    const name = statement.id.name;
    for (const earlier of statements.slice(0, index)) {
      walk(earlier, (node, path) => {
        if (node.type !== 'Identifier' || node.name !== name || !isReference(path)) return;
        if (path.some((s) => FUNCTION_TYPES.has(s.node.type) || s.node.type === 'ClassBody')) return;
        at(
          node,
          'function used before its declaration',
          'Espruino does not hoist functions: declare `' + name + '` before this statement',
        );
      });
    }
  });
}

function checkLiteral(node: AnyNode, at: At): void {
  if (node.bigint !== undefined) return at(node, 'BigInt literal', 'use Number (exact to 2^53) or two 32-bit halves');
  if (node.regex) {
    for (const p of checkRegexProfile(node.regex.pattern, node.regex.flags))
      at(node, p.construct, p.message, p.offset < 0 ? 0 : 1 + p.offset);
    return;
  }
  if (typeof node.value === 'string' && typeof node.raw === 'string') checkEscapes(node.raw, node, at, 0);
}

/** `\u` escapes above 0xFF cannot be stored in an ESP32 string (8-bit); `\u{…}` is not read by Espruino's lexer. */
function checkEscapes(raw: string, node: AnyNode, at: At, base: number): void {
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== '\\') continue;
    if (raw[i + 1] === 'u') {
      const braced = /^u\{([0-9a-fA-F]+)\}/.exec(raw.slice(i + 1));
      const plain = /^u([0-9a-fA-F]{4})/.exec(raw.slice(i + 1));
      if (braced) {
        at(
          node,
          'code point escape \\u{...}',
          'write \\xHH for bytes 0..255 (strings are 8-bit on the ESP32)',
          base + i,
        );
      } else if (plain && parseInt(plain[1], 16) > 0xff) {
        at(
          node,
          'string escape above \\u00FF',
          'U+' +
            plain[1].toUpperCase() +
            ' does not fit an 8-bit ESP32 string: write ASCII, or encode the text as bytes (\\xHH escapes)',
          base + i,
        );
      }
    }
    i++;
  }
}

function checkRegExpConstructor(node: AnyNode, at: At): void {
  if (node.callee.type !== 'Identifier' || node.callee.name !== 'RegExp') return;
  const [source, flags] = node.arguments;
  if (source?.type !== 'Literal' || typeof source.value !== 'string') return;
  const flagText = flags?.type === 'Literal' && typeof flags.value === 'string' ? flags.value : '';
  for (const p of checkRegexProfile(source.value, flagText)) at(source, p.construct, p.message);
}

function checkMethodCall(node: AnyNode, at: At): void {
  if (node.callee.type !== 'MemberExpression') return;
  const name = memberName(node.callee);
  if (name === undefined || !Object.hasOwn(FORBIDDEN_METHODS, name)) return;
  if (node.callee.object.type === 'Identifier' && Object.hasOwn(NAMESPACE_MEMBERS, node.callee.object.name)) return;
  at(node.callee.property, '.' + name + '()', 'no Espruino type has ' + name + '(): ' + FORBIDDEN_METHODS[name]);
}

/**
 * Built-in constructors whose prototype methods Espruino does not expose on the prototype object: it finds
 * a built-in method by the type of the value it is read on (jswFindBuiltInFunction, generated by
 * scripts/build_jswrapper.py), and `Array.prototype` is a plain object, so `Array.prototype.slice` is
 * undefined there. Only the methods every object has (OBJECT_METHODS) are found on it.
 */
const BUILT_IN_CONSTRUCTORS = new Set([
  'Array',
  'String',
  'Number',
  'Boolean',
  'Function',
  'ArrayBuffer',
  'DataView',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int8Array',
  'Uint16Array',
  'Int16Array',
  'Uint32Array',
  'Int32Array',
  'Float32Array',
  'Float64Array',
  'Promise',
  'Error',
  'TypeError',
  'SyntaxError',
  'ReferenceError',
  'RegExp',
  'Date',
]);
const OBJECT_METHODS = [
  'hasOwnProperty',
  'toString',
  'valueOf',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'constructor',
];

/** `Array.prototype.slice` and the like, read (not assigned): undefined on Espruino. */
function checkBuiltInPrototypeRead(node: AnyNode, path: Step[], declared: Set<string>, at: At): void {
  const base = node.object;
  if (base.type !== 'MemberExpression' || base.object.type !== 'Identifier' || memberName(base) !== 'prototype') return;
  const ctor = base.object.name;
  if (!BUILT_IN_CONSTRUCTORS.has(ctor) || declared.has(ctor)) return;
  const name = memberName(node);
  if (name === undefined || OBJECT_METHODS.includes(name)) return;
  const step = path[path.length - 1];
  if (step && step.node.type === 'AssignmentExpression' && step.key === 'left') return;
  at(
    node,
    ctor + '.prototype.' + name,
    'Espruino finds built-in methods on values, not on ' +
      ctor +
      ".prototype (it is undefined there): read it from a value, e.g. [].slice.call(x) or ''.charAt.call(s, i)",
  );
}

function checkStaticMember(node: AnyNode, path: Step[], declared: Set<string>, at: At): void {
  checkBuiltInPrototypeRead(node, path, declared, at);
  if (node.object.type !== 'Identifier') return;
  const namespace = node.object.name;
  const members = NAMESPACE_MEMBERS[namespace];
  if (!members || declared.has(namespace)) return;
  const name = memberName(node);
  if (name === undefined || members.includes(name)) return;
  const full = namespace + '.' + name;
  if (isGuardedByTypeof(path, full)) return;
  at(node, full, 'Espruino 2v29 has no ' + full + (MEMBER_ADVICE[full] ? ': ' + MEMBER_ADVICE[full] : ''));
}

/** Every character above 0x7F, one report per line: the ESP32 reads source as 8-bit bytes. */
function checkCharacters(code: string, violations: Violation[]): void {
  const lines = code.split('\n');
  lines.forEach((text, index) => {
    const column = text.search(/[^\x00-\x7f]/);
    if (column < 0) return;
    const hex = text.codePointAt(column)!.toString(16).toUpperCase().padStart(4, '0');
    violations.push({
      construct: 'non-ASCII character U+' + hex,
      line: index + 1,
      column: column + 1,
      message: 'keep source ASCII: write bytes 0x80..0xFF as \\xHH escapes in strings',
    });
  });
}

function sortViolations(violations: Violation[]): Violation[] {
  return violations.sort((a, b) => a.line - b.line || a.column - b.column);
}
