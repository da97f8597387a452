/// <reference path="../../firmware/src/platform/espruino-api.d.ts" />
// Espruino's `net` module for the emulated board, over real TCP.
//
// Behaviour follows Espruino 2v29 on ESP32 (libs/network/jswrap_net.c, socketserver.c,
// esp32/network_esp32.c, socketerrors.c):
// - data is carried as 8-bit strings: `data` events give one char per byte (0..255), `write`
//   sends each char code as one byte. A char code above 255 cannot exist in an ESP32 string
//   (no Unicode build), so `write` throws on one instead of silently corrupting it.
//   Non-strings are converted with String(), as Espruino does (a Uint8Array becomes "1,2,3").
// - `write` and `end` always return false / nothing (jswrap_net_socket_write returns false);
//   `drain` fires when everything written has gone out.
// - every event is delivered asynchronously, as Espruino queues them for its idle loop.
// - a socket that goes away fires, in this order: `error` (only for a real error), `end`,
//   `close(hadError)` (socketClientConnectionsIdle: "close callback must happen after error
//   callback"). A peer closing or resetting the connection is NOT an error on ESP32: recv()
//   returns -1, which is SOCKET_ERR_CLOSED, which fireErrorEvent skips; only unsent data
//   turns it into -8 "unsent data".
// - a refused connection fires `error` {code: -9, message: "connection reset"} (the code
//   jswrap_net.c documents as "connection reset (or refused)"), `end`, `close(true)`, and never
//   `connect`. Divergence: ESP32's connect() is blocking, so the real board instead throws
//   "Unable to create socket" from net.connect() itself; firmware must cope with both.
// - `end()` closes the socket once written data has been sent, without waiting for the peer
//   (clientRequestEnd sets "close after sending"; the socket is then closed outright).
// - `closeAll()` models a power cut: every socket and server dies at once and no further event
//   reaches the (dead) firmware.
import * as nodeNet from 'node:net';

/** Espruino's socket error codes (libs/network/socketerrors.h) with their messages. */
export const SOCKET_ERROR = {
  CLOSED: -1,
  MEM: -2,
  TIMEOUT: -3,
  NO_ROUTE: -4,
  BUSY: -5,
  NOT_FOUND: -6,
  MAX_SOCK: -7,
  UNSENT_DATA: -8,
  RESET: -9,
  UNKNOWN: -10,
  NO_CONN: -11,
  BAD_ARG: -12,
  SSL_HAND: -13,
  SSL_INVALID: -14,
  NO_RESP: -15,
} as const;

const SOCKET_ERROR_MESSAGES = [
  'connection closed',
  'out of memory',
  'timeout',
  'no route',
  'busy',
  'not found',
  'max sockets',
  'unsent data',
  'connection reset',
  'unknown error',
  'no connection',
  'bad argument',
  'SSL handshake failed',
  'invalid SSL data',
  'no response',
];

export interface SocketErrorEvent {
  code: number;
  message: string;
}

export function socketError(code: number): SocketErrorEvent {
  const index = code < SOCKET_ERROR.NO_RESP ? -1 - SOCKET_ERROR.UNKNOWN : -1 - code;
  return { code, message: SOCKET_ERROR_MESSAGES[index] };
}

/** Maps a Node socket error to the code an ESP32 would report, or CLOSED for "no error event". */
function espruinoCodeFor(err: NodeJS.ErrnoException | undefined, connected: boolean, unsentBytes: number): number {
  if (!err) return unsentBytes > 0 ? SOCKET_ERROR.UNSENT_DATA : SOCKET_ERROR.CLOSED;
  switch (err.code) {
    case 'ECONNREFUSED':
      return SOCKET_ERROR.RESET;
    case 'ETIMEDOUT':
      return SOCKET_ERROR.TIMEOUT;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return SOCKET_ERROR.NO_ROUTE;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return SOCKET_ERROR.NOT_FOUND;
    case 'ECONNRESET':
    case 'EPIPE':
      // recv()/send() return -1 on ESP32: "connection closed", not an error event.
      if (connected) return unsentBytes > 0 ? SOCKET_ERROR.UNSENT_DATA : SOCKET_ERROR.CLOSED;
      return SOCKET_ERROR.RESET;
    default:
      return SOCKET_ERROR.UNKNOWN;
  }
}

/** Turns an 8-bit string into bytes; throws on a char code that an ESP32 string cannot hold. */
export function byteStringToBuffer(data: string): Buffer {
  for (let i = 0; i < data.length; i++) {
    const code = data.charCodeAt(i);
    if (code > 255) {
      throw new Error(
        `net: socket.write got character code ${code} (0x${code.toString(16)}) at index ${i}; ` +
          'Espruino strings on ESP32 are 8-bit, one byte per char — encode text to bytes first ' +
          '(UTF-8) and send them as an 8-bit string',
      );
    }
  }
  return Buffer.from(data, 'latin1');
}

type Listener = (...args: any[]) => void;

/** A socket with Espruino's events; one per TCP connection (client or accepted). */
export class EmulatedSocket implements NetSocket {
  private readonly listeners = new Map<string, Listener[]>();
  private connected = false;
  private closed = false;
  private lastError: NodeJS.ErrnoException | undefined;

  constructor(
    private readonly tcp: nodeNet.Socket,
    private readonly owner: NetEmulation,
    alreadyConnected: boolean,
  ) {
    this.connected = alreadyConnected;
    tcp.setNoDelay(true);
    tcp.on('connect', () => {
      this.connected = true;
      this.emit('connect', this);
      if (tcp.writableLength === 0) this.emit('drain');
    });
    tcp.on('data', (chunk: Buffer) => this.emit('data', chunk.toString('latin1')));
    tcp.on('error', (err: NodeJS.ErrnoException) => {
      this.lastError ??= err;
    });
    tcp.on('close', () => this.finish());
  }

  on(event: string, cb: Listener): void {
    const list = this.listeners.get(event) ?? [];
    list.push(cb);
    this.listeners.set(event, list);
  }

  removeAllListeners(event?: string): void {
    if (event === undefined) this.listeners.clear();
    else this.listeners.delete(event);
  }

  write(data: unknown): boolean {
    const bytes = byteStringToBuffer(String(data));
    if (this.closed || this.tcp.destroyed || this.tcp.writableEnded) return false;
    if (bytes.length === 0) return false;
    this.tcp.write(bytes, () => {
      if (!this.closed && this.tcp.writableLength === 0) this.emit('drain');
    });
    return false;
  }

  end(data?: unknown): void {
    if (data !== undefined) this.write(data);
    if (this.closed || this.tcp.destroyed) return;
    if (!this.connected) {
      this.tcp.destroy();
      return;
    }
    this.tcp.end(() => this.tcp.destroy());
  }

  /** Power cut: the socket vanishes; the firmware hears nothing more. */
  kill(): void {
    this.closed = true;
    this.listeners.clear();
    this.tcp.destroy();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.forget(this);
    const code = espruinoCodeFor(this.lastError, this.connected, this.tcp.writableLength);
    const hadError = code !== SOCKET_ERROR.CLOSED;
    if (hadError) this.emit('error', socketError(code));
    this.emit('end');
    this.emit('close', hadError);
    this.listeners.clear();
  }

  private emit(event: string, ...args: unknown[]): void {
    const list = this.listeners.get(event);
    if (!list) return;
    for (const cb of list.slice()) this.owner.deliver(cb, args);
  }
}

/** `require("net").createServer(cb)` result; `address()` is an emulator extra for port 0. */
export class EmulatedServer {
  private readonly server: nodeNet.Server;
  private listening = false;

  constructor(
    private readonly owner: NetEmulation,
    onConnection: (socket: EmulatedSocket) => void,
  ) {
    this.server = nodeNet.createServer((tcp) => {
      const socket = owner.adopt(tcp, true);
      owner.deliver(onConnection, [socket]);
    });
    this.server.on('error', (err) => owner.report(`net: server error: ${err.message}`));
  }

  listen(port: number): void {
    if (this.listening) return;
    this.listening = true;
    this.server.listen(port, this.owner.listenHost);
  }

  close(): void {
    this.listening = false;
    this.server.close();
  }

  /** The bound port (after the listen has taken effect), e.g. when listening on port 0. */
  address(): { port: number } | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? { port: a.port } : undefined;
  }

  /** Resolves once listening (emulator extra, for tests that listen on port 0). */
  ready(): Promise<{ port: number }> {
    if (this.server.listening) return Promise.resolve(this.address()!);
    return new Promise((resolve, reject) => {
      this.server.once('listening', () => resolve(this.address()!));
      this.server.once('error', reject);
    });
  }

  kill(): void {
    this.listening = false;
    this.server.close();
  }
}

export interface NetEmulationOptions {
  /** Address servers bind to (Espruino binds INADDR_ANY; the emulator stays local by default). */
  listenHost?: string;
  /** Where errors nobody can catch go (a listener throwing, a server failing to bind). */
  onError?: (message: string) => void;
}

class NetEmulation {
  readonly sockets = new Set<EmulatedSocket>();
  readonly servers = new Set<EmulatedServer>();
  readonly listenHost: string;
  private readonly onError: (message: string) => void;
  private dead = false;

  constructor(options: NetEmulationOptions) {
    this.listenHost = options.listenHost ?? '127.0.0.1';
    this.onError = options.onError ?? ((message) => console.error(message));
  }

  adopt(tcp: nodeNet.Socket, connected: boolean): EmulatedSocket {
    const socket = new EmulatedSocket(tcp, this, connected);
    if (this.dead) socket.kill();
    else this.sockets.add(socket);
    return socket;
  }

  forget(socket: EmulatedSocket): void {
    this.sockets.delete(socket);
  }

  /** Runs a firmware callback as Espruino's idle loop would: an exception is reported, not fatal. */
  deliver(cb: Listener, args: unknown[]): void {
    if (this.dead) return;
    try {
      cb(...args);
    } catch (err) {
      this.report(`Uncaught ${(err as Error)?.stack ?? String(err)}`);
    }
  }

  report(message: string): void {
    this.onError(message);
  }

  closeAll(): void {
    this.dead = true;
    for (const socket of this.sockets) socket.kill();
    for (const server of this.servers) server.kill();
    this.sockets.clear();
    this.servers.clear();
  }
}

/** Espruino's `net` (it satisfies NetModule) plus the emulator's power cut. */
export interface EmulatedNetModule {
  /** onConnect gets the socket, as on Espruino. */
  connect(options: { host: string; port: number }, onConnect?: (socket: EmulatedSocket) => void): EmulatedSocket;
  createServer(onConnection: (socket: EmulatedSocket) => void): EmulatedServer;
  /** Power cut: destroys every socket and server this module made; later calls still work. */
  closeAll(): void;
}

export function createNetModule(options: NetEmulationOptions = {}): EmulatedNetModule & NetModule {
  let emulation = new NetEmulation(options);
  const module: EmulatedNetModule = {
    connect(target, onConnect) {
      if (!target || typeof target.port !== 'number') {
        throw new Error('net.connect: expecting options {host, port}');
      }
      const tcp = nodeNet.connect({ host: target.host ?? 'localhost', port: target.port });
      const socket = emulation.adopt(tcp, false);
      if (onConnect) socket.on('connect', onConnect);
      return socket;
    },
    createServer(onConnection) {
      if (typeof onConnection !== 'function') {
        throw new Error('net.createServer: expecting a callback function(socket)');
      }
      const server = new EmulatedServer(emulation, onConnection);
      emulation.servers.add(server);
      return server;
    },
    closeAll() {
      emulation.closeAll();
      // After a power cut the board boots again with a fresh network stack.
      emulation = new NetEmulation(options);
    },
  };
  return module;
}
