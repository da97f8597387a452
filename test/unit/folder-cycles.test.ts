// The top-level parts depend on each other in one direction only: host-tools/ on boards/ (it builds for,
// flashes and runs them), both on espruino-profile/ (what Espruino 2v29 accepts) and on
// firmware/src/protocol/. A part that imports one that imports it back cannot be read, tested or moved
// on its own, so any cycle between them fails here, naming the imports that close it. test/ and bench/
// use every part and nothing uses them, so they are not parts.
// The same holds one level down, inside host-tools/, boards/ and firmware/src/: each folder there (and each
// file beside them, such as the dispatcher host-tools/veilgrid.ts or firmware/src/main.ts) is a unit, and
// no unit may import one that imports it back.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { importsOf, inside, tsFiles } from '../support/source-imports.ts';

const PARTS = ['firmware', 'boards', 'host-tools', 'espruino-profile'];
/** Top-level folders that hold TypeScript but are not parts: they use the parts and nothing uses them. */
const USERS = ['test', 'bench'];

/** Parts whose folders are checked one level down, each as its folders and the files beside them. */
const INNER = ['host-tools', 'boards', 'firmware/src'];

/** For each unit (a folder or a file), the units it imports, with one import that shows each edge. */
function importGraph(units: string[]): Map<string, Map<string, string>> {
  const unitOf = (file: string) => units.find((u) => inside(path.resolve(u), file));
  const graph = new Map(units.map((u) => [u, new Map<string, string>()]));
  for (const from of units) {
    const files = from.endsWith('.ts') ? [path.resolve(from)] : tsFiles(path.resolve(from));
    for (const file of files) {
      for (const target of importsOf(file)) {
        const to = unitOf(target);
        if (to && to !== from && !graph.get(from)!.has(to))
          graph.get(from)!.set(to, `${path.relative('.', file)} imports ${path.relative('.', target)}`);
      }
    }
  }
  return graph;
}

const partGraph = () => importGraph(PARTS);

/** The units inside part: its folders that hold TypeScript, and its own .ts files. */
function unitsIn(part: string): string[] {
  return fs
    .readdirSync(part, { withFileTypes: true })
    .filter((e) => (e.isDirectory() ? tsFiles(path.join(part, e.name)).length > 0 : e.name.endsWith('.ts')))
    .map((e) => `${part}/${e.name}`);
}

/** Every cycle found by a depth-first walk, as the imports along it. */
function cycles(graph: Map<string, Map<string, string>>): string[][] {
  const found: string[][] = [];
  const done = new Set<string>();
  const walk = (unit: string, trail: string[]) => {
    if (trail.includes(unit)) {
      const loop = [...trail.slice(trail.indexOf(unit)), unit];
      found.push(loop.slice(1).map((to, i) => graph.get(loop[i])!.get(to)!));
      return;
    }
    if (done.has(unit)) return;
    for (const to of graph.get(unit)!.keys()) walk(to, [...trail, unit]);
    done.add(unit);
  };
  for (const unit of graph.keys()) walk(unit, []);
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

test('the walk sees the imports between folders inside a part', () => {
  const hostTools = importGraph(unitsIn('host-tools'));
  assert.ok(hostTools.get('host-tools/dso')!.has('host-tools/broker'), 'dso/ logs in to the broker');
  assert.ok(hostTools.get('host-tools/veilgrid.ts')!.has('host-tools/dso'), 'the dispatcher lists the dso command');
  assert.ok(importGraph(unitsIn('boards')).get('boards/harness')!.has('boards/emulator'), 'harness/ runs the emulator');
  assert.ok(importGraph(unitsIn('firmware/src')).get('firmware/src/mqtt')!.has('firmware/src/persist'), 'the outbox');
});

for (const part of INNER) {
  test(`no cycle between the folders inside ${part}/`, () => {
    assert.equal(
      cycles(importGraph(unitsIn(part))),
      [],
      'move what both sides need into a folder they both import, named for what it is',
    );
  });
}

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
