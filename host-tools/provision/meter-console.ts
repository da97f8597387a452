// Talking to a meter's Espruino console to call its provisioning entry points: over a serial port, over
// TCP (Espruino's Telnet console, or an emulated board's console from `veilgrid emulate`), or in-process
// (the testbed's boards, through board.evaluate). All three run the same wrapped expression, so the
// provisioning flow cannot tell them apart.
//
// Why not EspruinoTools' Node API (`require('espruino').expr`): it loads its files into this process's
// global scope (defining `$`, `Espruino`, a global `require`) and prints to stdout, which a library
// called by the testbed must not do; its upload path (espruino-cli.ts) is for sending whole files.
// The console protocol needed here is small: one echo-off line (Espruino's `\x10` prefix) per call,
// whose printed result is found between markers that the line itself never contains literally.
import net from 'node:net';

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
  close(): Promise<void>;
}

export class MeterConsoleError extends Error {
  constructor(
    message: string,
    /** The console did not answer in time (it may still be booting); the connection is still usable. */
    readonly timedOut = false,
  ) {
    super(message);
    this.name = 'MeterConsoleError';
  }
}

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

/** A console on a board in this process (anything with the emulator Board's evaluate). */
export function inProcessConsole(board: { evaluate(code: string): { value?: unknown; error?: string } }, address = 'in-process board'): MeterConsole {
  return {
    address,
    async evaluate(expression) {
      const result = board.evaluate(wrappedExpression(expression));
      if (result.error !== undefined) return { error: result.error };
      if (typeof result.value !== 'string') throw new MeterConsoleError(`${address}: the console returned ${typeof result.value} instead of the call's JSON`);
      return parseWrapped(result.value);
    },
    async close() {},
  };
}

/** Real-time bound on one call (the SE's key generation and a reboot are well inside it). */
const CALL_TIMEOUT_MS = 30_000;
/** Console output kept while waiting for a result: boot messages and the like are dropped beyond this. */
const MAX_BUFFERED_CHARS = 65_536;
const CONNECT_TIMEOUT_MS = 10_000;

/** Anything that carries console bytes both ways: a TCP socket or a serial port. */
interface ByteLink {
  write(data: string): void;
  onData(listener: (text: string) => void): void;
  onClose(listener: (why: string) => void): void;
  close(): Promise<void>;
}

/** A console over a byte stream; each call prints its result between numbered markers. */
function streamConsole(address: string, link: ByteLink): MeterConsole {
  let received = '';
  let closedBecause: string | undefined;
  let waiter: (() => void) | undefined;
  let calls = 0;
  link.onData((text) => {
    received += text;
    if (received.length > MAX_BUFFERED_CHARS) received = received.slice(-MAX_BUFFERED_CHARS);
    waiter?.();
  });
  link.onClose((why) => {
    closedBecause = why;
    waiter?.();
  });
  // Ctrl-C clears whatever half-typed line the console holds (as EspruinoTools does before sending).
  link.write('\x03');
  return {
    address,
    evaluate(expression, timeoutMs = CALL_TIMEOUT_MS) {
      const id = ++calls;
      const start = `<<vg${id}>`;
      const end = `</vg${id}>>`;
      // The markers are built by concatenation on the device, so an echo of the line never contains them.
      const line = `\x10print("<<"+"vg${id}>"+${wrappedExpression(expression)}+"</"+"vg${id}>>")\n`;
      return new Promise<ConsoleResult>((resolve, reject) => {
        const timer = setTimeout(() => finish(new MeterConsoleError(`${address}: no answer from the meter console within ${timeoutMs / 1000} s (is the firmware running? try 'veilgrid flash')`, true)), timeoutMs);
        const finish = (error?: Error, result?: ConsoleResult) => {
          clearTimeout(timer);
          waiter = undefined;
          if (error) reject(error);
          else resolve(result!);
        };
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
          } else if (closedBecause !== undefined) {
            finish(new MeterConsoleError(`${address}: the console connection closed (${closedBecause})`));
          }
        };
        if (closedBecause !== undefined) return waiter();
        link.write(line);
      });
    },
    close: () => link.close(),
  };
}

/** Connects to `tcp://host:port` or opens a serial device (115200 baud, the ESP32 console's rate). */
export async function openMeterConsole(port: string): Promise<MeterConsole> {
  if (port.startsWith('tcp://')) return streamConsole(port, await tcpLink(port));
  return streamConsole(port, await serialLink(port));
}

async function tcpLink(port: string): Promise<ByteLink> {
  const match = /^tcp:\/\/([^:/]+)(?::(\d+))?\/?$/.exec(port);
  if (!match) throw new MeterConsoleError(`cannot read the port "${port}": expected tcp://host:port or a serial device path`);
  const host = match[1];
  const tcpPort = Number(match[2] ?? 23);
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ host, port: tcpPort });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new MeterConsoleError(`cannot reach the meter console at ${port}: no connection within ${CONNECT_TIMEOUT_MS / 1000} s`));
    }, CONNECT_TIMEOUT_MS);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new MeterConsoleError(`cannot reach the meter console at ${port}: ${err.code ?? err.message} (is the meter connected, or 'veilgrid emulate' running?)`));
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
    throw new MeterConsoleError(`cannot open ${port}: serial ports need the 'serialport' package (an optional dependency of espruino): npm install serialport`);
  }
  const serial = await new Promise<InstanceType<typeof SerialPort>>((resolve, reject) => {
    const s = new SerialPort({ path: port, baudRate: 115200 }, (err) => {
      if (err) reject(new MeterConsoleError(`cannot open the serial port ${port}: ${err.message} (is the meter plugged in, and do you have access to ${port}?)`));
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
    close: () => new Promise<void>((resolve) => (serial.isOpen ? serial.close(() => resolve()) : resolve())),
  };
}
