// Talking to a meter's Espruino console to call its provisioning entry points: over a serial port, over
// TCP (an emulated board's USB console from `veilgrid emulate`, the espruino-linux board's, or Espruino's
// Telnet console where it is on), or in-process (the testbed's emulated boards, through a console session
// attached to the board: boards/emulator/console.ts attachConsole). All three carry the same bytes, so the
// provisioning flow cannot tell them apart.
//
// A provisioned meter's console is locked (E.lockConsole, firmware/src/platform/console-lock.ts): every
// line is a password attempt, answered `Invalid password` + `password>`, until its console password comes
// (`Logged in.`); one unlock holds until the next lockConsole() (every boot) or reboot. So each call is
// sent as it is, and when the console answers it as a refused password attempt, the console password
// (setConsolePassword) goes first and the call again: the password is sent only when the console asks.
// A console this side unlocked is locked again when it is closed (E.lockConsole(); the firmware set the
// password at boot), so a technician's session does not leave the meter open until its next reboot.
//
// Why not EspruinoTools' Node API (`require('espruino').expr`): it loads its files into this process's
// global scope (defining `$`, `Espruino`, a global `require`) and prints to stdout, which a library
// called by the testbed must not do; its upload path (espruino-cli.ts) is for sending whole files.
// The console protocol needed here is small: one echo-off line (Espruino's `\x10` prefix) per call,
// whose printed result is found between markers that the line itself never contains literally.
import net from 'node:net';
import { attachConsole, type ConsoleBoard } from '../emulator/console.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

/** What one call on the meter returned: its value, or the error it threw (as the device describes it). */
export type ConsoleResult = { value: unknown } | { error: string };

export interface MeterConsole {
  /** Human-readable address, for messages. */
  readonly address: string;
  /**
   * Evaluates one JavaScript expression on the meter. Rejects (MeterConsoleError) only when the console
   * does not answer within timeoutMs (real time; default 30 s) or the connection is gone.
   */
  evaluate(expression: string, timeoutMs?: number): Promise<ConsoleResult>;
  /** The meter's console password, typed when (and only when) its console says it is locked. */
  setConsolePassword(password: string | undefined): void;
  close(): Promise<void>;
}

/** Why a locked console could not be used: no password was given, or the one given was refused. */
export type ConsoleLockProblem = 'no-password' | 'refused';

export class MeterConsoleError extends VeilgridError {
  constructor(
    message: string,
    /** The console did not answer in time (it may still be booting); the connection is still usable. */
    readonly timedOut = false,
    /** Set when the console is locked and could not be unlocked. */
    readonly locked?: ConsoleLockProblem,
  ) {
    super('MeterConsoleError', timedOut ? 'timeout' : locked ? 'console-' + locked : 'meter-console', message);
  }
}

/** What Espruino prints for a refused password attempt, and for the right one (src/jsinteractive.c). */
const REFUSED = /\r?\n {2}Invalid password\r?\npassword>/;
const LOGGED_IN = /\r?\n {2}Logged in\.\r?\n/;
const LOCKED_PROMPT = 'password>';
/**
 * After the password went out, a refusal may still be the answer to an earlier line (one a call that timed
 * out left in the console, while the meter rebooted): a refusal counts as the password's only when no
 * `Logged in.` follows within this long.
 */
const REFUSAL_GRACE_MS = 2_000;

/**
 * The device-side code for one call: evaluates expression and returns JSON `{"v":value}` or
 * `{"e":"message"}`. Plain ES5 that passes the Espruino profile check.
 */
export function wrappedExpression(expression: string): string {
  return `(function(){try{return JSON.stringify({v:(${expression})})}catch(e){return JSON.stringify({e:String(e)})}})()`;
}

function parseWrapped(text: string): ConsoleResult {
  const parsed = JSON.parse(text) as { v?: unknown; e?: string };
  return typeof parsed.e === 'string' ? { error: parsed.e } : { value: parsed.v };
}

/**
 * A console on an emulated board in this process: a console session attached to the board (its USB
 * console), so the lock applies exactly as on a serial or TCP console.
 */
export function inProcessConsole(board: ConsoleBoard, address = 'in-process board'): MeterConsole {
  const listeners: Array<(text: string) => void> = [];
  const attached = attachConsole(board, (text) => {
    for (const listener of listeners) listener(text);
  });
  return streamConsole(address, {
    write: (data) => attached.input(data),
    onData: (listener) => void listeners.push(listener),
    onClose: () => {},
    close: async () => attached.close(),
  });
}

/** Real-time bound on one call (the SE's key generation and a reboot are well inside it). */
const CALL_TIMEOUT_MS = 30_000;
/** Console output kept while waiting for a result: boot messages and the like are dropped beyond this. */
const MAX_BUFFERED_CHARS = 65_536;
const CONNECT_TIMEOUT_MS = 10_000;

/** Anything that carries console bytes both ways: a TCP socket or a serial port. */
export interface ByteLink {
  write(data: string): void;
  onData(listener: (text: string) => void): void;
  onClose(listener: (why: string) => void): void;
  close(): Promise<void>;
}

/**
 * A console over a byte stream; each call prints its result between numbered markers. clearLine: start
 * with a Ctrl-C (default), which the Linux build of Espruino takes as a request to exit when a second one
 * follows within 5 s on an empty line: a short probe before another tool's connection does without it.
 */
export function streamConsole(address: string, link: ByteLink, clearLine = true): MeterConsole {
  let received = '';
  let closedBecause: string | undefined;
  let waiter: (() => void) | undefined;
  let calls = 0;
  let password: string | undefined;
  /** This side typed the password and was let in: lock again on close. */
  let unlockedHere = false;
  link.onData((text) => {
    received += text;
    if (received.length > MAX_BUFFERED_CHARS) received = received.slice(-MAX_BUFFERED_CHARS);
    // A `password>` prompt after our unlock: the meter locked itself again (it rebooted): nothing to lock on close.
    if (unlockedHere && received.slice(-(text.length + LOCKED_PROMPT.length)).includes(LOCKED_PROMPT))
      unlockedHere = false;
    waiter?.();
  });
  link.onClose((why) => {
    closedBecause = why;
    waiter?.();
  });
  // Ctrl-C clears whatever half-typed line the console holds (as EspruinoTools does before sending).
  if (clearLine) link.write('\x03');
  return {
    address,
    setConsolePassword(value) {
      password = value;
    },
    evaluate(expression, timeoutMs = CALL_TIMEOUT_MS) {
      const id = ++calls;
      const start = `<<vg${id}>`;
      const end = `</vg${id}>>`;
      // The markers are built by concatenation on the device, so an echo of the line never contains them.
      const line = `\x10print("<<"+"vg${id}>"+${wrappedExpression(expression)}+"</"+"vg${id}>>")\n`;
      return new Promise<ConsoleResult>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            finish(
              new MeterConsoleError(
                `${address}: no answer from the meter console within ${timeoutMs / 1000} s (is the firmware running? try 'veilgrid flash')`,
                true,
              ),
            ),
          timeoutMs,
        );
        let refusedTimer: ReturnType<typeof setTimeout> | undefined;
        const finish = (error?: Error, result?: ConsoleResult) => {
          clearTimeout(timer);
          clearTimeout(refusedTimer);
          waiter = undefined;
          if (error) reject(error);
          else resolve(result!);
        };
        // Only what the console says after this call's line went out counts as its answer.
        received = '';
        let unlocking = false;
        // Written after the current chunk is handled: an in-process console answers while it is being written to.
        const send = (text: string) => queueMicrotask(() => closedBecause === undefined && link.write(text));
        waiter = () => {
          const from = received.indexOf(start);
          const to = from < 0 ? -1 : received.indexOf(end, from);
          if (to >= 0) {
            const text = received.slice(from + start.length, to);
            received = received.slice(to + end.length);
            try {
              finish(undefined, parseWrapped(text));
            } catch {
              finish(new MeterConsoleError(`${address}: the meter printed an unreadable result: ${text.slice(0, 80)}`));
            }
            return;
          }
          const refused = REFUSED.exec(received);
          const loggedIn = unlocking ? LOGGED_IN.exec(received) : null;
          if (refused && !(loggedIn && loggedIn.index < refused.index)) {
            // The line was taken as a password attempt: the console is locked.
            received = received.slice(refused.index + refused[0].length);
            if (unlocking) {
              refusedTimer ??= setTimeout(
                () =>
                  finish(
                    new MeterConsoleError(
                      `${address}: the meter's console is locked and refused the console password given for it`,
                      false,
                      'refused',
                    ),
                  ),
                REFUSAL_GRACE_MS,
              );
              return waiter?.(); // the login may have come in the same chunk
            }
            if (password === undefined)
              return finish(
                new MeterConsoleError(
                  `${address}: the meter's console is locked (it asks for its console password) and no console password was given for it`,
                  false,
                  'no-password',
                ),
              );
            unlocking = true;
            send(password + '\n');
            return;
          }
          if (loggedIn) {
            clearTimeout(refusedTimer);
            refusedTimer = undefined;
            unlocking = false;
            unlockedHere = true;
            received = received.slice(loggedIn.index + loggedIn[0].length);
            send(line);
            return;
          }
          if (closedBecause !== undefined)
            finish(new MeterConsoleError(`${address}: the console connection closed (${closedBecause})`));
        };
        if (closedBecause !== undefined) return waiter();
        link.write(line);
      });
    },
    close: () => {
      // Locked again (a no-op where no password is set; a refused attempt if a reboot has locked it already).
      if (unlockedHere && closedBecause === undefined) link.write('\x10E.lockConsole()\n');
      return link.close();
    },
  };
}

/** A meter's console relayed on a local TCP port, already unlocked: for a tool that cannot type a password. */
export interface ConsoleRelay {
  /** `tcp://127.0.0.1:N`: one connection, whose bytes go to and come from the meter's console unchanged. */
  readonly port: string;
  close(): Promise<void>;
}

/**
 * Opens `port` (as openMeterConsole does), unlocks its console with `password` if it is locked, and relays
 * it on a local TCP port: the espruino CLI, which knows no console password, connects there. Rejects with
 * MeterConsoleError when the meter cannot be reached or its console not unlocked.
 */
export async function openUnlockedRelay(
  port: string,
  password: string,
  timeoutMs = CALL_TIMEOUT_MS,
): Promise<ConsoleRelay> {
  const link = await openLink(port);
  let forward: ((text: string) => void) | undefined;
  // streamConsole keeps seeing the meter's output (it notices a reboot's lock); the client gets it once relayed.
  const meter = streamConsole(port, {
    ...link,
    onData: (listener) =>
      link.onData((text) => {
        listener(text);
        forward?.(text);
      }),
  });
  meter.setConsolePassword(password);
  try {
    await meter.evaluate('0', timeoutMs);
  } catch (err) {
    await meter.close(); // locks the console again if the relay unlocked it
    throw err;
  }
  forward = () => {}; // from here on the meter's bytes are the relayed client's
  let client: net.Socket | undefined;
  const server = net.createServer((socket) => {
    if (client) return void socket.destroy();
    client = socket;
    socket.setNoDelay(true);
    forward = (text) => void (socket.destroyed || socket.write(text, 'latin1'));
    socket.on('data', (data: Buffer) => link.write(data.toString('latin1')));
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: async () => {
      client?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await meter.close(); // locks the console again if the relay unlocked it
    },
  };
}

/**
 * Whether the console on `port` is locked (it takes lines only as password attempts): asks it to evaluate
 * `0`. False when it answers, and also when it cannot be reached or does not answer within timeoutMs (the
 * caller's own connection then reports that).
 */
export async function consoleIsLocked(port: string, timeoutMs = 5_000): Promise<boolean> {
  let meter: MeterConsole;
  try {
    meter = streamConsole(port, await openLink(port), false);
  } catch {
    return false;
  }
  try {
    await meter.evaluate('0', timeoutMs);
    return false;
  } catch (err) {
    return err instanceof MeterConsoleError && err.locked === 'no-password';
  } finally {
    await meter.close();
  }
}

function openLink(port: string): Promise<ByteLink> {
  return port.startsWith('tcp://') ? tcpLink(port) : serialLink(port);
}

/** Connects to `tcp://host:port` or opens a serial device (115200 baud, the ESP32 console's rate). */
export async function openMeterConsole(port: string): Promise<MeterConsole> {
  return streamConsole(port, await openLink(port));
}

async function tcpLink(port: string): Promise<ByteLink> {
  const match = /^tcp:\/\/([^:/]+)(?::(\d+))?\/?$/.exec(port);
  if (!match)
    throw new MeterConsoleError(`cannot read the port "${port}": expected tcp://host:port or a serial device path`);
  const host = match[1];
  const tcpPort = Number(match[2] ?? 23);
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host, port: tcpPort });
    const timer = setTimeout(() => {
      s.destroy();
      reject(
        new MeterConsoleError(
          `cannot reach the meter console at ${port}: no connection within ${CONNECT_TIMEOUT_MS / 1000} s`,
        ),
      );
    }, CONNECT_TIMEOUT_MS);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new MeterConsoleError(
          `cannot reach the meter console at ${port}: ${err.code ?? err.message} (is the meter connected, or 'veilgrid emulate' running?)`,
        ),
      );
    });
  });
  socket.setEncoding('latin1');
  socket.on('error', () => {}); // reported through 'close'
  return {
    write: (data) => socket.write(data, 'latin1'),
    onData: (listener) => socket.on('data', (d: string) => listener(d)),
    onClose: (listener) => socket.on('close', () => listener('closed by the meter')),
    close: () =>
      new Promise<void>((resolve) => {
        if (socket.destroyed) return resolve();
        socket.once('close', () => resolve());
        socket.end();
        setTimeout(() => socket.destroy(), 1000).unref();
      }),
  };
}

/** After opening a serial port: wait until the board printed nothing for this long, at most SERIAL_SETTLE_MAX_MS. */
const SERIAL_QUIET_MS = 300;
const SERIAL_SETTLE_MAX_MS = 3000;

async function serialLink(port: string): Promise<ByteLink> {
  let SerialPort: typeof import('serialport').SerialPort;
  try {
    ({ SerialPort } = await import('serialport'));
  } catch {
    throw new MeterConsoleError(
      `cannot open ${port}: serial ports need the 'serialport' package (an optional dependency of espruino): npm install serialport`,
    );
  }
  const serial = await new Promise<InstanceType<typeof SerialPort>>((resolve, reject) => {
    const s = new SerialPort({ path: port, baudRate: 115200 }, (err) => {
      if (err)
        reject(
          new MeterConsoleError(
            `cannot open the serial port ${port}: ${err.message} (is the meter plugged in, and do you have access to ${port}?)`,
          ),
        );
      else resolve(s);
    });
  });
  serial.on('error', () => {}); // reported through 'close'
  // Opening the port toggles DTR/RTS, which resets many ESP32 boards: let the boot messages pass first.
  await new Promise<void>((resolve) => {
    let quiet = setTimeout(done, SERIAL_QUIET_MS);
    const cap = setTimeout(done, SERIAL_SETTLE_MAX_MS);
    const onData = () => {
      clearTimeout(quiet);
      quiet = setTimeout(done, SERIAL_QUIET_MS);
    };
    function done() {
      clearTimeout(quiet);
      clearTimeout(cap);
      serial.off('data', onData);
      resolve();
    }
    serial.on('data', onData);
  });
  return {
    write: (data) => void serial.write(Buffer.from(data, 'latin1')),
    onData: (listener) => serial.on('data', (d: Buffer) => listener(d.toString('latin1'))),
    onClose: (listener) => serial.on('close', () => listener('serial port closed')),
    close: () =>
      new Promise<void>((resolve) => (serial.isOpen ? serial.drain(() => serial.close(() => resolve())) : resolve())),
  };
}
