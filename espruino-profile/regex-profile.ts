// Which regular-expression features Espruino 2v29's own small regex engine (src/jswrap_regexp.c) handles.
// It matches `.`, `[...]`/`[^...]` with ranges, `\d \D \w \W \s \S \f \n \r \t \v \xHH`, `*`/`+` after a
// single character or class, capture groups without quantifiers, `|` at the top level, `^`, `$`, and the
// flags g and i. Anything else is not an error on the device: it silently matches something different
// (`a?` looks for a literal "?"), which is why the build must refuse it.

export interface RegexProblem {
  construct: string;
  /** Offset inside the pattern text (0 = first character after the opening slash). */
  offset: number;
  message: string;
}

const MAX_GROUPS = 9; // MAX_GROUPS in jswrap_regexp.c: later groups are not recorded
const SUPPORTED_FLAGS = 'gi';
const QUANTIFIER_BRACES = /^\{\d+(,\d*)?\}/;

function problem(construct: string, offset: number, message: string): RegexProblem {
  return { construct: 'regex ' + construct, offset, message };
}

/** Problems in an escape `\X` at pattern[i]; returns how many characters the escape spans. */
function checkEscape(pattern: string, i: number, inClass: boolean, out: RegexProblem[]): number {
  const e = pattern[i + 1];
  if (e === undefined) return 1;
  if (e === 'x') return 4;
  if (e === 'b' || e === 'B') {
    out.push(
      problem(
        inClass ? 'backspace escape \\b' : 'word boundary \\' + e,
        i,
        inClass
          ? 'use \\x08'
          : 'Espruino matches a literal "' + e + '": test the neighbouring characters with \\w/\\W or in code',
      ),
    );
  } else if (e >= '1' && e <= '9') {
    out.push(
      problem(
        'back-reference \\' + e,
        i,
        'Espruino reads \\' + e + ' as character code ' + e + ': compare the captured groups in code',
      ),
    );
  } else if (e === 'k') {
    out.push(problem('named back-reference \\k', i, 'compare the captured groups in code'));
  } else if (e === 'u') {
    out.push(problem('unicode escape \\u', i, 'strings are 8-bit on the ESP32: use \\xHH'));
  } else if (e === 'c') {
    out.push(problem('control escape \\c', i, 'use \\xHH'));
  } else if (e === 'p' || e === 'P') {
    out.push(problem('property escape \\' + e, i, 'use an explicit character class such as [a-zA-Z]'));
  }
  return 2;
}

/** Lists every feature of `pattern`/`flags` that Espruino's regex engine does not implement. */
export function checkRegexProfile(pattern: string, flags: string): RegexProblem[] {
  const out: RegexProblem[] = [];
  let inClass = false;
  let depth = 0;
  let groups = 0;
  let previous: 'none' | 'atom' | 'group' | 'quantifier' = 'none';
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i];
    if (c === '\\') {
      i += checkEscape(pattern, i, inClass, out);
      if (!inClass) previous = 'atom';
      continue;
    }
    if (inClass) {
      if (c === ']') {
        inClass = false;
        previous = 'atom';
      } else if (c === '-' && pattern[i + 1] === ']' && pattern[i - 1] !== '[' && pattern[i - 1] !== '^') {
        out.push(
          problem('trailing - in a class', i, 'Espruino reads it as a range: put "-" first in the class or write \\-'),
        );
      }
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
    } else if (c === '(') {
      if (pattern[i + 1] === '?') {
        const kind = pattern[i + 2];
        const next = pattern[i + 3];
        if (kind === ':')
          out.push(problem('non-capturing group (?:', i, 'use a plain capture group ( ) and ignore its result'));
        else if (kind === '=' || kind === '!')
          out.push(problem('look-ahead (?' + kind, i, 'test the following characters in code'));
        else if (kind === '<' && (next === '=' || next === '!'))
          out.push(problem('look-behind (?<' + next, i, 'test the preceding characters in code'));
        else out.push(problem('named group (?<name>', i, 'use a plain capture group ( ) and its index'));
      }
      groups++;
      depth++;
      previous = 'none';
      i += pattern[i + 1] === '?' ? 3 : 1; // past "(?x", already reported
      continue;
    } else if (c === ')') {
      depth--;
      previous = 'group';
      i++;
      continue;
    } else if (c === '|') {
      if (depth > 0)
        out.push(
          problem(
            'alternation inside a group',
            i,
            'Espruino handles | only at the top level: split into separate regexes',
          ),
        );
      previous = 'none';
      i++;
      continue;
    } else if (c === '*' || c === '+') {
      if (previous === 'group')
        out.push(
          problem(
            'quantifier on a group',
            i,
            'Espruino applies * and + to a single character or class only: loop in code',
          ),
        );
      if (pattern[i + 1] === '?') {
        out.push(
          problem(
            'lazy quantifier ' + c + '?',
            i,
            'Espruino quantifiers are greedy only: restructure the pattern or scan in code',
          ),
        );
        i++;
      }
      previous = 'quantifier';
      i++;
      continue;
    } else if (c === '?') {
      out.push(
        problem(
          '? quantifier',
          i,
          'Espruino matches a literal "?": use two regexes, or a class like [x]* and check the length in code',
        ),
      );
      previous = 'quantifier';
      i++;
      continue;
    } else if (c === '{' && QUANTIFIER_BRACES.test(pattern.slice(i))) {
      const braces = QUANTIFIER_BRACES.exec(pattern.slice(i))![0];
      out.push(
        problem(
          'counted quantifier ' + braces,
          i,
          'Espruino matches the braces literally: repeat the class (\\d\\d\\d) or use + and check the length in code',
        ),
      );
      previous = 'quantifier';
      i += braces.length;
      continue;
    }
    previous = c === '^' || c === '$' ? 'none' : 'atom';
    i++;
  }
  if (groups > MAX_GROUPS) {
    out.push(problem('more than 9 capture groups', 0, 'Espruino records only 9 groups: split the regex'));
  }
  for (const flag of flags) {
    if (!SUPPORTED_FLAGS.includes(flag)) {
      out.push(problem('flag ' + flag, -1, 'Espruino supports only the g and i flags'));
    }
  }
  return out;
}
