// The top-level parts depend on each other in one direction only: host-tools/ on boards/ (it builds for,
// flashes and runs them), both on espruino-profile/ (what Espruino 2v29 accepts) and on
// firmware/src/protocol/. A part that imports one that imports it back cannot be read, tested or moved
// on its own, so any cycle between them fails here, naming the imports that close it. test/ and bench/
// use every part and nothing uses them, so they are not parts.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { importsOf, inside, tsFiles } from '../support/source-imports.ts';

const PARTS = ['firmware', 'boards', 'host-tools', 'espruino-profile'];
/** Top-level folders that hold TypeScript but are not parts: they use the parts and nothing uses them. */
const USERS = ['test', 'bench'];

const partOf = (file: string) => PARTS.find((p) => inside(path.resolve(p), file));

/** For each part, the parts it imports, with one import that shows each edge. */
function partGraph(): Map<string, Map<string, string>> {
  const graph = new Map(PARTS.map((p) => [p, new Map<string, string>()]));
  for (const from of PARTS) {
    for (const file of tsFiles(path.resolve(from))) {
      for (const target of importsOf(file)) {
        const to = partOf(target);
        if (to && to !== from && !graph.get(from)!.has(to))
          graph.get(from)!.set(to, `${path.relative('.', file)} imports ${path.relative('.', target)}`);
      }
    }
  }
  return graph;
}

/** Every cycle found by a depth-first walk, as the imports along it. */
function cycles(graph: Map<string, Map<string, string>>): string[][] {
  const found: string[][] = [];
  const done = new Set<string>();
  const walk = (part: string, trail: string[]) => {
    if (trail.includes(part)) {
      const loop = [...trail.slice(trail.indexOf(part)), part];
      found.push(loop.slice(1).map((to, i) => graph.get(loop[i])!.get(to)!));
      return;
    }
    if (done.has(part)) return;
    for (const to of graph.get(part)!.keys()) walk(to, [...trail, part]);
    done.add(part);
  };
  for (const part of PARTS) walk(part, []);
  return found;
}

test('every top-level folder holding TypeScript is a part or a user of the parts', () => {
  const unknown = fs
    .readdirSync('.', { withFileTypes: true })
    .filter((e) => e.isDirectory() && !['node_modules', 'dist'].includes(e.name) && !e.name.startsWith('.'))
    .map((e) => e.name)
    .filter((dir) => tsFiles(path.resolve(dir)).length > 0 && !PARTS.includes(dir) && !USERS.includes(dir));
  assert.equal(unknown, [], 'add the folder to PARTS (or USERS) in this test, so its imports are checked');
});

test('the walk sees the imports between parts', () => {
  const graph = partGraph();
  assert.ok(graph.get('host-tools')!.has('boards'), 'host-tools/ imports boards/');
  assert.ok(graph.get('boards')!.has('espruino-profile'), 'boards/emulator/ checks code with espruino-profile/');
});

test('no cycle between the top-level parts', () => {
  assert.equal(cycles(partGraph()), [], 'move what both sides need into the part they both import');
});

test('the cycle finder names the imports that close a cycle', () => {
  const graph = new Map([
    ['boards', new Map([['host-tools', 'b imports h']])],
    ['host-tools', new Map([['boards', 'h imports b']])],
    ['firmware', new Map<string, string>()],
    ['espruino-profile', new Map<string, string>()],
  ]);
  assert.equal(cycles(graph), [['b imports h', 'h imports b']]);
});

test.run();
