// A raw TCP console client for tests: what a technician with `nc`, or an attacker, types at a board's
// console, and everything the board sends back.
import { connect, type Socket } from 'node:net';

/** A raw TCP console client that collects everything the board sends. */
export class Client {
  received = '';
  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (this.received += d));
  }

  static open(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new Client(socket)));
      socket.once('error', reject);
    });
  }

  send(text: string): void {
    this.socket.write(text, 'latin1');
  }

  /** Waits (real time, bounded against hangs) until `text` has arrived after `from`; returns what came. */
  async waitFor(text: string, from = 0): Promise<string> {
    for (let tries = 0; tries < 2500; tries++) {
      if (this.received.indexOf(text, from) >= 0) return this.received.slice(from);
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error(`gave up waiting for ${JSON.stringify(text)}; got ${JSON.stringify(this.received.slice(from))}`);
  }

  /** Sends `input` and returns what came back up to and including `until`. */
  async exchange(input: string, until: string): Promise<string> {
    const from = this.received.length;
    this.send(input);
    const got = await this.waitFor(until, from);
    return got.slice(0, got.indexOf(until) + until.length);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.closed) return resolve(); // the board dropped it already
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }
}
