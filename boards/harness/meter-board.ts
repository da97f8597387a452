// One interface for a meter board under test, whatever runs the firmware: the vm emulator (boards/emulator,
// virtual time, any speed) or the real Espruino interpreter (boards/espruino-linux, real time). Hardware-in-
// the-loop scenarios written against it run on both (test/hil/*), and a board on a serial port is reached
// the same way through its console port (docs/hil.md).
//
// A rig holds what the boards of one run share: the clock (virtual or real) and a work folder.
import fs from 'node:fs';
import path from 'node:path';
import { loadBoardDefinition, type BoardDefinition } from '../board-definition.ts';
import { Board } from '../emulator/board.ts';
import { SimClock } from '../emulator/clock.ts';
import { startConsole, type RunningConsole } from '../emulator/console.ts';
import type { S0Board } from '../emulator/devices/s0-pulse-source.ts';
import { espruinoInterpreterPath } from '../espruino-linux/interpreter-path.ts';
import { LinuxBoard } from '../espruino-linux/linux-board.ts';
import { RealTimeClock } from '../espruino-linux/real-time-clock.ts';
import { inProcessConsole, openMeterConsole, type ConsoleResult, type MeterConsole } from '../console/meter-console.ts';

export type Backend = 'vm' | 'espruino-linux';

export const BACKENDS: readonly Backend[] = ['vm', 'espruino-linux'];

export interface MeterBoard extends S0Board {
  readonly backend: Backend;
  readonly name: string;
  readonly running: boolean;
  /** The board's console on 127.0.0.1, as `veilgrid flash`/`provision` and the espruino CLI reach it. */
  readonly consolePort: number;
  /** Boots from Storage; resolves once the firmware's boot code has run. */
  powerOn(): Promise<void>;
  /** Power gone at this instant. */
  powerCut(): Promise<void>;
  /**
   * One expression at the board's console (the USB console, as a technician's tool reaches it: a locked
   * console needs the password given to useConsolePassword); its value, or the error it threw.
   */
  evaluate(expression: string, timeoutMs?: number): Promise<ConsoleResult>;
  /** The console password evaluate() answers the console's lock with (provisioning sets the meter's). */
  useConsolePassword(password: string | undefined): void;
  /** A new console connection for host tools (provisionMeter); close it after use. */
  meterConsole(): Promise<MeterConsole>;
  /** Storage as a flash programmer sees it (espruino-linux: only while off). */
  readFile(name: string): string | undefined;
  writeFile(name: string, data: string): void;
  onOutput(listener: (text: string) => void): () => void;
  /** SE commands the chip executed so far. */
  readonly seCommands: number;
  /** process.memory() of the running firmware, in JsVars; the vm has no JsVar store and says so. */
  memory(): Promise<ConsoleResult>;
  close(): Promise<void>;
}

export interface Rig {
  readonly backend: Backend;
  readonly definition: BoardDefinition;
  /** Seconds on the boards' clock (virtual on vm, real on espruino-linux). */
  readonly clock: S0Board['clock'];
  readonly dir: string;
  addBoard(name: string): Promise<MeterBoard>;
  /** Resolves after `seconds` on the boards' clock. */
  wait(seconds: number): Promise<void>;
  close(): Promise<void>;
}

export interface RigOptions {
  dir: string;
  /** vm only: virtual seconds per real second (default 1). */
  speed?: number;
  /** vm only: the virtual clock's start. */
  startEpochSeconds?: number;
  definition?: string;
}

/**
 * Why a backend cannot run here (undefined: it can). With VEILGRID_REQUIRE_ESPRUINO=1 (CI) a missing
 * interpreter is an error instead: the real-interpreter tests must not skip there.
 */
export function unavailable(backend: Backend): string | undefined {
  if (backend === 'vm' || espruinoInterpreterPath()) return undefined;
  const why =
    'no Espruino interpreter (set VEILGRID_ESPRUINO_BIN or put espruino-2v29-esp32like in ../shared/espruino/)';
  if (process.env.VEILGRID_REQUIRE_ESPRUINO === '1')
    throw new Error(`${why}, and VEILGRID_REQUIRE_ESPRUINO=1 says the real-interpreter tests must run`);
  return why;
}

export async function createRig(backend: Backend, opts: RigOptions): Promise<Rig> {
  const definition = loadBoardDefinition(opts.definition ?? 'esp32-meter');
  fs.mkdirSync(opts.dir, { recursive: true });
  const boards: MeterBoard[] = [];
  const clock =
    backend === 'vm'
      ? new SimClock({ speed: opts.speed ?? 1, startEpochSeconds: opts.startEpochSeconds })
      : new RealTimeClock();
  return {
    backend,
    definition,
    clock,
    dir: opts.dir,
    async addBoard(name) {
      const board =
        backend === 'vm'
          ? await vmBoard(
              new Board({
                definition,
                clock: clock as SimClock,
                name,
                flashPath: path.join(opts.dir, `${name}.flash`),
              }),
            )
          : linuxBoard(await LinuxBoard.create({ definition, dir: path.join(opts.dir, name), name }));
      boards.push(board);
      return board;
    },
    wait: (seconds) => new Promise((resolve) => clock.setTimeoutAt(resolve, clock.now() + seconds)),
    async close() {
      for (const board of boards) await board.close();
      clock.close();
    },
  };
}

async function vmBoard(board: Board): Promise<MeterBoard> {
  const repl: RunningConsole = await startConsole(board, { port: 0 });
  const local = inProcessConsole(board, board.name);
  let password: string | undefined;
  return {
    backend: 'vm',
    name: board.name,
    clock: board.clock,
    pins: board.pins,
    get running() {
      return board.running;
    },
    consolePort: repl.port,
    powerOn: async () => board.powerOn(),
    powerCut: async () => board.powerCut(),
    evaluate: (expression) => local.evaluate(expression),
    useConsolePassword: (value) => {
      password = value;
      local.setConsolePassword(value);
    },
    meterConsole: async () => {
      const fresh = inProcessConsole(board, board.name);
      fresh.setConsolePassword(password);
      return fresh;
    },
    readFile: (name) => board.storage.read(name),
    writeFile: (name, data) => void board.storage.write(name, data),
    onOutput: (listener) => board.onOutput(listener),
    get seCommands() {
      let total = 0;
      for (const count of board.secureElement.executedCommands.values()) total += count;
      return total;
    },
    memory: async () => ({
      error:
        'the vm emulator has no JsVar store: process.memory() exists only on the espruino-linux backend and a real board',
    }),
    async close() {
      await local.close();
      await repl.close();
      board.close();
    },
  };
}

/**
 * A console call's bound on espruino-linux. Slower here than on a board: every interpreter with a socket
 * open spins its idle loop (socketIdle keeps it busy, so it never sleeps) and takes a core, and each
 * exception (an SE poll the chip NACKs) reads its stack trace's source from the flash file with an
 * fopen per read (targets/linux/jshardware.c jshFlashRead): provisioning an SE takes ~8 s alone, longer
 * while other meters run on the same cores.
 */
const LINUX_CALL_TIMEOUT_MS = 180_000;

function linuxBoard(board: LinuxBoard): MeterBoard {
  let password: string | undefined;
  return {
    backend: 'espruino-linux',
    name: board.name,
    clock: board.clock,
    pins: board.pins,
    get running() {
      return board.running;
    },
    consolePort: board.consolePort,
    powerOn: () => board.powerOn(),
    powerCut: () => board.powerCut(),
    evaluate: (expression, timeoutMs) => board.evaluate(expression, timeoutMs ?? LINUX_CALL_TIMEOUT_MS),
    useConsolePassword: (value) => {
      password = value;
      board.useConsolePassword(value);
    },
    meterConsole: async () => {
      const link = await openMeterConsole(`tcp://127.0.0.1:${board.consolePort}`);
      link.setConsolePassword(password);
      return {
        ...link,
        evaluate: (expression, timeoutMs) => link.evaluate(expression, timeoutMs ?? LINUX_CALL_TIMEOUT_MS),
      };
    },
    readFile: (name) => board.withStorage((storage) => storage.read(name)),
    writeFile: (name, data) => board.withStorage((storage) => void storage.write(name, data)),
    onOutput: (listener) => board.onOutput(listener),
    get seCommands() {
      return board.seCommands;
    },
    memory: () => board.evaluate('process.memory()'),
    close: () => board.close(),
  };
}
