/// <reference path="../../firmware/src/platform/espruino-api.d.ts" />
// Espruino's `Flash` module (require("Flash")) as the ESP32 build of Espruino 2v29 runs it, over the
// emulated NOR flash. Ported from src/jswrap_flash.c (the JS API), src/jshardware_common.c
// jshFlashWriteAligned (word alignment) and targets/esp32/jshardware.c (jshFlashGetPage, jshFlashGetFree,
// jshFlashRead/Write/ErasePage). docs/emulator-storage.md, "The Flash module", lists what is modelled.
//
// Where the device writes anywhere in its 4 MB chip (the Espruino firmware, the bootloader …), the
// emulator backs only the regions its board has (the raw partition and Storage) and refuses any other
// address with an error: louder than the device, which would overwrite its own firmware.
import type { Flash } from './flash.ts';
import { dataToBytes } from './storage.ts';

/** FLASH_MAX in targets/esp32/jshardware.c: jshFlashGetPage answers for the first 4 MB. */
const ESP32_FLASH_MAX = 4 * 1024 * 1024;
/** JSF_ALIGNMENT on ESP32: jshFlashWriteAligned writes whole 4-byte words. */
const WRITE_ALIGNMENT = 4;
/**
 * jshFlashGetFree on ESP32 (2v29), as listed there. 0xE000+0x2000 lies in the nvs partition and
 * 0x360000+0xA0000 inside the 896 KB Storage area (0x320000-0x3FFFFF, since 2v26): both are stale
 * entries that must not be used; only 0x310000+0x10000 (the "flash" data partition of
 * targets/esp32/IDF4/partitions.csv) is free.
 */
export const ESP32_FREE_AREAS: ReadonlyArray<{ addr: number; length: number }> = [
  { addr: 0xe000, length: 0x2000 },
  { addr: 0x310000, length: 0x10000 },
  { addr: 0x360000, length: 0xa0000 },
];

export class EspruinoFlashModule implements FlashModule {
  /** Device address of the emulated flash's first byte. */
  readonly baseAddress: number;
  private readonly flash: Flash;

  constructor(flash: Flash, baseAddress: number) {
    this.flash = flash;
    this.baseAddress = baseAddress;
  }

  /** jswrap_flash_getPage + ESP32 jshFlashGetPage: 4 KB pages below 4 MB, else undefined. */
  getPage(addr: number): { addr: number; length: number } | undefined {
    const a = toInt(addr) >>> 0;
    if (a >= ESP32_FLASH_MAX) return undefined;
    return { addr: a - (a % this.flash.pageBytes), length: this.flash.pageBytes };
  }

  /** jshFlashGetFree on ESP32: a fixed list, stale entries included. */
  getFree(): { addr: number; length: number }[] {
    return ESP32_FREE_AREAS.map((a) => ({ addr: a.addr, length: a.length }));
  }

  /** jswrap_flash_erasePage: the address must be an integer JsVar; the page holding it is erased. */
  erasePage(addr: number): void {
    if (typeof addr !== 'number' || !Number.isInteger(addr)) {
      throw new Error(`Address should be an integer, got ${typeName(addr)}`);
    }
    this.flash.erasePage(this.offsetOf(addr >>> 0, 1));
  }

  /** jswrap_flash_read: a Uint8Array of `length` bytes; undefined for length <= 0. */
  read(length: number, addr: number): Uint8Array | undefined {
    const len = toInt(length);
    if (len <= 0) return undefined;
    return this.flash.read(this.offsetOf(toInt(addr) >>> 0, len), len);
  }

  /**
   * jswrap_flash_write → jshFlashWriteAligned: an unaligned head or tail is written as a whole word made
   * of the flash's current bytes with the new ones put in (reprogramming a byte with its own value
   * changes nothing on NOR), the middle as it is. Bytes reach the flash in ascending order.
   */
  write(data: unknown, addr: number): void {
    if (data === undefined) throw new Error('Data is not defined');
    const bytes = dataToBytes(data);
    if (bytes.length === 0) return;
    let a = toInt(addr) >>> 0;
    let start = 0;
    const head = a % WRITE_ALIGNMENT;
    if (head) {
      const word = this.wordWith(a - head, head, bytes.subarray(0, Math.min(bytes.length, WRITE_ALIGNMENT - head)));
      this.flash.program(this.offsetOf(a - head, WRITE_ALIGNMENT), word);
      start = Math.min(bytes.length, WRITE_ALIGNMENT - head);
      a += start;
      if (start >= bytes.length) return;
    }
    const tail = (bytes.length - start) % WRITE_ALIGNMENT;
    const middle = bytes.length - start - tail;
    if (middle) this.flash.program(this.offsetOf(a, middle), bytes.subarray(start, start + middle));
    if (tail) {
      const at = a + middle;
      this.flash.program(this.offsetOf(at, WRITE_ALIGNMENT), this.wordWith(at, 0, bytes.subarray(start + middle)));
    }
  }

  /** The 4-byte word at `wordAddr` as the flash holds it, with `bytes` put in from `at`. */
  private wordWith(wordAddr: number, at: number, bytes: Uint8Array): Uint8Array {
    const word = this.flash.read(this.offsetOf(wordAddr, WRITE_ALIGNMENT), WRITE_ALIGNMENT);
    word.set(bytes, at);
    return word;
  }

  private offsetOf(addr: number, length: number): number {
    const offset = addr - this.baseAddress;
    if (offset < 0 || offset + length > this.flash.sizeBytes) {
      const end = this.baseAddress + this.flash.sizeBytes;
      throw new Error(
        `Flash access at 0x${addr.toString(16)} (+${length}) is outside the emulated flash 0x${this.baseAddress.toString(16)}-0x${end.toString(16)} ` +
          '(the raw partition and Storage); on the device it would hit the firmware or bootloader',
      );
    }
    return offset;
  }
}

/** Espruino's "int" parameter conversion (jsvGetInteger): numbers truncated, others via Number. */
function toInt(v: unknown): number {
  const n = Math.trunc(Number(v));
  return Number.isFinite(n) ? n : 0;
}

/** The type name Espruino's %t prints. */
function typeName(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (typeof v === 'number') return 'Number';
  if (typeof v === 'string') return 'String';
  if (typeof v === 'boolean') return 'Boolean';
  if (typeof v === 'function') return 'Function';
  if (Array.isArray(v)) return 'Array';
  return 'Object';
}
