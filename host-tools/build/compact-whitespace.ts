// Takes comments and redundant whitespace out of the final ES5 bundle. Espruino runs the source text
// itself, so every byte of it costs flash and parse time on the meter.
//
// This is a token-level rewrite, not a minifier: every token keeps its exact text (no identifier is
// renamed or created — esbuild's minifier can invent `of`, a reserved word on Espruino — and no
// literal is reprinted: esbuild would turn 1000 into 1e3, a float on Espruino), and a line break
// between two tokens stays a line break unless it follows `;` or `{`, so automatic semicolon
// insertion reads the code exactly as before and the device's error messages still point at
// distinct lines. Within a line, tokens are joined without a space unless the two would then read
// as different tokens.
import { tokenizer, tokTypes, type Token } from 'acorn';

/** `code` (one ES5 script) without comments, indentation and spaces that separate nothing. */
export function compactWhitespace(code: string): string {
  let out = '';
  let previous: Token | undefined;
  let previousText = '';
  for (const token of tokenizer(code, { ecmaVersion: 5, sourceType: 'script' })) {
    if (token.type === tokTypes.eof) break;
    const text = code.slice(token.start, token.end);
    if (previous) {
      const gap = code.slice(previous.end, token.start);
      // A line break in the gap (whitespace or inside a comment) stays, for ASI and the postfix
      // ++/-- and return rules, except after `;` and `{`, where it can change nothing.
      const afterBreak = /[\n\r\u2028\u2029]/.test(gap) && !(previousText === ';' || previousText === '{');
      if (afterBreak) out += '\n';
      else if (needsSpace(previous, previousText, token, text)) out += ' ';
    }
    out += text;
    previous = token;
    previousText = text;
  }
  return out + '\n';
}

const WORD = /[A-Za-z0-9_$\\]/;

/** True when `a` followed directly by `b` would lex differently from `a b`. */
function needsSpace(a: Token, aText: string, b: Token, bText: string): boolean {
  const last = aText[aText.length - 1];
  const first = bText[0];
  if (WORD.test(last) && WORD.test(first)) return true; // `var x`, `return 1`
  if (a.type === tokTypes.regexp && WORD.test(first)) return true; // `/a/ in o` is not `/a/in`
  if ((last === '+' || last === '-') && first === last) return true; // `a + +b`, `a - --b`
  if (last === '/' && (first === '/' || first === '*')) return true; // `a / /re/` is not a comment
  if (a.type === tokTypes.num && first === '.') return true; // `1 .toString()`
  if (last === '<' && first === '!') return true; // `a < !--b` is not an HTML comment `<!--`
  return false;
}
