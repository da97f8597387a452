// An emulated board's Espruino consoles: one line editor per connection behaving like src/jsinteractive.c
// (echo, `\x10` echo-off lines, Alt-Enter and open brackets continuing a statement, `=value` results,
// `Uncaught …` errors, the `>` prompt taken away and given back around output, and the console lock of
// E.setPassword/E.lockConsole), so the real `espruino` CLI can upload to an emulated board and a human can
// use `nc`/`telnet`. A board has two kinds (docs/emulator-console.md):
// - 'usb': the USB-serial console, served on TCP as a stand-in for the cable (always there while the
//   program runs; what is typed while the board is off reaches nothing), and in-process (attachConsole,
//   for the testbed and provisioning in this process).
// - 'network': Espruino's TelnetServer (TCP port 23 on an ESP32): listening only while the board runs with
//   the network console on, which every boot turns on and require("TelnetServer").setOptions({mode:"off"})
//   turns off; one client at a time, a new one drops the previous (jswrap_telnet.c telnetAccept).
// The lock is the board's (one flag, as Espruino's jsiStatus): a password typed at any console unlocks all.
// Notes and source references: docs/emulator-console.md.
import { createServer, type Server, type Socket } from 'node:net';
import { tokenizer } from 'acorn';
import { formatReplValue } from './espruino-format.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

/** What the console needs from a board (the emulator's Board satisfies it). */
export interface ConsoleBoard {
  /** Runs one console line (refused while the console is locked). */
  runConsoleLine(code: string): { value?: unknown; error?: string };
  onOutput(listener: (text: string) => void): () => void;
  readonly running: boolean;
  /** E.lockConsole() is in force: every console line is a password attempt. */
  readonly consoleLocked: boolean;
  /** One password attempt (a line typed while locked); true when it unlocked the console. */
  consolePasswordAttempt(attempt: string): boolean;
  /** The network console (TelnetServer) is on: the board runs and nothing turned it off since boot. */
  readonly networkConsoleOn: boolean;
  onNetworkConsoleChange(listener: () => void): () => void;
}

export type ConsoleKind = 'usb' | 'network';

export interface ConsoleOptions {
  /** TCP port; 0 picks a free one (read it from the result). */
  port: number;
  host?: string;
  /** Listening anywhere but loopback lets anyone on the network run code on the board: opt in explicitly. */
  allowRemote?: boolean;
  /** Which of the board's consoles (default 'usb'). */
  kind?: ConsoleKind;
}

export interface RunningConsole {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export class ConsoleError extends VeilgridError {
  constructor(message: string) {
    super('ConsoleError', 'console', message);
  }
}

/** A console session without a transport: `input` takes what is typed, `write` gets what the board shows. */
export interface AttachedConsole {
  input(text: string): void;
  close(): void;
}

/** Attaches one console session to `board` (the in-process end of its USB console). */
export function attachConsole(board: ConsoleBoard, write: (text: string) => void): AttachedConsole {
  const session = new ReplSession(board, write);
  const stopOutput = board.onOutput((text) => session.printOutput(text));
  return {
    input: (text) => session.input(text),
    close: () => {
      stopOutput();
      session.closed = true;
    },
  };
}

/** Starts a console server for `board`; resolves once it listens (a network console: once its port is chosen). */
export async function startConsole(board: ConsoleBoard, options: ConsoleOptions): Promise<RunningConsole> {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host) && !options.allowRemote) {
    throw new ConsoleError(
      `refusing to open the board console on ${host}: anyone who reaches it can run code on the board. ` +
        'Use 127.0.0.1, or pass allowRemote: true (veilgrid emulate --console-host HOST --allow-remote) if you mean it.',
    );
  }
  const network = options.kind === 'network';
  const sockets = new Set<Socket>();
  const onConnection = (socket: Socket) => {
    if (network) for (const other of sockets) other.destroy(); // telnetAccept: one client, the newest
    sockets.add(socket);
    socket.setEncoding('latin1'); // the console is 8-bit, like the UART it stands for
    socket.setNoDelay(true);
    const attached = attachConsole(board, (text) => {
      if (!socket.destroyed && socket.writable) socket.write(text, 'latin1');
    });
    socket.on('data', (chunk: string) => attached.input(chunk));
    socket.on('close', () => {
      attached.close();
      sockets.delete(socket);
    });
    socket.on('error', () => socket.destroy()); // a client vanishing is normal; the board carries on
  };
  const open = async (port: number): Promise<Server> => {
    const server = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new ConsoleError(
            `cannot open the board's ${network ? 'network ' : ''}console on ${host}:${port}: ${err.message}`,
          ),
        ),
      );
      server.listen(port, host, () => resolve());
    });
    return server;
  };
  const shut = (server: Server) =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      server.close(() => resolve());
    });

  let server: Server | undefined = await open(options.port);
  const port = (server.address() as { port: number }).port;
  if (!network) return { port, host, close: () => shut(server!) };

  // The network console listens only while it is on (jswrap_telnet_idle starts and stops the server in
  // the idle loop: boot code that turns it off runs first, so it never listens then).
  let closed = false;
  let settling: Promise<void> = Promise.resolve();
  const settle = () => {
    settling = settling
      .then(async () => {
        const want = board.networkConsoleOn && !closed;
        if (want && !server) server = await open(port);
        else if (!want && server) {
          const s = server;
          server = undefined;
          await shut(s);
        }
      })
      .catch(() => {});
  };
  const stopWatching = board.onNetworkConsoleChange(() => setImmediate(settle));
  settle();
  await settling;
  return {
    port,
    host,
    close: async () => {
      closed = true;
      stopWatching();
      settle();
      await settling;
    },
  };
}

const ESC = '\x1b';
/** Erase from the cursor to the end of the screen (jsiConsoleEraseAfterCursor). */
const ERASE_AFTER_CURSOR = `${ESC}[J`;
const CURSOR_UP = `${ESC}[A`;

type EscapeState = 'none' | 'esc' | 'esc[' | 'esc[n' | 'escO';

/** Espruino stops filling the input line of a password attempt at this length (jsiHandleConsoleChar). */
const PASSWORD_LINE_MAX = 20;

/** One connection's REPL state: the input line, echo, and whether the `>` prompt is on screen. */
class ReplSession {
  closed = false;
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
    private readonly output: (text: string) => void,
  ) {
    this.returnPrompt();
  }

  /** Characters typed at this console. */
  input(chunk: string): void {
    for (const ch of chunk) this.handleChar(ch);
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

  /** jsiShowInputLine: nothing typed is shown while the console is locked. */
  private get echo(): boolean {
    return !this.echoOffForLine && !this.board.consoleLocked;
  }

  private write(text: string): void {
    if (!this.closed) this.output(text);
  }

  /** jsiConsoleRemoveInputLine: take the prompt and the typed line off the screen before printing. */
  private removeInputLine(): void {
    if (this.lineRemoved) return;
    this.lineRemoved = true;
    if (this.echoOffForLine) return; // jsiEcho(), not jsiShowInputLine(): the `password>` prompt goes too
    const linesUp = this.line.split('\n').length - 1;
    this.write(CURSOR_UP.repeat(linesUp) + '\r' + ERASE_AFTER_CURSOR);
  }

  /**
   * jsiConsoleReturnInputLine: show `>` and whatever was typed so far again. While the console is locked
   * the prompt is `password>`, and Espruino prints the part of the attempt typed so far after it too, then
   * moves the cursor back over it (its cursor stays at 0 while an attempt is typed): espruino-2v29 shows
   * `password>` + the typed characters + one `Esc [ D` each when output comes in the middle of an attempt.
   */
  private returnPrompt(): void {
    if (!this.lineRemoved || !this.board.running) return;
    this.lineRemoved = false;
    if (this.echoOffForLine) return;
    if (this.board.consoleLocked) this.write('password>' + this.line + `${ESC}[D`.repeat(this.line.length));
    else this.write('>' + this.line.replace(/\n/g, '\r\n:'));
  }

  private handleChar(ch: string): void {
    const code = ch.charCodeAt(0);
    if (this.skipTelnetNegotiation(code)) return;
    if (this.board.running && this.board.consoleLocked) return this.passwordChar(ch);
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

  /**
   * While locked (jsiHandleConsoleChar, before anything else): Enter (`\r` or `\n`, each one) ends an
   * attempt, which unlocks the console or is refused; every other character, control characters, Ctrl-C
   * and `\x10` included, is part of the attempt up to 20 characters and dropped beyond; nothing is echoed
   * and nothing else happens.
   */
  private passwordChar(ch: string): void {
    this.hadCR = false;
    this.escape = 'none';
    if (ch !== '\r' && ch !== '\n') {
      if (this.line.length < PASSWORD_LINE_MAX) this.line += ch;
      return;
    }
    const attempt = this.line;
    this.line = '';
    this.echoOffForLine = false;
    if (this.board.consolePasswordAttempt(attempt)) {
      this.write('\r\n  Logged in.\r\n');
      this.lineRemoved = true;
      this.returnPrompt();
    } else {
      this.write('\r\n  Invalid password\r\npassword>');
      this.lineRemoved = false;
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
      if (ch === '\n')
        this.newLine(false); // Alt-Enter: a newline that does not execute
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
    const result = this.board.runConsoleLine(code);
    if (result.error !== undefined) {
      this.removeInputLine();
      this.write(toConsoleNewlines(formatUncaught(result.error)));
    } else if (!this.echoOffForLine && code.length > 0) {
      // jsiEcho(): a line that locked the console still shows its value
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
