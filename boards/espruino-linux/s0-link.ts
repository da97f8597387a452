// The espruino-linux board's S0 input pins. The Linux build of the interpreter has no GPIO, so the edges a
// device drives on a pin go to the interpreter over a local TCP connection that its hardware prelude
// opens at boot (hardware-prelude.ts), as `pin level time` lines: time in seconds on the interpreter's
// getTime() clock, the instant the edge happened on the device's own timeline, as the ESP32's GPIO
// interrupt stamps it. The prelude applies Espruino's edge and debounce rules to them.
//
// Levels are kept across power cycles (the device keeps driving the pin); edges while the interpreter is
// off, or before it has connected, reach nobody, as on a board whose interrupts are not set up yet.
// A pin no device drives reads high: the ESP32 forces the pull-up on every watched pin.
import { createServer, type Server, type Socket } from 'node:net';
import type { Level } from '../emulator/pins.ts';

export class S0Link {
  private socket: Socket | undefined;
  private readonly levels = new Map<number, Level>();
  /** Edges sent to the interpreter, by pin (what its interrupt saw). */
  readonly edgesSent = new Map<number, number>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {
    server.on('connection', (socket) => {
      this.socket?.destroy(); // the previous power-on's connection, if it is still open
      this.socket = socket;
      socket.setNoDelay(true);
      socket.on('error', () => socket.destroy()); // the interpreter was killed: a power cut
      socket.on('close', () => {
        if (this.socket === socket) this.socket = undefined;
      });
    });
  }

  static async start(): Promise<S0Link> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new S0Link(server, (server.address() as { port: number }).port);
  }

  /** A device drives the pin to `level` at `atSeconds` (default: now). */
  setInput(pin: number, level: Level, atSeconds?: number): void {
    this.change(pin, level ? 1 : 0, atSeconds);
  }

  /** A device stops driving the pin: the pull-up takes it high. */
  release(pin: number, atSeconds?: number): void {
    this.change(pin, 1, atSeconds);
  }

  /** The interpreter's connection is gone (power cut); the next power-on connects again. */
  disconnect(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  close(): Promise<void> {
    this.disconnect();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private change(pin: number, level: Level, atSeconds: number | undefined): void {
    if ((this.levels.get(pin) ?? 1) === level) return;
    this.levels.set(pin, level);
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    const time = atSeconds ?? (performance.timeOrigin + performance.now()) / 1000;
    socket.write(`${pin} ${level} ${time.toFixed(4)}\n`, 'latin1');
    this.edgesSent.set(pin, (this.edgesSent.get(pin) ?? 0) + 1);
  }
}
