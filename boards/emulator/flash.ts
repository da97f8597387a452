// A NOR flash chip, as Espruino's Storage sees it on an ESP32: programming can only clear bits (new = old AND
// data), only a whole page (sector) erase sets bits back to 1 (0xFF). The contents are persisted to a file as
// they change, so a board keeps its flash across process restarts, and power can be cut after any byte.
//
// Power-cut model (see docs/emulator-storage.md): every byte programmed and every byte erased costs one unit of
// the power budget set by cutPowerAfterBytes(n). Bytes are programmed in ascending address order, one at a
// time; an erase costs one unit per byte of its page. When the budget runs out, the n-th unit is the last one
// that reaches the flash and PowerLoss is thrown. Every later program or erase throws PowerLoss until
// restorePower().
//
// An erase cut after k of its units leaves the page partially erased, as a real NOR sector whose erase pulse
// was interrupted: its cells sit between programmed and erased, so each bit that was 0 reads as 1 with
// probability k / pageBytes, independently, anywhere in the page (bits already 1 stay 1). The bits are drawn
// from a PRNG seeded by the page and the flash's history, so a run is repeatable. What is assumed: a cell
// reads the same on every read after the cut (real parts can read an unstable cell differently each time;
// the firmware reads every record once per boot, so this changes no outcome it relies on).
import * as fs from 'node:fs';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

/** Thrown by a flash operation that the power cut stopped; the flash holds what reached it before the cut. */
export class PowerLoss extends VeilgridError {
  constructor() {
    super(
      'PowerLoss',
      'power-loss',
      'power lost: the flash operation was cut off (call restorePower() to power the flash again)',
    );
  }
}

export interface FlashOptions {
  sizeBytes: number;
  pageBytes: number;
  /** File holding the flash contents; loaded if it exists, created (all 0xFF) otherwise. */
  path?: string;
}

export class Flash {
  readonly sizeBytes: number;
  readonly pageBytes: number;
  /** Bytes programmed since construction (each byte of program() that reached the flash). */
  bytesProgrammed = 0;
  /** Bytes erased since construction (pageBytes per erased page; fewer if a cut stopped an erase). */
  bytesErased = 0;
  private readonly cells: Uint8Array;
  private fd: number | undefined;
  /** Units (programmed or erased bytes) left before the power cut; Infinity when no cut is armed. */
  private budget = Infinity;
  private powered = true;

  constructor({ sizeBytes, pageBytes, path }: FlashOptions) {
    if (!(pageBytes > 0) || !(sizeBytes > 0) || sizeBytes % pageBytes !== 0) {
      throw new Error(`flash size ${sizeBytes} must be a positive multiple of the page size ${pageBytes}`);
    }
    this.sizeBytes = sizeBytes;
    this.pageBytes = pageBytes;
    this.cells = new Uint8Array(sizeBytes).fill(0xff);
    if (path !== undefined) this.fd = openBacking(path, this.cells);
  }

  /** Units of power budget spent so far: programmed plus erased bytes (what cutPowerAfterBytes counts). */
  get bytesWritten(): number {
    return this.bytesProgrammed + this.bytesErased;
  }

  read(addr: number, len: number): Uint8Array {
    this.checkRange(addr, len);
    return this.cells.slice(addr, addr + len);
  }

  /** Programs bytes at addr: each cell becomes old AND new, as NOR flash can only clear bits. */
  program(addr: number, bytes: Uint8Array): void {
    this.checkRange(addr, bytes.length);
    this.checkPowered();
    const reach = Math.min(bytes.length, this.budget);
    for (let i = 0; i < reach; i++) this.cells[addr + i] &= bytes[i];
    this.spend(reach);
    this.bytesProgrammed += reach;
    this.persist(addr, reach);
    if (reach < bytes.length || this.budget === 0) this.cutPower();
  }

  /** Erases the page containing addr to 0xFF; a cut part-way leaves it partially erased (see the top). */
  erasePage(addr: number): void {
    this.checkRange(addr, 1);
    this.checkPowered();
    const start = addr - (addr % this.pageBytes);
    const reach = Math.min(this.pageBytes, this.budget);
    if (reach === this.pageBytes) this.cells.fill(0xff, start, start + reach);
    else this.eraseInterrupted(start, reach / this.pageBytes);
    this.spend(reach);
    this.bytesErased += reach;
    this.persist(start, this.pageBytes);
    if (reach < this.pageBytes || this.budget === 0) this.cutPower();
  }

  /** Raises each 0 bit of the page to 1 with probability `progress` (a seeded, repeatable draw). */
  private eraseInterrupted(start: number, progress: number): void {
    let seed = (start ^ Math.imul(this.bytesWritten + 1, 0x9e3779b1)) >>> 0;
    for (let i = start; i < start + this.pageBytes; i++) {
      let raise = 0;
      for (let bit = 0; bit < 8; bit++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        if (seed / 4294967296 < progress) raise |= 1 << bit;
      }
      this.cells[i] |= raise;
    }
  }

  /** Arms a power cut: the n-th next programmed or erased byte is the last to reach the flash (n = 0: none). */
  cutPowerAfterBytes(n: number): void {
    if (!(n >= 0) || !Number.isInteger(n)) throw new Error(`cutPowerAfterBytes needs a whole number >= 0, got ${n}`);
    this.budget = n;
  }

  restorePower(): void {
    this.powered = true;
    this.budget = Infinity;
  }

  get hasPower(): boolean {
    return this.powered;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private spend(units: number): void {
    if (this.budget !== Infinity) this.budget -= units;
  }

  private cutPower(): never {
    this.powered = false;
    throw new PowerLoss();
  }

  private checkPowered(): void {
    if (!this.powered || this.budget === 0) this.cutPower();
  }

  private checkRange(addr: number, len: number): void {
    if (!Number.isInteger(addr) || !Number.isInteger(len) || addr < 0 || len < 0 || addr + len > this.sizeBytes) {
      throw new RangeError(`flash access ${addr}+${len} is outside the ${this.sizeBytes}-byte flash`);
    }
  }

  private persist(addr: number, len: number): void {
    if (this.fd !== undefined && len > 0) fs.writeSync(this.fd, this.cells, addr, len, addr);
  }
}

/** Opens (or creates, erased) the file behind a flash and loads it into cells; returns the open descriptor. */
function openBacking(path: string, cells: Uint8Array): number {
  if (!fs.existsSync(path)) {
    // 0600: a meter's flash holds its configuration, broker password included.
    const fd = fs.openSync(path, 'w+', 0o600);
    fs.writeSync(fd, cells, 0, cells.length, 0);
    return fd;
  }
  const fd = fs.openSync(path, 'r+');
  const size = fs.fstatSync(fd).size;
  if (size !== cells.length) {
    fs.closeSync(fd);
    throw new Error(
      `flash file ${path} holds ${size} bytes but this flash has ${cells.length}: delete it or use the matching board`,
    );
  }
  fs.readSync(fd, cells, 0, cells.length, 0);
  return fd;
}
