/// <reference path="../../firmware/src/platform/espruino-api.d.ts" />
// Espruino's StorageFile (Storage.open), ported from src/jswrap_storage.c: an appendable file kept as chunk
// files "name\x01", "name\x02" … (at most 255), each STORAGEFILE_CHUNKSIZE bytes (4064 on ESP32) and created
// pre-filled with 0xFF. Appends program bytes into the 0xFF tail, so the end of the file is the first 0xFF
// byte (a chunk whose last byte is not 0xFF is full). That is why the data must never contain 0xFF.
import type { EspruinoStorage } from './storage.ts';
import { FLAG_STORAGEFILE, NAME_BYTES, bytesToString, encodeName, fileSize, stringToBytes } from './storage.ts';

const LAST_CHUNK = 255;
type Mode = 'r' | 'w' | 'a' | 'closed';

export class EspruinoStorageFile implements StorageFile {
  private readonly storage: EspruinoStorage;
  /** The stored name without the chunk char (≤ 27 chars, as the chunk char takes the 28th place). */
  private readonly baseName: string;
  private chunk = 1;
  private offset = 0;
  private mode: Mode;

  constructor(storage: EspruinoStorage, name: string, mode: string) {
    if (mode !== 'r' && mode !== 'w' && mode !== 'a') throw new Error(`Invalid mode ${JSON.stringify(mode)}`);
    encodeName(name, NAME_BYTES - 1); // validates: StorageFile names have at most 27 chars
    this.storage = storage;
    this.baseName = String(name);
    if (mode === 'w' && this.storage.findFile(this.chunkName(1))) this.erase();
    this.mode = mode;
    if (mode === 'a') this.seekEnd();
  }

  /** Reads up to len bytes; undefined once at the end. Stops at the first 0xFF (the end marker). */
  read(len: number): string | undefined {
    return this.readInternal(Math.max(0, Math.trunc(len) || 0), false);
  }

  /** Reads up to and including the next "\n"; undefined once at the end. */
  readLine(): string | undefined {
    return this.readInternal(Infinity, true);
  }

  /** jswrap_storagefile_getLength: full chunks plus the used part of the last one. */
  getLength(): number {
    let length = 0;
    let chunk = 1;
    let found = this.storage.findFile(this.chunkName(chunk));
    while (found && this.isFull(found.addr, fileSize(found.header)) && chunk < LAST_CHUNK) {
      length += fileSize(found.header);
      chunk++;
      found = this.storage.findFile(this.chunkName(chunk));
    }
    return length + (found ? this.usedBytes(found.addr, fileSize(found.header)) : 0);
  }

  /**
   * jswrap_storagefile_write: appends into the current chunk; when it fills, the rest goes into a new chunk
   * created by Storage's write (header, then data). A single write may span at most one chunk boundary.
   */
  write(data: string): void {
    if (this.mode !== 'w' && this.mode !== 'a') throw new Error("Can't write in this mode");
    const bytes = stringToBytes(String(data), 'StorageFile data');
    const ff = bytes.indexOf(0xff);
    if (ff !== -1) {
      throw new Error(
        `StorageFile data has byte 0xFF at index ${ff}: 0xFF marks the end of a StorageFile (the device would silently cut the file there); encode binary data (e.g. base64) or use Storage.write`,
      );
    }
    if (bytes.length === 0) return;
    const found = this.storage.findFile(this.chunkName(this.chunk));
    if (!found) {
      this.createChunk(this.chunk, bytes);
      this.offset = bytes.length;
      return;
    }
    const remaining = fileSize(found.header) - this.offset;
    if (bytes.length < remaining) {
      this.storage.programAt(found.addr + this.offset, bytes);
      this.offset += bytes.length;
      return;
    }
    this.storage.programAt(found.addr + this.offset, bytes.subarray(0, remaining));
    this.offset += remaining;
    if (this.chunk === LAST_CHUNK) throw new Error('File too big!');
    const rest = bytes.subarray(remaining);
    this.createChunk(this.chunk + 1, rest);
    this.chunk++;
    this.offset = rest.length;
  }

  /** Marks every chunk deleted, from chunk 1 up to the first one missing; the file can then no longer be used. */
  erase(): void {
    for (let chunk = 1; this.storage.eraseFile(this.chunkName(chunk)); chunk++);
    this.chunk = 1;
    this.offset = 0;
    this.mode = 'closed';
  }

  /** Creates a chunk holding bytes via Storage's write; on failure the file takes no more writes, as on the device. */
  private createChunk(chunk: number, bytes: Uint8Array): void {
    try {
      this.storage.writeFile(this.chunkName(chunk), bytes, FLAG_STORAGEFILE, 0, this.storage.chunkBytes);
    } catch (e) {
      this.mode = 'closed';
      throw e;
    }
  }

  /** Append mode: the first chunk whose last byte is still 0xFF, at its first 0xFF byte. */
  private seekEnd(): void {
    let found = this.storage.findFile(this.chunkName(this.chunk));
    while (found && this.isFull(found.addr, fileSize(found.header)) && this.chunk < LAST_CHUNK) {
      this.chunk++;
      found = this.storage.findFile(this.chunkName(this.chunk));
    }
    this.offset = found ? this.usedBytes(found.addr, fileSize(found.header)) : 0;
  }

  /** jswrap_storagefile_read_internal: len bytes (or one line), crossing into the next chunk at a chunk's end. */
  private readInternal(len: number, isReadLine: boolean): string | undefined {
    if (this.mode !== 'r') throw new Error("Can't read in this mode");
    let found = this.storage.findFile(this.chunkName(this.chunk));
    if (!found) return undefined;
    let result: string | undefined;
    while (len > 0) {
      let remaining = fileSize(found.header) - this.offset;
      if (remaining <= 0) {
        this.offset = 0;
        if (this.chunk === LAST_CHUNK) return result;
        this.chunk++;
        found = this.storage.findFile(this.chunkName(this.chunk));
        if (!found) return result;
        remaining = fileSize(found.header);
      }
      const bytes = this.storage.readAt(found.addr + this.offset, Math.min(len, remaining, 32));
      let l = bytes.length;
      const end = bytes.indexOf(0xff);
      const newline = isReadLine ? bytes.indexOf(0x0a) : -1;
      let done = false;
      if (end !== -1 && (newline === -1 || end < newline)) {
        l = end;
        done = true;
      } else if (newline !== -1) {
        l = newline + 1;
        done = true;
      }
      if (l === 0) break;
      result = (result ?? '') + bytesToString(bytes.subarray(0, l));
      this.offset += l;
      if (done) break;
      if (!isReadLine) len -= l;
    }
    return result;
  }

  private chunkName(chunk: number): Uint8Array {
    const name = encodeName(this.baseName, NAME_BYTES - 1);
    name[name.indexOf(0)] = chunk;
    return name;
  }

  private isFull(addr: number, size: number): boolean {
    return this.storage.readAt(addr + size - 1, 1)[0] !== 0xff;
  }

  /** Bytes before the first 0xFF in a chunk. */
  private usedBytes(addr: number, size: number): number {
    const end = this.storage.readAt(addr, size).indexOf(0xff);
    return end === -1 ? size : end;
  }
}
