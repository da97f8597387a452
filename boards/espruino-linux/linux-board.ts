// The espruino-linux board: the firmware bundle runs in Espruino 2v29's own interpreter (built for Linux
// with the ESP32's memory layout) as a child process; the board supplies only the hardware around it.
//
// - Storage is the interpreter's own flash file, espruino.flash in the board's folder. While the board is
//   off the host reads and writes it with the emulator's Storage model (the same layout, byte for byte),
//   as a flash programmer would.
// - The console is served on a TCP port on 127.0.0.1 like a USB board's serial console, so `veilgrid
//   flash`, `veilgrid provision` and the `espruino` CLI reach it unchanged (and a pty bridge puts it on a
//   serial device path: pty-bridge.ts). The port stays open across power cycles, as a USB-serial chip
//   stays powered by USB; what is typed while the board is off reaches nothing. Behind it is the
//   interpreter's own console on its stdout; its input goes over a socket the interpreter opens to this
//   board once the hardware prelude has run (see hardware-prelude.ts for why not stdin), and through
//   stdin before that (booting, or after reset() until load()). Stdin is kept open: at end of input the
//   Linux build spins.
// - The ATECC608 on I2C1 is the emulator's chip model behind a synchronous pipe bridge (se-bridge.ts),
//   Wi-Fi is "as present", S0 inputs get their edges over s0-link.ts: see hardware-prelude.ts, docs/hil.md.
// - Power on starts the interpreter, which boots from Storage as on the board; a power cut is SIGKILL at
//   that instant: whatever the interpreter had not written to its flash file is gone.
// - Time is real time (RealTimeClock): tests use short intervals.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import type { BoardDefinition } from '../board-definition.ts';
import { Flash } from '../emulator/flash.ts';
import { EspruinoStorage } from '../emulator/storage.ts';
import { eepromPathFor } from '../emulator/devices/atecc608/persistence.ts';
import { openMeterConsole, type ConsoleResult, type MeterConsole } from '../console/meter-console.ts';
import { CONSOLE_INPUT_WINDOW, HARDWARE_PRELUDE, PORTS_FILE, PRELUDE_FILE } from './hardware-prelude.ts';
import { espruinoInterpreterPath } from './interpreter-path.ts';
import { RealTimeClock } from './real-time-clock.ts';
import { S0Link } from './s0-link.ts';
import { SeBridge } from './se-bridge.ts';

export const FLASH_FILE = 'espruino.flash';

export interface LinuxBoardOptions {
  definition: BoardDefinition;
  /** The board's own folder: its flash file, the SE's EEPROM, the pipes. Created if missing. */
  dir: string;
  /** Shown in messages. */
  name?: string;
  /** The interpreter; default espruinoInterpreterPath() (VEILGRID_ESPRUINO_BIN or ../shared/espruino/). */
  binary?: string;
  /** TCP port of the console on 127.0.0.1; 0 (default) picks a free one. */
  consolePort?: number;
}

/**
 * Real-time bound on booting. Parsing the bundle takes well under a second, but a provisioned meter's boot
 * talks to its SE and sends its backlog: seconds on a busy host (docs/hil.md).
 */
const BOOT_TIMEOUT_MS = 120_000;

export class LinuxBoard {
  readonly definition: BoardDefinition;
  readonly dir: string;
  readonly name: string;
  readonly flashPath: string;
  readonly binary: string;
  readonly clock = new RealTimeClock();
  /** The S0 input pins (devices drive them: S0PulseSource({ board, … }) works on this board). */
  readonly pins: S0Link;
  private readonly server: Server;
  private readonly clients = new Set<Socket>();
  /** Where the interpreter connects for its console input (hardware-prelude.ts). */
  private readonly consoleLink: Server;
  /** The interpreter's console input connection, while it has one. */
  private device: Socket | undefined;
  /** Console input waiting for room in the prelude's window, and the bytes sent it has not answered. */
  private deviceQueue: Buffer[] = [];
  private deviceUnanswered = 0;
  /** While booting: sees the console's output until its prompt is back (boot files and init ran). */
  private bootWatch: ((text: string) => void) | undefined;
  private readonly outputListeners = new Set<(text: string) => void>();
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private bridge: SeBridge | undefined;
  private seCommandsBefore = 0;
  private console: MeterConsole | undefined;
  private consolePassword: string | undefined;
  private closed = false;

  private constructor(opts: LinuxBoardOptions, binary: string, server: Server, consoleLink: Server, pins: S0Link) {
    this.definition = opts.definition;
    this.dir = opts.dir;
    this.name = opts.name ?? path.basename(opts.dir);
    this.flashPath = path.join(opts.dir, FLASH_FILE);
    this.binary = binary;
    this.server = server;
    this.consoleLink = consoleLink;
    this.pins = pins;
    server.on('connection', (socket) => this.attachClient(socket));
    consoleLink.on('connection', (socket) => this.attachDevice(socket));
  }

  /** A board, off, with its console listening. Throws when there is no interpreter binary. */
  static async create(opts: LinuxBoardOptions): Promise<LinuxBoard> {
    const binary = opts.binary ?? espruinoInterpreterPath();
    if (!binary)
      throw new Error(
        'no Espruino interpreter for the espruino-linux board: set VEILGRID_ESPRUINO_BIN, or put espruino-2v29-esp32like in ../shared/espruino/',
      );
    // 0700: the interpreter's flash file holds the meter's configuration, the SE model its private keys.
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    const server = await listen(opts.consolePort ?? 0, 'the console of the espruino-linux board');
    return new LinuxBoard(opts, binary, server, await listen(0, 'the console link'), await S0Link.start());
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** The console's TCP port on 127.0.0.1. */
  get consolePort(): number {
    return (this.server.address() as { port: number }).port;
  }

  /** The SE's EEPROM file (keys, locks, counters), beside the flash file as on the vm board. */
  get sePath(): string {
    return eepromPathFor(this.flashPath);
  }

  /** SE commands executed since the board object was made (across power cycles). */
  get seCommands(): number {
    return this.seCommandsBefore + (this.bridge?.commands ?? 0);
  }

  /**
   * Runs fn on the board's Storage as a flash programmer would: only while the board is off (the
   * interpreter owns its flash file while it runs).
   */
  withStorage<T>(fn: (storage: EspruinoStorage) => T): T {
    if (this.running)
      throw new Error(
        `board ${this.name} is on: its flash belongs to the interpreter; powerCut() it first (or write through its console)`,
      );
    const flash = new Flash({
      sizeBytes: this.definition.storage.bytes,
      pageBytes: this.definition.storage.pageBytes,
      path: this.flashPath,
    });
    try {
      return fn(new EspruinoStorage(flash));
    } finally {
      flash.close();
    }
  }

  /** Starts the interpreter on the board's flash; resolves once it has booted (its prompt is back). */
  async powerOn(): Promise<void> {
    if (this.closed) throw new Error(`board ${this.name} is closed`);
    if (this.running) throw new Error(`board ${this.name} is already on: powerCut() it first`);
    this.withStorage((storage) => {
      if (storage.read(PRELUDE_FILE) !== HARDWARE_PRELUDE) storage.write(PRELUDE_FILE, HARDWARE_PRELUDE);
    });
    const ports = { console: (this.consoleLink.address() as { port: number }).port, s0: this.pins.port };
    writeFileSync(path.join(this.dir, PORTS_FILE), JSON.stringify(ports));
    this.bridge = new SeBridge(this.dir, this.flashPath, (err) =>
      this.print(
        `\r\n[board ${this.name}: the ATECC608 bridge failed, I2C1 will hang: ${err.stack ?? err.message}]\r\n`,
      ),
    );
    // setpriv --pdeathsig: the board's power comes from this process; if it dies (even by SIGKILL), the
    // interpreter is killed too instead of living on with its stdin closed (where it spins).
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', this.binary], {
      cwd: this.dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    let failed: (err: Error) => void = () => {};
    let seen = '';
    const ready = new Promise<void>((resolve, reject) => {
      this.bootWatch = (text) => {
        seen += text;
        // The prompt comes back once the boot files and the init handlers have run (`password>` when the
        // firmware locked the console).
        if (/(^|\n)(password)?>$/.test(seen)) resolve();
      };
      failed = reject;
    });
    child.stdin!.on('error', () => {}); // writing to a board that just lost power
    child.stdout!.setEncoding('latin1').on('data', (text: string) => {
      this.bootWatch?.(text);
      this.print(text);
    });
    child.stderr!.setEncoding('latin1').on('data', () => {}); // its start-up notes ("Interactive mode." …)
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('exit', (code, signal) => {
      failed(new Error(`the interpreter of board ${this.name} ended while booting (${signal ?? 'exit code ' + code})`));
      if (this.child !== child) return; // a power cut
      this.print(
        `\r\n[board ${this.name}: the interpreter ended by itself (${signal ?? 'exit code ' + code}); the board is off]\r\n`,
      );
      void this.powerCut();
    });
    child.once('error', (err) => failed(new Error(`cannot start the interpreter ${this.binary}: ${err.message}`)));
    const timer = setTimeout(
      () =>
        failed(
          new Error(
            `board ${this.name} did not boot within ${BOOT_TIMEOUT_MS / 1000} s; its console said:\n${seen.slice(-2000)}`,
          ),
        ),
      BOOT_TIMEOUT_MS,
    );
    try {
      await ready;
    } finally {
      clearTimeout(timer);
      this.bootWatch = undefined;
    }
  }

  /** Power gone at this instant: the interpreter is killed; its flash file holds what reached it. */
  async powerCut(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    child.kill('SIGKILL');
    await this.exited;
    this.device?.destroy();
    this.device = undefined;
    this.pins.disconnect();
    const bridge = this.bridge;
    this.bridge = undefined;
    if (bridge) {
      await bridge.stop();
      this.seCommandsBefore += bridge.commands;
    }
  }

  /** Evaluates an expression at the board's console (over its TCP port, as a technician's tool would). */
  async evaluate(expression: string, timeoutMs?: number): Promise<ConsoleResult> {
    this.console ??= await openMeterConsole(`tcp://127.0.0.1:${this.consolePort}`);
    this.console.setConsolePassword(this.consolePassword);
    return this.console.evaluate(expression, timeoutMs);
  }

  /** The console password evaluate() types when the firmware has locked the console. */
  useConsolePassword(password: string | undefined): void {
    this.consolePassword = password;
  }

  onOutput(listener: (text: string) => void): () => void {
    this.outputListeners.add(listener);
    return () => this.outputListeners.delete(listener);
  }

  /** Powers off and frees everything but the board's folder. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.powerCut();
    await this.console?.close();
    for (const client of this.clients) client.destroy();
    await Promise.all(
      [this.server, this.consoleLink].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
    await this.pins.close();
    this.clock.close();
    this.outputListeners.clear();
  }

  private print(text: string): void {
    for (const client of this.clients) if (!client.destroyed) client.write(text, 'latin1');
    for (const listener of [...this.outputListeners]) listener(text);
  }

  private attachClient(socket: Socket): void {
    this.clients.add(socket);
    socket.setNoDelay(true);
    socket.on('data', (data: Buffer) => this.input(data));
    socket.on('error', () => socket.destroy()); // a client vanishing is normal; the board carries on
    socket.on('close', () => this.clients.delete(socket));
  }

  /**
   * Console input. The Linux build exits when Ctrl-C comes twice within 5 s on an empty input line
   * (src/jsinteractive.c, `#ifndef EMBEDDED`); the ESP32 build only clears the line, and the espruino CLI
   * sends two Ctrl-Cs when it sees no prompt. A space right behind each Ctrl-C, in the same write, is in
   * the input line when the idle loop checks for Ctrl-C (the Ctrl-C character itself has cleared the line
   * by then), so Ctrl-C does what it does on the board: clears the line, or interrupts running code.
   */
  private input(data: Buffer): void {
    if (!this.child) return; // a board without power hears nothing
    const chunk = data.includes(3) ? Buffer.from(data.toString('latin1').replace(/\x03/g, '\x03 '), 'latin1') : data;
    if (!this.device) {
      this.child.stdin!.write(chunk);
      return;
    }
    this.deviceQueue.push(chunk);
    this.pumpDevice();
  }

  /** Sends queued console input while the prelude has answered all but CONSOLE_INPUT_WINDOW bytes. */
  private pumpDevice(): void {
    const device = this.device;
    while (device && this.deviceQueue.length > 0 && this.deviceUnanswered < CONSOLE_INPUT_WINDOW) {
      const room = CONSOLE_INPUT_WINDOW - this.deviceUnanswered;
      let chunk = this.deviceQueue[0];
      if (chunk.length > room) {
        this.deviceQueue[0] = chunk.subarray(room);
        chunk = chunk.subarray(0, room);
      } else {
        this.deviceQueue.shift();
      }
      this.deviceUnanswered += chunk.length;
      device.write(chunk);
    }
  }

  /** The interpreter's console input connected (after each boot); reset() closes it again. */
  private attachDevice(socket: Socket): void {
    this.device?.destroy();
    this.device = socket;
    this.deviceUnanswered = 0;
    socket.setNoDelay(true);
    // Each byte the prelude sends back is how many input bytes it handed to the console.
    socket.on('data', (answers: Buffer) => {
      for (const taken of answers) this.deviceUnanswered = Math.max(0, this.deviceUnanswered - taken);
      this.pumpDevice();
    });
    socket.on('error', () => socket.destroy()); // a power cut
    socket.on('close', () => {
      if (this.device !== socket) return;
      this.device = undefined;
      // After reset() the input goes to stdin again; what waited for the prelude follows it there.
      const waiting = this.deviceQueue;
      this.deviceQueue = [];
      if (this.child) for (const chunk of waiting) this.child.stdin!.write(chunk);
    });
  }
}

function listen(port: number, what: string): Promise<Server> {
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot open ${what} on 127.0.0.1:${port}: ${err.message}`)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
