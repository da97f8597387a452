// Types of the Espruino 2v29 (ESP32) APIs the firmware uses, and only those. Interfaces only: the
// emulator (host side) implements them too. The globals themselves are declared in
// espruino-globals.d.ts, which only the firmware's tsconfig sees. Logic modules receive these
// interfaces (StorageModule, NetModule, Clock …) instead of touching globals, so they stay testable
// and the hardware stays behind one layer. Signatures follow Espruino's jswrap_*.c documentation.

/** Espruino strings are 8-bit: each char code is one byte 0..255. */
type ByteString = string;

interface StorageFile {
  /** Reads up to len bytes from the current position; undefined at the end. */
  read(len: number): ByteString | undefined;
  /** Reads up to and including the next "\n"; undefined at the end. */
  readLine(): ByteString | undefined;
  getLength(): number;
  /** Appends (mode "a"/"w"); data must not contain byte 0xFF. */
  write(data: ByteString): void;
  erase(): void;
}

interface StorageModule {
  eraseAll(): void;
  erase(name: string): void;
  read(name: string, offset?: number, length?: number): ByteString | undefined;
  readJSON(name: string, noExceptions: boolean): any;
  readArrayBuffer(name: string): ArrayBuffer | undefined;
  /** offset 0 (or no offset) re-creates the file; size pre-allocates it for later writes at offsets. */
  write(name: string, data: ByteString | Uint8Array | ArrayBuffer, offset?: number, size?: number): boolean;
  writeJSON(name: string, data: any): boolean;
  list(filter?: RegExp, options?: { sf?: boolean }): string[];
  compact(showMessage?: boolean): void;
  getFree(checkInternalFlash?: boolean): number;
  getStats(): {
    totalBytes: number;
    freeBytes: number;
    fileBytes: number;
    fileCount: number;
    trashBytes: number;
    trashCount: number;
  };
  open(name: string, mode: 'r' | 'w' | 'a'): StorageFile;
}

/** require("Flash"): raw flash pages (src/jswrap_flash.c). Writes only clear bits; erasePage sets a page to 0xFF. */
interface FlashModule {
  /** The page holding addr, or undefined when there is none. */
  getPage(addr: number): { addr: number; length: number } | undefined;
  /** Areas the build calls free (on ESP32 a fixed list, partly stale: see docs/energy-journal.md). */
  getFree(): { addr: number; length: number }[];
  /** addr must be an integer JsVar: a float (e.g. from Math.floor) throws "Address should be an integer". */
  erasePage(addr: number): void;
  /** length bytes from addr; undefined for length <= 0. */
  read(length: number, addr: number): Uint8Array | undefined;
  write(data: ByteString | Uint8Array, addr: number): void;
}

interface NetSocket {
  write(data: ByteString): boolean;
  end(): void;
  on(event: 'connect' | 'end' | 'drain', cb: () => void): void;
  on(event: 'data', cb: (data: ByteString) => void): void;
  on(event: 'close', cb: (hadError: boolean) => void): void;
  on(event: 'error', cb: (err: { code: number; message: string }) => void): void;
}

interface NetModule {
  connect(options: { host: string; port: number }, onConnect: () => void): NetSocket;
  createServer(onConnection: (socket: NetSocket) => void): { listen(port: number): void; close(): void };
}

interface WifiModule {
  connect(ssid: string, options: { password?: string }, cb: (err: string | null) => void): void;
  disconnect(cb?: () => void): void;
  getStatus(): { station: string };
  getIP(): { ip: string; mac: string };
  setSNTP(server: string, tzOffset: number): void;
  on(event: 'connected' | 'disconnected', cb: (details: any) => void): void;
}

interface CryptoModule {
  SHA256(message: ByteString | Uint8Array | ArrayBuffer): ArrayBuffer;
  AES: {
    encrypt(
      data: ByteString | Uint8Array | ArrayBuffer,
      key: Uint8Array | ArrayBuffer,
      options?: { iv?: Uint8Array; mode?: 'CBC' | 'CFB' | 'CTR' | 'ECB' },
    ): ArrayBuffer;
    decrypt(
      data: ByteString | Uint8Array | ArrayBuffer,
      key: Uint8Array | ArrayBuffer,
      options?: { iv?: Uint8Array; mode?: 'CBC' | 'CFB' | 'CTR' | 'ECB' },
    ): ArrayBuffer;
  };
}

interface I2CBus {
  setup(options: { scl: Pin; sda: Pin; bitrate?: number }): void;
  writeTo(address: number, data: Uint8Array | number[] | number): void;
  readFrom(address: number, quantity: number): Uint8Array;
}

/** A pin is a Pin object on the device (D25) or its number. */
type Pin = number | { toString(): string };

interface WatchEvent {
  state: boolean;
  /** Seconds (getTime() clock) at which the edge happened. */
  time: number;
  lastTime: number;
}

interface EspruinoE {
  toString(bytes: Uint8Array | ArrayBuffer | number[]): ByteString;
  toUint8Array(str: ByteString): Uint8Array;
  hwRand(): number;
  srand(seed: number): void;
  setBootCode(code: string, alwaysExec?: boolean): void;
  on(event: 'init', cb: () => void): void;
  getErrorFlags(): string[];
  CRC32(data: ByteString | Uint8Array): number;
  /** Keeps the console password in RAM (src/jswrap_espruino.c); no argument removes it. */
  setPassword(password?: string): void;
  /** Locks the console if a password is set: every line is then a password attempt. */
  lockConsole(): void;
}

/** require("TelnetServer"): the network console (libs/network/telnet/jswrap_telnet.c). */
interface TelnetServerModule {
  setOptions(options: { mode: 'on' | 'off' }): void;
}
