// The espruino-linux board's ATECC608 on I2C1: two named pipes in the board's folder and a worker thread
// serving them with the emulator's chip model (se-bridge-worker.ts). One bridge per power-on: a power
// cut can leave half a request in a pipe, so the pipes are made afresh each time.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SE_REQUEST_PIPE, SE_RESPONSE_PIPE } from './hardware-prelude.ts';
import type { SeBridgeWorkerData } from './se-bridge-worker.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

export class SeBridge {
  /** SE commands executed since this bridge started (what a bus analyser would count). */
  commands = 0;
  private readonly worker: Worker;
  private readonly stopFlag = new SharedArrayBuffer(4);
  private readonly requestPipe: string;
  private readonly exited: Promise<void>;

  /** onFailure: the bridge thread died (a bug on the host side); the interpreter then waits on the pipe forever. */
  constructor(dir: string, flashPath: string, onFailure: (err: Error) => void) {
    this.requestPipe = path.join(dir, SE_REQUEST_PIPE);
    const responsePipe = path.join(dir, SE_RESPONSE_PIPE);
    for (const pipe of [this.requestPipe, responsePipe]) {
      rmSync(pipe, { force: true });
      execFileSync('mkfifo', ['-m', '600', pipe]);
    }
    const workerData: SeBridgeWorkerData = {
      module: path.join(here, 'se-bridge-worker.ts'),
      requestPipe: this.requestPipe,
      responsePipe,
      flashPath,
      stop: this.stopFlag,
    };
    this.worker = new Worker(path.join(here, 'ts-worker.mjs'), { workerData });
    this.worker.on('message', (m: { commands: number }) => (this.commands = m.commands));
    this.worker.on('error', onFailure);
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
  }

  /** Stops the thread: sets the flag, then wakes a blocked read with one byte. */
  async stop(): Promise<void> {
    Atomics.store(new Int32Array(this.stopFlag), 0, 1);
    try {
      const fd = openSync(this.requestPipe, constants.O_RDWR | constants.O_NONBLOCK);
      writeSync(fd, Buffer.of(0));
      closeSync(fd);
    } catch {
      // the pipe is gone: the thread is not reading it
    }
    await this.exited;
  }
}
