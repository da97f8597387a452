/// <reference path="../../firmware/src/platform/espruino-api.d.ts" />
// Espruino's `Storage` module as the ESP32 build of Espruino 2v29 runs it, over a NOR flash model.
// The on-flash layout and, above all, the order of flash operations are ported from Espruino's
// src/jsflash.c (jsfWriteFile, jsfCreateFile, jsfCompactInternal …) and src/jswrap_storage.c, so that a
// power cut at any byte leaves what the real device would hold. docs/emulator-storage.md explains the
// layout, the write order and what a cut leaves; the comments name the C function each method mirrors.
import type { Flash } from './flash.ts';
import { EspruinoStorageFile } from './storage-file.ts';

/** Header = uint32 size (low 24 bits) | flags << 24, then a 28-byte zero-padded name (jsflash.h). */
const HEADER_BYTES = 32;
export const NAME_BYTES = 28;
/** JSF_ALIGNMENT: file starts are 4-byte aligned on ESP32 (no FLASH_64BITS_ALIGNMENT). */
const ALIGNMENT = 4;
const UNSET_WORD = 0xffffffff;
export const FLAG_NONE = 0;
export const FLAG_STORAGEFILE = 64;
/** Espruino uses address 0 to mean "no file", so a storage area given no address starts above it. */
const DEFAULT_ADDRESS = 0x100000;

/** Where Storage lives: its device address, and the offset and length of its bytes in the Flash model. */
export interface StorageRegion {
  address: number;
  flashOffset: number;
  bytes: number;
}

interface FileHeader {
  /** The raw first word: size in the low 24 bits, flags in the top 8. */
  word: number;
  name: Uint8Array;
}

/** A file found by name: the address of its data (not its header) and its header. */
export interface FoundFile {
  addr: number;
  header: FileHeader;
}

/** The walking position of jsfGetFileHeader/jsfGetNextFileHeader: an address and the header last read there. */
interface Cursor {
  addr: number;
  header: FileHeader;
}

export interface StorageStats {
  totalBytes: number;
  freeBytes: number;
  fileBytes: number;
  fileCount: number;
  trashBytes: number;
  trashCount: number;
}

export function fileSize(header: FileHeader): number {
  return header.word & 0x00ffffff;
}

export function fileFlags(header: FileHeader): number {
  return header.word >>> 24;
}

/** jsfIsRealFile: a file is deleted ("trash") once the first 4 bytes of its name are zeroed. */
function isLiveFile(header: FileHeader): boolean {
  return firstChars(header.name) !== 0;
}

function firstChars(name: Uint8Array): number {
  return (name[0] | (name[1] << 8) | (name[2] << 16) | (name[3] << 24)) >>> 0;
}

function alignAddress(addr: number): number {
  return Math.ceil(addr / ALIGNMENT) * ALIGNMENT;
}

function namesEqual(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < NAME_BYTES; i++) if (a[i] !== b[i]) return false;
  return true;
}

function emptyHeader(): FileHeader {
  return { word: 0, name: new Uint8Array(NAME_BYTES) };
}

/** An 8-bit string from bytes (char code = byte), as Espruino strings are. */
export function bytesToString(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

/** Bytes from an 8-bit string; a char above 255 cannot be stored by Espruino and is refused. */
export function stringToBytes(s: string, what: string): Uint8Array {
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) {
      throw new Error(
        `${what} has char code ${c} at index ${i}: Espruino strings are 8-bit (0..255); encode the text first (e.g. E.toString of UTF-8 bytes)`,
      );
    }
    bytes[i] = c;
  }
  return bytes;
}

/**
 * The file name as Espruino stores it (jsfNameFromVar + jsfStripDriveFromName). The device silently truncates
 * names over 28 chars (two long names can then collide); the emulator refuses them instead.
 */
export function encodeName(name: unknown, maxLength = NAME_BYTES): Uint8Array {
  const text = String(name);
  if (text.length === 0) throw new Error('Storage file name is empty: give a name of 1..28 chars');
  if (text.length > maxLength) {
    throw new Error(
      `File name too long: "${text}" has ${text.length} chars, Storage allows ${maxLength} (the device would silently truncate it)`,
    );
  }
  const bytes = stringToBytes(text, `file name "${text}"`);
  const stored = bytes[1] === 0x3a /* "C:name" names a drive; it is dropped */ ? bytes.subarray(2) : bytes;
  const encoded = new Uint8Array(NAME_BYTES);
  encoded.set(stored);
  return encoded;
}

/** The name as Espruino lists it: the stored bytes up to the first zero (jsfVarFromName). */
export function decodeName(name: Uint8Array): string {
  const end = name.indexOf(0);
  return bytesToString(name.subarray(0, end === -1 ? NAME_BYTES : end));
}

/** Converts what Storage.write (and Flash.write) accept into the bytes written (cross-realm safe: no instanceof). */
export function dataToBytes(data: unknown): Uint8Array {
  if (typeof data === 'string') return stringToBytes(data, 'Storage data');
  if (data === undefined || data === null) throw new Error("Can't get pointer to data to write");
  if (Object.prototype.toString.call(data) === '[object ArrayBuffer]') return new Uint8Array(data as ArrayBuffer);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Uint8Array.from(data, (v) => Number(v) & 0xff);
  if (typeof data === 'object') return stringToBytes(toJson(data), 'Storage data');
  return stringToBytes(String(data), 'Storage data');
}

/** JSON text that stays 8-bit: chars above 0x7F are escaped as \uXXXX (valid JSON that readJSON reads back). */
function toJson(data: unknown): string {
  const text = JSON.stringify(data);
  if (text === undefined) throw new Error(`Storage.writeJSON cannot store ${String(data)}: it has no JSON form`);
  return text.replace(/[\u0080-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

export class EspruinoStorage implements StorageModule {
  readonly flash: Flash;
  /** STORAGEFILE_CHUNKSIZE: min(page, 4096) − header, 4064 bytes on ESP32. */
  readonly chunkBytes: number;
  private readonly startAddress: number;
  private readonly endAddress: number;
  /** Flash-model offset of startAddress. */
  private readonly flashOffset: number;

  /** Storage over `region` of the flash; by default the whole flash, at address 0x100000. */
  constructor(flash: Flash, region?: StorageRegion) {
    this.flash = flash;
    const r = region ?? { address: DEFAULT_ADDRESS, flashOffset: 0, bytes: flash.sizeBytes };
    if (
      r.flashOffset < 0 ||
      r.flashOffset + r.bytes > flash.sizeBytes ||
      r.address % flash.pageBytes !== 0 ||
      r.bytes % flash.pageBytes !== 0
    ) {
      throw new Error(
        `Storage region ${JSON.stringify(r)} must be whole pages inside the ${flash.sizeBytes}-byte flash`,
      );
    }
    this.startAddress = r.address;
    this.endAddress = r.address + r.bytes;
    this.flashOffset = r.flashOffset;
    this.chunkBytes = Math.min(flash.pageBytes, 4096) - HEADER_BYTES;
  }

  // ------------------------------------------------------------------ the Storage API (jswrap_storage.c)

  eraseAll(): void {
    for (let addr = this.startAddress; addr < this.endAddress; addr += this.flash.pageBytes) this.erasePageAt(addr);
  }

  erase(name: string): void {
    this.eraseFile(encodeName(name));
  }

  read(name: string, offset?: number, length?: number): string | undefined {
    const bytes = this.readFile(encodeName(name), offset ?? 0, length ?? 0);
    return bytes && bytesToString(bytes);
  }

  readJSON(name: string, noExceptions: boolean): any {
    const text = this.read(name);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      if (noExceptions) return undefined;
      throw e;
    }
  }

  readArrayBuffer(name: string): ArrayBuffer | undefined {
    const bytes = this.readFile(encodeName(name), 0, 0);
    return bytes?.slice().buffer;
  }

  write(name: string, data: string | Uint8Array | ArrayBuffer, offset?: number, size?: number): boolean {
    const isObject =
      typeof data === 'object' &&
      data !== null &&
      !Array.isArray(data) &&
      !ArrayBuffer.isView(data) &&
      Object.prototype.toString.call(data) !== '[object ArrayBuffer]';
    // jswrap_storage_write: an object is stored as JSON, always as a whole new file.
    return this.writeFile(
      encodeName(name),
      dataToBytes(data),
      FLAG_NONE,
      isObject ? 0 : (offset ?? 0),
      isObject ? 0 : (size ?? 0),
    );
  }

  writeJSON(name: string, data: any): boolean {
    return this.writeFile(encodeName(name), stringToBytes(toJson(data), 'JSON text'), FLAG_NONE, 0, 0);
  }

  /** jsfListFiles: live files in flash order; a StorageFile shows as its first chunk "name\x01" unless filtered. */
  list(filter?: RegExp, options?: { sf?: boolean }): string[] {
    const sf = options && typeof options === 'object' ? options.sf : undefined;
    const names: string[] = [];
    const cur: Cursor = { addr: this.startAddress, header: emptyHeader() };
    if (!this.loadHeader(cur.addr, cur)) return names;
    do {
      if (!isLiveFile(cur.header)) continue;
      const isStorageFile = (fileFlags(cur.header) & FLAG_STORAGEFILE) !== 0;
      if (sf === false && isStorageFile) continue;
      if (sf === true && !isStorageFile) continue;
      let name = decodeName(cur.header.name);
      if (isStorageFile) {
        if (name.charCodeAt(name.length - 1) !== 1) continue; // only chunk 1 stands for the file
        if (sf === true) name = name.slice(0, -1);
      }
      if (filter && !name.match(filter)) continue;
      names.push(name);
    } while (this.nextHeader(cur, true));
    return names;
  }

  compact(_showMessage?: boolean): void {
    this.compactAll();
  }

  getFree(_checkInternalFlash?: boolean): number {
    return this.stats().freeBytes;
  }

  getStats(): StorageStats {
    return this.stats();
  }

  open(name: string, mode: 'r' | 'w' | 'a'): StorageFile {
    return new EspruinoStorageFile(this, name, mode);
  }

  /**
   * What Espruino does on a power-on boot before anything else (jsiSemiInit → jsfIsStorageValid): if the
   * storage does not parse, it prints "Storage is corrupt." and ERASES ALL OF IT. Returns the console text.
   */
  checkAtPowerOn(): string {
    if (this.isStorageValid()) return '';
    this.eraseAll();
    return 'Storage is corrupt.\nErasing Storage Area...\nErase complete.\n';
  }

  // ------------------------------------------------------------------ files (jsflash.c)

  /** jsfFindFile: the first live file with this exact name, walking from the start of storage. */
  findFile(name: Uint8Array): FoundFile | undefined {
    const cur: Cursor = { addr: this.startAddress, header: emptyHeader() };
    if (!this.loadHeader(cur.addr, cur)) return undefined;
    const wanted = firstChars(name);
    do {
      if (
        firstChars(cur.header.name) === wanted &&
        this.loadHeader(cur.addr, cur) &&
        namesEqual(cur.header.name, name)
      ) {
        return { addr: cur.addr + HEADER_BYTES, header: cur.header };
      }
    } while (this.nextHeader(cur, true));
    return undefined;
  }

  /** jsfReadFile: the file's bytes from offset (length <= 0: to the end), or undefined if there is no file. */
  readFile(name: Uint8Array, offset: number, length: number): Uint8Array | undefined {
    const found = this.findFile(name);
    if (!found) return undefined;
    const size = fileSize(found.header);
    let from = Math.max(0, Math.trunc(offset) || 0);
    let len = Math.trunc(length) || 0;
    if (len <= 0) len = size;
    if (from > size) from = size;
    if (from + len > size) len = size - from;
    return this.readAt(found.addr + from, Math.max(0, len));
  }

  /**
   * jsfWriteFile, in the device's order: (1) if a different file of this name exists and offset is 0, mark it
   * deleted (zero 4 name bytes); (2) find space after the last file, compacting if there is none; (3) write the
   * 32-byte header; (4) write the data. A file of the same size and flags whose data is still all 0xFF is
   * reused instead (the pre-allocated case). Writing identical contents writes nothing.
   */
  writeFile(name: Uint8Array, data: Uint8Array, flags: number, offset: number, sizeArg: number): boolean {
    offset = Math.trunc(offset) || 0;
    let size = Math.trunc(sizeArg) || 0;
    if (offset < 0 || size < 0) return false;
    if (size === 0) size = data.length;
    if (!size) throw new Error("Can't create zero length file");
    let found = this.findFile(name);
    if (
      offset === 0 &&
      (!found ||
        fileFlags(found.header) !== flags ||
        fileSize(found.header) !== size ||
        !this.isErased(found.addr, size))
    ) {
      if (
        found &&
        fileSize(found.header) === size &&
        fileFlags(found.header) === flags &&
        data.length === size &&
        this.isEqual(found.addr, data)
      ) {
        return true;
      }
      if (found) this.markDeleted(found.addr);
      found = this.createFile(name, size, flags);
    }
    if (!found) throw new Error('Unable to find or create file');
    if (offset + data.length > fileSize(found.header)) throw new Error('Too much data for file size');
    const addr = found.addr + offset;
    if (!this.isErased(addr, data.length)) throw new Error('File already written with different data');
    this.programAt(addr, data);
    return true;
  }

  /** jsfEraseFile: marks the first live file of that name deleted; false if there is none. */
  eraseFile(name: Uint8Array): boolean {
    const found = this.findFile(name);
    if (!found) return false;
    this.markDeleted(found.addr);
    return true;
  }

  /** Programs bytes at a device address (Flash.write / jshFlashWriteAligned: data only, 0xFF padding is a no-op). */
  programAt(addr: number, bytes: Uint8Array): void {
    if (bytes.length > 0) this.flash.program(addr - this.startAddress + this.flashOffset, bytes);
  }

  readAt(addr: number, len: number): Uint8Array {
    return this.flash.read(addr - this.startAddress + this.flashOffset, len);
  }

  /** jsfEraseFileInternal: zero the name's first 4 bytes (one 4-byte program at header + 4). */
  private markDeleted(dataAddr: number): void {
    this.programAt(dataAddr - HEADER_BYTES + 4, new Uint8Array(4));
  }

  /** jsfCreateFile: header written at the first place with room; compacts once if there is none. */
  private createFile(name: Uint8Array, size: number, flags: number): FoundFile | undefined {
    const required = alignAddress(size) + HEADER_BYTES;
    let compacted = false;
    let freeAddr = 0;
    while (!freeAddr) {
      let addr = this.startAddress;
      do {
        const cur: Cursor = { addr, header: emptyHeader() };
        if (this.loadHeader(addr, cur)) while (this.nextHeader(cur, false));
        addr = cur.addr;
        if (this.spaceLeftFrom(addr) < required) addr = this.nextPageAddress(addr);
        else freeAddr = addr;
      } while (addr && !freeAddr);
      if (!freeAddr) {
        if (compacted || !this.compactAll()) return undefined;
        compacted = true;
      }
    }
    const header: FileHeader = { word: (size | (flags << 24)) >>> 0, name };
    const bytes = new Uint8Array(HEADER_BYTES);
    new DataView(bytes.buffer).setUint32(0, header.word, true);
    bytes.set(name, 4);
    this.programAt(freeAddr, bytes);
    return { addr: freeAddr + HEADER_BYTES, header };
  }

  // ------------------------------------------------------------------ walking headers

  /** jsfGetFileHeader: reads the header at addr into cur.header; true if it is a file that fits in storage. */
  private loadHeader(addr: number, cur: Cursor): boolean {
    if (!addr) return false;
    const raw = this.readAt(addr, HEADER_BYTES);
    cur.header = { word: new DataView(raw.buffer).getUint32(0, true), name: raw.slice(4) };
    const word = cur.header.word;
    return word !== UNSET_WORD && word !== 0 && addr + HEADER_BYTES + fileSize(cur.header) <= this.endAddress;
  }

  /**
   * jsfGetNextFileHeader: moves cur to the header after the current file. On an invalid header, with
   * `allPages` it tries once more at the start of the next page (files may follow a gap to a page boundary).
   * cur.addr becomes 0 when the end of storage is reached.
   */
  private nextHeader(cur: Cursor, allPages: boolean): boolean {
    const oldAddr = cur.addr;
    cur.addr = 0;
    let addr = alignAddress(oldAddr + fileSize(cur.header) + HEADER_BYTES);
    if (addr + HEADER_BYTES > this.endAddress) return false;
    cur.addr = addr;
    let valid = this.loadHeader(addr, cur);
    if (allPages && !valid) {
      addr = this.nextPageAddress(addr);
      cur.addr = addr;
      if (!addr) return false;
      valid = this.loadHeader(addr, cur);
    }
    return valid;
  }

  private pageStart(addr: number): number | undefined {
    if (addr < this.startAddress || addr >= this.endAddress) return undefined;
    return addr - ((addr - this.startAddress) % this.flash.pageBytes);
  }

  /** jsfGetAddressOfNextPage: start of the page after addr's page, or 0. */
  private nextPageAddress(addr: number): number {
    const start = this.pageStart(addr);
    if (start === undefined) return 0;
    const next = start + this.flash.pageBytes;
    return next >= this.endAddress ? 0 : next;
  }

  /** jsfGetSpaceLeftInPage: room from addr to the next page, or to the end if the next page has no header. */
  private spaceLeftFrom(addr: number): number {
    const start = this.pageStart(addr);
    if (start === undefined) return 0;
    let limit = start + this.flash.pageBytes;
    if (limit < this.endAddress && !this.loadHeader(limit, { addr: limit, header: emptyHeader() }))
      limit = this.endAddress;
    return limit - addr;
  }

  private isErased(addr: number, len: number): boolean {
    return this.readAt(addr, len).every((b) => b === 0xff);
  }

  private isEqual(addr: number, data: Uint8Array): boolean {
    const stored = this.readAt(addr, data.length);
    return stored.every((b, i) => b === data[i]);
  }

  private erasePageAt(addr: number): void {
    this.flash.erasePage(addr - this.startAddress + this.flashOffset);
  }

  // ------------------------------------------------------------------ statistics and validity

  /** jsfGetStorageStats(0, true). */
  private stats(): StorageStats {
    return this.scanStats().stats;
  }

  /**
   * The stats walk; also finds where compaction may start (2v19+, Espruino issue #2391): the last page that
   * begins exactly with a file header at or before the first deleted file, as no file straddles into it.
   */
  private scanStats(): { stats: StorageStats; compactFrom: number } {
    const s: StorageStats = {
      totalBytes: this.endAddress - this.startAddress,
      freeBytes: 0,
      fileBytes: 0,
      fileCount: 0,
      trashBytes: 0,
      trashCount: 0,
    };
    const cur: Cursor = { addr: this.startAddress, header: emptyHeader() };
    let lastAddr = this.startAddress;
    let pageAlignedHeader = this.startAddress;
    let compactFrom = 0;
    if (this.loadHeader(cur.addr, cur))
      do {
        const bytes = alignAddress(fileSize(cur.header)) + HEADER_BYTES;
        lastAddr = cur.addr + bytes;
        if (this.pageStart(cur.addr) === cur.addr) pageAlignedHeader = cur.addr;
        if (isLiveFile(cur.header)) {
          s.fileBytes += bytes;
          s.fileCount++;
        } else {
          if (!compactFrom) compactFrom = pageAlignedHeader;
          s.trashBytes += bytes;
          s.trashCount++;
        }
      } while (this.nextHeader(cur, true));
    s.freeBytes = this.endAddress - lastAddr;
    return { stats: s, compactFrom: compactFrom || this.startAddress };
  }

  /**
   * jsfIsBankStorageValid(JSFSTT_NORMAL): walks every header; storage is corrupt when the walk ends on a header
   * that is neither valid nor all 0xFF (a torn header), or when the first header is blank but later flash is not.
   */
  isStorageValid(): boolean {
    const cur: Cursor = { addr: this.startAddress, header: emptyHeader() };
    let oldAddr = cur.addr;
    if (this.loadHeader(cur.addr, cur)) {
      while (this.nextHeader(cur, true)) oldAddr = cur.addr;
      if (!cur.addr) {
        const newAddr = alignAddress(oldAddr + fileSize(cur.header) + HEADER_BYTES);
        if (newAddr <= this.endAddress && newAddr + HEADER_BYTES > this.endAddress) return true; // storage just full
      }
    }
    const blank = cur.header.word === UNSET_WORD && cur.header.name.every((b) => b === 0xff);
    if (blank && cur.addr === this.startAddress) return this.isErased(cur.addr, this.endAddress - cur.addr);
    return blank;
  }

  // ------------------------------------------------------------------ compaction (jsfCompact)

  /**
   * jsfBankCompact: nothing to do without trash; else slide the live files, from the page where compaction
   * may start, towards the start through a buffer of at most one page + one header.
   */
  private compactAll(): boolean {
    const { stats, compactFrom } = this.scanStats();
    if (!stats.trashBytes) return true;
    const bufferBytes = Math.min(stats.fileBytes, this.flash.pageBytes + HEADER_BYTES);
    return this.compactThrough(compactFrom, new Uint8Array(bufferBytes));
  }

  /**
   * jsfCompactInternal: live files are read, in order, into a circular RAM buffer and written back from the
   * start of storage; a page is erased just before the first write into it, once everything in it has been
   * read. Whatever sits in the buffer when power is cut is lost, as on the device.
   */
  private compactThrough(startAddress: number, buffer: Uint8Array): boolean {
    const ring = { buffer, head: 0, tail: 0, used: 0, writeAddress: startAddress };
    const cur: Cursor = { addr: startAddress, header: emptyHeader() };
    if (this.loadHeader(cur.addr, cur))
      do {
        if (!isLiveFile(cur.header)) continue;
        const headerBytes = new Uint8Array(HEADER_BYTES);
        new DataView(headerBytes.buffer).setUint32(0, cur.header.word, true);
        headerBytes.set(cur.header.name, 4);
        for (const b of headerBytes) {
          buffer[ring.head] = b;
          ring.head = (ring.head + 1) % buffer.length;
        }
        ring.used += HEADER_BYTES;
        let remaining = alignAddress(fileSize(cur.header));
        let readAddress = cur.addr + HEADER_BYTES;
        this.flushRing(ring, readAddress);
        while (remaining) {
          let s = buffer.length - ring.used;
          if (s > buffer.length - ring.head) s = buffer.length - ring.head;
          if (ring.tail > ring.head && s > ring.tail - ring.head) s = ring.tail - ring.head;
          if (s === 0) return false; // "compact> error - no space left!"
          if (s > remaining) s = remaining;
          buffer.set(this.readAt(readAddress, s), ring.head);
          remaining -= s;
          readAddress += s;
          ring.used += s;
          ring.head = (ring.head + s) % buffer.length;
          this.flushRing(ring, readAddress);
        }
      } while (this.nextHeader(cur, true));
    this.flushRing(ring, this.endAddress);
    let eraseFrom = ring.writeAddress;
    if (eraseFrom !== startAddress) eraseFrom = this.nextPageAddress(eraseFrom - 1);
    if (eraseFrom) {
      const eraseTo = cur.addr || this.endAddress;
      for (let addr = eraseFrom; addr < eraseTo; addr += this.flash.pageBytes) this.erasePageAt(addr);
    }
    return true;
  }

  /** jsfCompactWriteBuffer: writes buffered bytes to writeAddress, but never into a page still being read. */
  private flushRing(
    ring: { buffer: Uint8Array; tail: number; used: number; writeAddress: number },
    readAddress: number,
  ): void {
    const size = ring.buffer.length;
    let nextFlashPage = this.nextPageAddress(ring.writeAddress) || this.endAddress;
    while (ring.used) {
      let s = ring.used;
      if (s + ring.tail > size) s = size - ring.tail;
      if (s + ring.writeAddress > nextFlashPage) s = nextFlashPage - ring.writeAddress;
      if (readAddress < nextFlashPage) return;
      if (this.pageStart(ring.writeAddress) === ring.writeAddress) this.erasePageAt(ring.writeAddress);
      this.programAt(ring.writeAddress, ring.buffer.subarray(ring.tail, ring.tail + s));
      ring.writeAddress += s;
      nextFlashPage = this.nextPageAddress(ring.writeAddress) || this.endAddress;
      ring.tail = (ring.tail + s) % size;
      ring.used -= s;
    }
  }
}
