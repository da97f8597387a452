// An Espruino console over raw TCP, as Espruino's TelnetServer offers it: one line editor per connection
// behaving like src/jsinteractive.c (echo, `\x10` echo-off lines, Alt-Enter and open brackets continuing a
// statement, `=value` results, `Uncaught …` errors, the `>` prompt taken away and given back around
// output), so the real `espruino` CLI can upload to an emulated board and a human can use `nc`/`telnet`.
// Notes and source references: docs/emulator-console.md.
import { createServer, type Server, type Socket } from 'node:net';
import { tokenizer } from 'acorn';

/** What the console needs from a board (the emulator's Board satisfies it). */
export interface ConsoleBoard {
  evaluate(code: string): { value?: unknown; error?: string };
  onOutput(listener: (text: string) => void): () => void;
  readonly running: boolean;
}

export interface ConsoleOptions {
  /** TCP port; 0 picks a free one (read it from the result). */
  port: number;
  host?: string;
  /** Listening anywhere but loopback lets anyone on the network run code on the board: opt in explicitly. */
  allowRemote?: boolean;
}

export interface RunningConsole {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export class ConsoleError extends Error {}

/** Starts a console server for `board`; resolves once it listens. */
export async function startConsole(board: ConsoleBoard, options: ConsoleOptions): Promise<RunningConsole> {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host) && !options.allowRemote) {
    throw new ConsoleError(
      `refusing to open the board console on ${host}: anyone who reaches it can run code on the board. ` +
        'Use 127.0.0.1, or pass allowRemote: true (veilgrid emulate --console-host HOST --allow-remote) if you mean it.',
    );
  }
  const sessions = new Set<ReplSession>();
  const stopOutput = board.onOutput((text) => {
    for (const session of sessions) session.printOutput(text);
  });
  const server: Server = createServer((socket) => {
    const session = new ReplSession(board, socket);
    sessions.add(session);
    socket.on('close', () => sessions.delete(session));
    socket.on('error', () => socket.destroy()); // a client vanishing is normal; the board carries on
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ConsoleError(`cannot open the board console on ${host}:${options.port}: ${err.message}`)),
    );
    server.listen(options.port, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    port,
    host,
    close: () =>
      new Promise<void>((resolve) => {
        stopOutput();
        for (const session of sessions) session.socket.destroy();
        sessions.clear();
        server.close(() => resolve());
      }),
  };
}

const ESC = '\x1b';
/** Erase from the cursor to the end of the screen (jsiConsoleEraseAfterCursor). */
const ERASE_AFTER_CURSOR = `${ESC}[J`;
const CURSOR_UP = `${ESC}[A`;

type EscapeState = 'none' | 'esc' | 'esc[' | 'esc[n' | 'escO';

/** One connection's REPL state: the input line, echo, and whether the `>` prompt is on screen. */
class ReplSession {
  private line = '';
  /** `\x10` at the start of a line: run it without echo or `=result` (JSIS_ECHO_OFF_FOR_LINE). */
  private echoOffForLine = false;
  /** The prompt and input line are not on screen (inputLineRemoved); they come back after output. */
  private lineRemoved = true;
  private escape: EscapeState = 'none';
  private hadCR = false;
  private telnetSkip = 0;
  private promptPending = false;

  constructor(
    private readonly board: ConsoleBoard,
    readonly socket: Socket,
  ) {
    socket.setEncoding('latin1'); // the console is 8-bit, like the UART it stands for
    socket.setNoDelay(true);
    socket.on('data', (chunk: string) => {
      for (const ch of chunk) this.handleChar(ch);
      this.returnPrompt();
    });
    this.returnPrompt();
  }

  /** Output from the board (console.log, uncaught errors in callbacks, boot messages). */
  printOutput(text: string): void {
    this.removeInputLine();
    this.write(toConsoleNewlines(text));
    if (!this.promptPending) {
      // Espruino gives the prompt back on its next idle loop, so a burst of output shows one prompt.
      this.promptPending = true;
      setImmediate(() => {
        this.promptPending = false;
        this.returnPrompt();
      });
    }
  }

  private get echo(): boolean {
    return !this.echoOffForLine;
  }

  private write(text: string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(text, 'latin1');
  }

  /** jsiConsoleRemoveInputLine: take the prompt and the typed line off the screen before printing. */
  private removeInputLine(): void {
    if (this.lineRemoved) return;
    this.lineRemoved = true;
    if (!this.echo) return;
    const linesUp = this.line.split('\n').length - 1;
    this.write(CURSOR_UP.repeat(linesUp) + '\r' + ERASE_AFTER_CURSOR);
  }

  /** jsiConsoleReturnInputLine: show `>` and whatever was typed so far again. */
  private returnPrompt(): void {
    if (!this.lineRemoved || !this.board.running) return;
    this.lineRemoved = false;
    if (this.echo) this.write('>' + this.line.replace(/\n/g, '\r\n:'));
  }

  private handleChar(ch: string): void {
    const code = ch.charCodeAt(0);
    if (this.skipTelnetNegotiation(code)) return;
    if (this.escape !== 'none') return this.handleEscape(ch);
    const afterCR = this.hadCR;
    this.hadCR = false;
    if (code === 3) return this.ctrlC();
    if (code === 0x1b) {
      this.escape = 'esc';
      return;
    }
    if (code === 0x10 && this.line.length === 0) {
      this.echoOffForLine = true;
      return;
    }
    if (code === 0x08 || code === 0x7f) return this.backspace();
    if (code === 21 || code === 23) return this.clearLine(); // Ctrl-U / Ctrl-W
    if (ch === '\n' && afterCR) return; // \r\n from a terminal is one Enter
    if (ch === '\r' || ch === '\n') {
      this.hadCR = ch === '\r';
      return this.newLine(true);
    }
    if (code >= 32 || ch === '\t') {
      const text = ch === '\t' ? '    ' : ch;
      this.line += text;
      if (this.echo && !this.lineRemoved) this.write(text);
    }
  }

  /** Drops telnet option negotiation (IAC …) so a plain `telnet` client works too. */
  private skipTelnetNegotiation(code: number): boolean {
    if (this.telnetSkip > 0) {
      this.telnetSkip--;
      return true;
    }
    if (code === 0xff) {
      this.telnetSkip = 2; // IAC WILL/WONT/DO/DONT option; other commands are rare enough to ignore
      return true;
    }
    return false;
  }

  private handleEscape(ch: string): void {
    const state = this.escape;
    this.escape = 'none';
    if (state === 'esc') {
      if (ch === '\n') this.newLine(false); // Alt-Enter: a newline that does not execute
      else if (ch === '[') this.escape = 'esc[';
      else if (ch === 'O') this.escape = 'escO';
    } else if (state === 'esc[' || state === 'esc[n') {
      // `Esc [ 123 d` sets the line number for error messages; cursor keys and the rest are ignored
      if (ch >= '0' && ch <= '9') this.escape = 'esc[n';
    }
  }

  private backspace(): void {
    if (this.line.length === 0) return;
    const removed = this.line[this.line.length - 1];
    this.line = this.line.slice(0, -1);
    if (!this.echo || this.lineRemoved) return;
    if (removed === '\n') {
      // back onto the previous line: redraw it after the `:` continuation marker
      const previous = this.line.slice(this.line.lastIndexOf('\n') + 1);
      this.write('\r' + ERASE_AFTER_CURSOR + CURSOR_UP + '\r' + (this.line.includes('\n') ? ':' : '>') + previous);
    } else {
      this.write('\b \b');
    }
  }

  private clearLine(): void {
    if (this.line.length === 0) return;
    this.removeInputLine();
    this.line = '';
  }

  /** Ctrl-C at the prompt throws away the line being typed (a running command cannot be interrupted here). */
  private ctrlC(): void {
    this.clearLine();
    this.echoOffForLine = false;
  }

  /** jsiHandleNewLine: run the line once its brackets balance, else continue it on a `:` line. */
  private newLine(execute: boolean): void {
    if (!execute || countOpenBrackets(this.line) > 0) {
      if (this.echo && !this.lineRemoved) this.write('\r\n:');
      this.line += '\n';
      return;
    }
    if (this.echo && !this.lineRemoved) this.write('\r\n');
    if (this.echo) this.lineRemoved = true;
    const code = this.line.trimEnd();
    this.line = '';
    this.run(code);
    this.echoOffForLine = false;
    // Espruino gives the prompt back on its next idle loop; here that is once the line has run
    this.returnPrompt();
  }

  private run(code: string): void {
    if (!this.board.running) return; // a board without power hears nothing
    const result = this.board.evaluate(code);
    if (result.error !== undefined) {
      this.removeInputLine();
      this.write(toConsoleNewlines(formatUncaught(result.error)));
    } else if (this.echo && code.length > 0) {
      this.write(toConsoleNewlines('=' + formatReplValue(result.value) + '\n'));
    }
  }
}

/** `Uncaught …` as jsiCheckErrors prints it, unless the board already formatted it that way. */
function formatUncaught(error: string): string {
  const text = error.startsWith('Uncaught ') ? error : 'Uncaught ' + error;
  return text.endsWith('\n') ? text : text + '\n';
}

function toConsoleNewlines(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}

/**
 * jsiCountBracketsInInput: open minus closed brackets in the input. An unterminated string executes
 * at once (so it errors), an unterminated comment or template keeps the statement open.
 */
export function countOpenBrackets(source: string): number {
  let open = 0;
  try {
    for (const token of tokenizer(source, { ecmaVersion: 'latest', allowHashBang: false })) {
      const label = token.type.label;
      if (label === '(' || label === '[' || label === '{' || label === '${') open++;
      else if (label === ')' || label === ']' || label === '}') open--;
      if (open < 0) return open;
    }
  } catch (err) {
    const message = (err as Error).message;
    if (message.startsWith('Unterminated comment') || message.startsWith('Unterminated template')) return 1000;
    return 0;
  }
  return open;
}

// ---------------------------------------------------------------------------------------------
// `=value` formatting: jsfGetJSONWithCallback with the REPL's flags JSON_LIMIT | JSON_SOME_NEWLINES |
// JSON_PRETTY | JSON_SHOW_OBJECT_NAMES | JSON_DROP_QUOTES (src/jswrap_json.c, src/jsinteractive.c).

const LIMIT_AMOUNT = 15; // arrays longer than this are shortened …
const LIMITED_AMOUNT = 5; // … to this many items at each end
const LIMIT_STRING_AMOUNT = 40;
const LIMITED_STRING_AMOUNT = 17;
const ITEMS_ON_LINE_OBJECT = 4;
const LIMIT_TEXT = ' ... ';
const INDENT = '  ';

/** Formats a value the way Espruino's REPL prints it after `=`. */
export function formatReplValue(value: unknown): string {
  return formatValue(value, 0, new Set());
}

function formatValue(value: unknown, depth: number, seen: Set<object>): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      return formatEspruinoNumber(value);
    case 'boolean':
      return String(value);
    case 'string':
      return formatLimitedString(value);
    case 'bigint':
    case 'symbol':
      return String(value);
    case 'function':
      return 'function (' + functionParameters(value) + ') {' + LIMIT_TEXT + '}';
  }
  const object = value as object;
  if (seen.has(object)) return LIMIT_TEXT;
  seen.add(object);
  try {
    if (Array.isArray(object)) return formatArray(object, depth, seen);
    const tag = Object.prototype.toString.call(object).slice(8, -1);
    if (ArrayBuffer.isView(object) || tag === 'ArrayBuffer') return formatArrayBuffer(object, tag);
    return formatObject(object, depth, seen);
  } finally {
    seen.delete(object);
  }
}

/** jsonNeedsNewLine: with JSON_SOME_NEWLINES everything but undefined, null and numbers starts a line. */
function needsNewLine(value: unknown): boolean {
  return !(value === undefined || value === null || typeof value === 'number' || typeof value === 'boolean');
}

function newLine(depth: number): string {
  return '\n' + INDENT.repeat(depth);
}

function formatArray(array: unknown[], depth: number, seen: Set<object>): string {
  const length = array.length;
  const limited = length > LIMIT_AMOUNT;
  let out = '[ ';
  let needNewLine = false;
  for (let i = 0; i < length; i++) {
    if (limited && i >= LIMITED_AMOUNT && i < length - LIMITED_AMOUNT) continue;
    if (i > 0) out += ', ';
    if (limited && i === length - LIMITED_AMOUNT) out += LIMIT_TEXT;
    const item = array[i];
    const itemNeedsNewLine = needsNewLine(item);
    if (needNewLine || itemNeedsNewLine) out += newLine(depth + 1);
    out += formatValue(item, depth + 1, seen);
    needNewLine = itemNeedsNewLine;
  }
  if (needNewLine) out += newLine(depth);
  return out + ' ]';
}

function formatArrayBuffer(view: object, tag: string): string {
  const isPlainBuffer = tag === 'ArrayBuffer';
  const bytes = isPlainBuffer ? new Uint8Array(view as ArrayBuffer) : (view as ArrayLike<number>);
  const name = isPlainBuffer ? 'Uint8Array' : tag;
  const length = bytes.length;
  let allZero = true;
  for (let i = 0; i < length; i++) if (bytes[i] !== 0) allZero = false;
  if (allZero) return `new ${tag}(${length})`;
  const limited = length > LIMIT_AMOUNT;
  let items = '';
  for (let i = 0; i < length; i++) {
    if (limited && i >= LIMITED_AMOUNT && i < length - LIMITED_AMOUNT) continue;
    if (i > 0) items += ', ';
    if (limited && i === length - LIMITED_AMOUNT) items += LIMIT_TEXT;
    items += formatEspruinoNumber(Number(bytes[i]));
  }
  return `new ${name}([${items}])` + (isPlainBuffer ? '.buffer' : '');
}

function formatObject(object: object, depth: number, seen: Set<object>): string {
  let prefix = '';
  const proto = Object.getPrototypeOf(object) as { constructor?: { name?: string } } | null;
  const constructorName = proto?.constructor?.name;
  if (constructorName && constructorName !== 'Object') {
    // JSON_SHOW_OBJECT_NAMES: instances of named constructors print as `Name: …`, using a custom toString
    prefix = constructorName + ': ';
    const toString = (object as { toString?: () => unknown }).toString;
    if (typeof toString === 'function' && toString !== Object.prototype.toString && !/\[native code\]/.test(String(toString))) {
      return prefix + String(toString.call(object));
    }
    if (object instanceof Error || Object.prototype.toString.call(object) === '[object Error]') {
      return prefix + String(object);
    }
  }
  let out = prefix + '{ ';
  let first = true;
  let needNewLine = false;
  let sinceNewLine = 0;
  for (const key of Object.keys(object)) {
    const descriptor = Object.getOwnPropertyDescriptor(object, key);
    if (!descriptor || descriptor.get || descriptor.set) continue;
    const item = descriptor.value;
    sinceNewLine++;
    if (!first) out += ', ';
    const itemNeedsNewLine = needsNewLine(item);
    if (sinceNewLine > ITEMS_ON_LINE_OBJECT) needNewLine = true;
    if (needNewLine || itemNeedsNewLine) {
      out += newLine(depth + 1);
      sinceNewLine = 0;
    }
    out += (isIdentifierOrIndex(key) ? key : quoteString(key)) + ': ';
    first = false;
    out += formatValue(item, depth + 1, seen);
    needNewLine = itemNeedsNewLine;
  }
  if (needNewLine) out += newLine(depth);
  return out + ' }';
}

function isIdentifierOrIndex(key: string): boolean {
  return /^(\d+|[A-Za-z_$][A-Za-z0-9_$]*)$/.test(key);
}

function functionParameters(fn: Function): string {
  const source = Function.prototype.toString.call(fn);
  const match = /^[^(]*\(([^)]*)\)/.exec(source) ?? /^\s*([A-Za-z_$][\w$]*)\s*=>/.exec(source);
  return match ? match[1].split(',').map((p) => p.trim()).filter(Boolean).join(',') : '';
}

function formatLimitedString(text: string): string {
  if (text.length <= LIMIT_STRING_AMOUNT) return quoteString(text);
  return quoteString(text.slice(0, LIMITED_STRING_AMOUNT)) + LIMIT_TEXT + quoteString(text.slice(-LIMITED_STRING_AMOUNT));
}

/** `%q`: double quotes, C-style escapes, \xHH for other control and high bytes. */
export function quoteString(text: string): string {
  let out = '"';
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\v') out += '\\v';
    else if (code < 8 && code >= 0) out += '\\' + code;
    else if (code < 32 || code === 127 || (code > 127 && code <= 255)) out += '\\x' + code.toString(16).padStart(2, '0');
    else if (code > 255) out += '\\u' + code.toString(16).padStart(4, '0');
    else out += ch;
  }
  return out + '"';
}

/**
 * Numbers as Espruino prints them (ftoa_bounded_extra in src/jsutils.c): integers in full, fractions
 * only until the remainder drops below 1e-7 and at most 11 digits — so 0.1+0.2 prints 0.3.
 */
export function formatEspruinoNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n < 0 ? '-Infinity' : 'Infinity';
  if (Object.is(n, -0)) return '0';
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  const stopAtError = 0.0000001;
  let sign = '';
  let val = n;
  if (val < 0) {
    sign = '-';
    val = -val;
  }
  if (Math.floor(val + stopAtError) === Math.floor(val) + 1) val = Math.floor(val) + 1;
  const whole = Math.floor(val);
  let digits = whole >= 1e21 ? whole.toLocaleString('en-US', { useGrouping: false }) : String(whole);
  let fraction = val - whole;
  if (fraction <= 0) return sign + digits;
  digits += '.';
  fraction *= 10;
  for (let count = 0; count < 11 && fraction > stopAtError; count++) {
    const digit = Math.min(9, Math.floor(fraction + 0.00000001));
    fraction = (fraction - digit) * 10;
    digits += String(digit);
  }
  return sign + digits;
}
