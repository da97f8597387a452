// Reading the repository's own import graph, for the tests that guard its seams (which folder may import
// which): every .ts file under a folder, and the relative imports each one makes.
import fs from 'node:fs';
import path from 'node:path';

/** Every .ts file under dir (node_modules left out). */
export function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : tsFiles(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

/** Every relative import of a file (static, side-effect and dynamic), resolved to an absolute path. */
export function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) =>
    path.resolve(path.dirname(file), m[1]),
  );
}

/** Whether file is dir itself or lies under it. */
export const inside = (dir: string, file: string) => file === dir || file.startsWith(dir + path.sep);
