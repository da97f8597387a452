// Puts a board's TCP console on a serial device path, as a USB-serial adapter puts a real ESP32's UART
// on /dev/ttyUSB0: socat makes a pseudo-terminal (raw, no echo: the board echoes) whose other end is the
// console's TCP connection. The `espruino` CLI and `veilgrid flash`/`provision` then open the path as a
// serial port (115200 baud is accepted and ignored by a pty), taking their serial code paths (throttled
// uploads, DTR/RTS settling) — the path a real board on a serial port takes (docs/hil.md).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export const SOCAT_MISSING =
  'socat is not installed (apt-get install socat): the serial-port path needs it to make a pseudo-terminal';

export function socatAvailable(): boolean {
  return spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;
}

export interface PtyBridge {
  /** The device path (a symlink to /dev/pts/N). */
  readonly path: string;
  close(): Promise<void>;
}

/** Links `path` to the console on 127.0.0.1:`port`; resolves once the device exists. */
export async function startPtyBridge(port: number, path: string): Promise<PtyBridge> {
  if (!socatAvailable()) throw new Error(SOCAT_MISSING);
  const child: ChildProcess = spawn('socat', [`PTY,link=${path},raw,echo=0`, `TCP:127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let errors = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (errors += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let tries = 0; !existsSync(path); tries++) {
    if (child.exitCode !== null || tries > 200) {
      child.kill('SIGKILL');
      throw new Error(`socat did not make the pseudo-terminal ${path}: ${errors.trim() || 'no message'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return {
    path,
    async close() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
