// `veilgrid emulate`: one emulated meter board with its Espruino console on a TCP port, S0 pulse
// sources driven by load profiles on its meter inputs, and its flash kept in a file between runs.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { startConsole } from '../../boards/emulator/console.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import { NAMED_PROFILES, profileByName } from '../../boards/emulator/load-profile.ts';
import { CliError, intOption, parseOptions, type Command } from '../cli/command.ts';
import { BOARD_JSON_DIR, espruinoBoardFile, espruinoCliArgs } from '../flash/espruino-cli.ts';

const DEFAULT_CONSOLE_PORT = 2323; // the port Espruino's own Linux build uses for its telnet console

const profiles = Object.keys(NAMED_PROFILES).join(', ');

const help = `usage: veilgrid emulate [--board esp32-meter] [--console PORT] [--telnet PORT] [options]

Runs one emulated meter board. Its Espruino console (the USB-serial console of the board, carried over
TCP) listens on 127.0.0.1:PORT: type JavaScript at it with nc/telnet, or upload firmware to it with the
real espruino CLI (the command is printed at start). A provisioned meter's firmware locks it at boot:
type the console password first (veilgrid provision --show-console-password), or give the tools
--meter-id and --operator-dir. --telnet adds the board's network console (Espruino's TelnetServer, TCP
port 23 on an ESP32): on from every boot until the firmware turns it off, as veilgrid firmware does.
Code saved as boot code stays in the board's flash file, so the next run boots it. S0 pulse sources
on the board's import and export inputs emit pulses following load profiles. The board's clock is this
machine's (as SNTP keeps a board's), running --speed times as fast from now.

options:
  --board ID              board definition in boards/ (default esp32-meter)
  --console PORT          console TCP port (default ${DEFAULT_CONSOLE_PORT}; 0 picks a free one)
  --telnet PORT           also serve the network console on PORT while it is on (default: not served)
  --console-host HOST     address to listen on (default 127.0.0.1)
  --allow-remote          allow a --console-host other than loopback: anyone reaching it can run code
  --flash FILE            flash image, kept between runs (default .veilgrid/<board>.flash)
  --firmware FILE         store FILE as boot code (.bootcde) before power-on, as an upload would
  --speed N               virtual time runs N times faster than real time (default 1)
  --profile NAME          import load profile (default household): ${profiles}, or none
  --export-profile NAME   export load profile (default none): ${profiles}, or none
  --impulses-per-kwh N    S0 impulses per kWh of both pulse sources (default 1000)
  --seed N                seed of the load profiles' jitter (default 1)
  --quiet                 do not copy the board's console output to this terminal
  -h, --help              this text

Ctrl-C (SIGINT) or SIGTERM powers the board off and exits; the flash file keeps what it holds.`;

export const command: Command = {
  help,
  async run(argv) {
    const { values } = parseOptions(argv, {
      board: { type: 'string', default: 'esp32-meter' },
      console: { type: 'string' },
      telnet: { type: 'string' },
      'console-host': { type: 'string', default: '127.0.0.1' },
      'allow-remote': { type: 'boolean', default: false },
      flash: { type: 'string' },
      firmware: { type: 'string' },
      speed: { type: 'string' },
      profile: { type: 'string', default: 'household' },
      'export-profile': { type: 'string', default: 'none' },
      'impulses-per-kwh': { type: 'string' },
      seed: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    });
    const boardId = values.board!;
    let definition;
    try {
      definition = loadBoardDefinition(boardId);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    const consolePort = intOption(values.console, 'console', DEFAULT_CONSOLE_PORT);
    if (consolePort > 65535) throw new CliError(`--console must be a TCP port (0-65535), got ${consolePort}`);
    const telnetPort = values.telnet === undefined ? undefined : intOption(values.telnet, 'telnet', 0);
    if (telnetPort !== undefined && telnetPort > 65535)
      throw new CliError(`--telnet must be a TCP port (0-65535), got ${telnetPort}`);
    const speed = values.speed === undefined ? 1 : Number(values.speed);
    if (!(speed > 0) || !Number.isFinite(speed))
      throw new CliError(`--speed must be a number > 0, got "${values.speed}"`);
    const impulsesPerKWh = intOption(values['impulses-per-kwh'], 'impulses-per-kwh', 1000, 1);
    const seed = intOption(values.seed, 'seed', 1);
    const importProfile = chooseProfile(values.profile!, 'profile', seed);
    const exportProfile = chooseProfile(values['export-profile']!, 'export-profile', seed + 1);
    const flashPath = resolve(values.flash ?? `.veilgrid/${boardId}.flash`);
    const firmware = values.firmware === undefined ? undefined : readFirmware(values.firmware);
    mkdirSync(dirname(flashPath), { recursive: true });

    // The board's clock is the host's, as SNTP keeps a real board's: an emulated meter talks to real
    // services (the DSO checks certificates and intervals, the market closes gates) on the wall clock. At
    // another speed it starts at the host's time and runs that much faster.
    const clock = new SimClock({ speed, startEpochSeconds: Date.now() / 1000, wallClock: true });
    const board = new Board({ definition, clock, flashPath, name: boardId });
    if (!values.quiet) board.onOutput((text) => process.stdout.write(text));
    if (firmware !== undefined && board.storage.read('.bootcde') !== firmware) {
      // what E.setBootCode / an upload with SAVE_ON_SEND=1 leaves in Storage
      board.storage.erase('.bootrst');
      board.storage.erase('.varimg');
      board.storage.write('.bootcde', firmware);
    }

    let stopConsole: (() => Promise<void>) | undefined;
    let stopTelnet: (() => Promise<void>) | undefined;
    const sources: S0PulseSource[] = [];
    const shutDown = async () => {
      for (const source of sources) source.stop();
      await stopConsole?.();
      await stopTelnet?.();
      board.close();
      clock.close();
    };
    try {
      const running = await startConsole(board, {
        port: consolePort,
        host: values['console-host'],
        allowRemote: values['allow-remote'],
      });
      stopConsole = running.close;
      const port = `tcp://${running.host}:${running.port}`;
      const telnet =
        telnetPort === undefined
          ? undefined
          : await startConsole(board, {
              kind: 'network',
              port: telnetPort,
              host: values['console-host'],
              allowRemote: values['allow-remote'],
            });
      stopTelnet = telnet?.close;
      // the command a user runs to upload the built firmware (large, so the unthrottled form)
      const upload = espruinoCliArgs(
        { port, file: `dist/firmware/${boardId}.js`, boardJson: espruinoBoardFile(boardId) },
        Infinity,
      ).map((arg) => arg.replace(BOARD_JSON_DIR, shownPath(BOARD_JSON_DIR)));
      console.log(
        [
          `veilgrid emulate: board ${boardId}, flash ${shownPath(flashPath)}, ${speed}x real time`,
          `  console  ${port}   connect: nc ${running.host} ${running.port}   (or: npx espruino --no-ble -p ${port})`,
          ...(telnet
            ? [`  network console (Telnet) tcp://${telnet.host}:${telnet.port}, listening while the board has it on`]
            : []),
          `  upload   npx espruino ${upload.join(' ')}`,
          `  S0 import pin D${definition.pins.s0Import}: ${importProfile?.name ?? 'no load'}; export pin D${definition.pins.s0Export}: ${exportProfile?.name ?? 'no load'} (${impulsesPerKWh} imp/kWh)`,
          '  Ctrl-C powers the board off; its flash file keeps what it holds.',
          '',
        ].join('\n'),
      );
      board.powerOn();
      if (importProfile)
        sources.push(
          new S0PulseSource({ board, pin: definition.pins.s0Import, impulsesPerKWh, profile: importProfile }),
        );
      if (exportProfile)
        sources.push(
          new S0PulseSource({ board, pin: definition.pins.s0Export, impulsesPerKWh, profile: exportProfile }),
        );
      for (const source of sources) source.start();
    } catch (err) {
      await shutDown();
      throw new CliError((err as Error).message);
    }

    const signal = await new Promise<NodeJS.Signals>((done) => {
      process.once('SIGINT', () => done('SIGINT'));
      process.once('SIGTERM', () => done('SIGTERM'));
    });
    await shutDown();
    const emitted = sources.map((s) => `D${s.pin} ${s.pulsesEmitted} pulses (${s.energyWh.toFixed(1)} Wh)`).join(', ');
    console.log(`\nveilgrid emulate: ${signal}: board powered off${emitted ? `; S0 emitted ${emitted}` : ''}`);
    return 0;
  },
};

/** A path as the user would type it from here: relative inside the working directory, else absolute. */
function shownPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

function chooseProfile(name: string, option: string, seed: number) {
  if (name === 'none') return undefined;
  try {
    return profileByName(name, seed);
  } catch (err) {
    throw new CliError(`--${option}: ${(err as Error).message}, or none`);
  }
}

function readFirmware(file: string): string {
  try {
    return readFileSync(file, 'latin1');
  } catch (err) {
    throw new CliError(
      `--firmware ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (build it with veilgrid build)' : (err as Error).message}`,
    );
  }
}
