// The host end of the espruino-linux board's I2C bus, on a thread of its own: the interpreter's I2C1
// (hardware-prelude.ts) writes one request to the se.req pipe and then blocks reading se.rsp, so this side
// answers with blocking reads and writes that must not stall Node's event loop. The bus and the chip are
// the emulator's own models (boards/emulator/pins.ts I2CBus, devices/atecc608), on real time.
//
// Request: op (S setup, W write, R read on I2C1; w write, r read on software I2C), 7-bit address, payload
// length (2 bytes, little-endian), payload (W: the bytes written; R: the byte count, 2 bytes; S: the bitrate
// in decimal; w and r: the bitrate in units of 100 Hz, 2 bytes, then what W and R carry). Response, ended by
// closing the pipe: for W and R 0x01 (acknowledged) followed by the bytes read, or 0x00 (not acknowledged);
// for w nothing; for r the bytes read, 0xFF where nobody answered.
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { attachAtecc608 } from '../emulator/devices/atecc608/persistence.ts';
import { I2CBus } from '../emulator/pins.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export interface SeBridgeWorkerData {
  module: string;
  requestPipe: string;
  responsePipe: string;
  /** The chip's EEPROM persists beside this file (attachAtecc608). */
  flashPath: string;
  /** Int32Array over a SharedArrayBuffer; [0] = 1 asks the loop to stop. */
  stop: SharedArrayBuffer;
}

/** Thrown to leave the loop when the board stops it. */
class Stopped extends VeilgridError {
  constructor() {
    super('Stopped', 'stopped', 'the secure-element bridge was closed');
  }
}

const data = workerData as SeBridgeWorkerData;
const stop = new Int32Array(data.stop);
const realSeconds = () => (performance.timeOrigin + performance.now()) / 1000;
const bus = new I2CBus(realSeconds);
const chip = attachAtecc608({ bus, clock: { now: realSeconds }, flashPath: data.flashPath });

function checkStop(): void {
  if (Atomics.load(stop, 0) !== 0) throw new Stopped();
}

/** Blocks until `n` bytes came (the interpreter may write a request in pieces). */
function readExactly(fd: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    checkStop();
    got += readSync(fd, out, got, n - got, null);
  }
  checkStop();
  return out;
}

/** Opens the response pipe once the interpreter has it open for reading (it does so right after writing). */
function openResponse(): number {
  for (;;) {
    checkStop();
    try {
      return openSync(data.responsePipe, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
      Atomics.wait(stop, 0, 0, 1);
    }
  }
}

function serve(op: string, address: number, payload: Buffer): Uint8Array {
  if (op === 'S') {
    bus.configured = { ...bus.configured, bitrate: Number(payload.toString('latin1')) || 100000 };
    return Uint8Array.of(1);
  }
  if (op === 'W') return Uint8Array.of(bus.write(address, new Uint8Array(payload)) ? 1 : 0);
  if (op === 'R') {
    const got = bus.read(address, payload.readUInt16LE(0));
    return got ? Uint8Array.of(1, ...got) : Uint8Array.of(0);
  }
  if (op === 'w' || op === 'r') {
    const master = { bitrate: payload.readUInt16LE(0) * 100, software: true };
    if (op === 'w') {
      bus.write(address, new Uint8Array(payload.subarray(2)), master);
      return new Uint8Array(0);
    }
    const n = payload.readUInt16LE(2);
    return bus.read(address, n, master) ?? new Uint8Array(n).fill(0xff);
  }
  throw new Error(`se bridge: unknown request "${op}" from the interpreter`);
}

function totalCommands(): number {
  let n = 0;
  for (const c of chip.executedCommands.values()) n += c;
  return n;
}

// O_RDWR: the pipe always has a reader, so the interpreter's open for writing never waits for this thread.
const requests = openSync(data.requestPipe, constants.O_RDWR);
let reported = 0;
try {
  for (;;) {
    const head = readExactly(requests, 4);
    const payload = readExactly(requests, head.readUInt16LE(2));
    const response = serve(String.fromCharCode(head[0]), head[1], payload);
    const fd = openResponse();
    try {
      writeSync(fd, response);
    } finally {
      closeSync(fd);
    }
    const commands = totalCommands();
    if (commands !== reported) parentPort!.postMessage({ commands: (reported = commands) });
  }
} catch (err) {
  if (!(err instanceof Stopped)) throw err;
} finally {
  closeSync(requests);
}
