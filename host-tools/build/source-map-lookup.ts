// Maps a position in esbuild's bundle back to the TypeScript source it came from, so that a violation
// found in the bundle is reported where the author can fix it. Reads the standard source map v3 "mappings"
// (base64 VLQ); only lookups are needed, so this decodes on demand.
import path from 'node:path';

export interface SourcePosition {
  file: string;
  line: number;
  column: number;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function decodeSegment(segment: string): number[] {
  const values: number[] = [];
  let value = 0;
  let shift = 0;
  for (const char of segment) {
    const digit = BASE64.indexOf(char);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return values;
}

export class SourceMapLookup {
  private readonly lines: number[][][] = []; // per generated line: [genColumn, source, line, column]
  private readonly sources: string[];

  constructor(
    map: { sources: string[]; mappings: string },
    private readonly mapDir: string,
    private readonly root: string,
  ) {
    this.sources = map.sources;
    let source = 0,
      line = 0,
      column = 0;
    for (const text of map.mappings.split(';')) {
      let genColumn = 0;
      const segments: number[][] = [];
      for (const segment of text.split(',')) {
        if (!segment) continue;
        const [dGen, dSource, dLine, dColumn] = decodeSegment(segment);
        genColumn += dGen;
        if (dSource === undefined) continue;
        source += dSource;
        line += dLine;
        column += dColumn;
        segments.push([genColumn, source, line, column]);
      }
      this.lines.push(segments);
    }
  }

  /** 1-based line and column in the bundle → 1-based position in the source, or undefined if unmapped. */
  original(line: number, column: number): SourcePosition | undefined {
    const segments = this.lines[line - 1];
    if (!segments || segments.length === 0) return undefined;
    let best = segments[0];
    for (const segment of segments) if (segment[0] <= column - 1) best = segment;
    const file = path.relative(this.root, path.resolve(this.mapDir, this.sources[best[1]]));
    return { file, line: best[2] + 1, column: best[3] + 1 + Math.max(0, column - 1 - best[0]) };
  }
}
