// ATECC608B secure element on the emulated I2C bus, at the level of the bytes on the wire
// (protocol as CryptoAuthLib implements it: calib_basic.c, calib_execution.c, calib_command.h).
//
// Power states: asleep → (wake) → awake → idle/asleep. The chip wakes when SDA is held low for at
// least tWLO = 60 µs: on this bus that is the address phase of a transfer to address 0x00 (a
// general call, what calib_wakeup_i2c sends) at ≤ 133 kHz on I2C1 — e.g. `I2C1.writeTo(0, 1)` at 100 kHz —
// or at ≤ 20 kHz on software I2C, which lets SDA go between bits (I2CBus: the firmware's wake at 10 kHz).
// (A write to 0x60 at ≤ 100 kHz has six low bits after the start and wakes it too, as it would
// a real part; the transfer itself is not acknowledged.) The chip then needs tWHI = 1.5 ms before
// it acknowledges its address; its first response is the wake reply 04 11 33 43.
// While asleep, idle, waking or executing a command it acknowledges nothing at its address
// (writes and reads are NACKed: the master gets no data).
//
// Writes start with a word address: 0x00 resets the response read pointer, 0x01 sleep (clears
// TempKey and the message digest/alternate key buffers), 0x02 idle (keeps them, stops the
// watchdog), 0x03 a command `[count][opcode][param1][param2 lo][param2 hi][data…][crc lo][crc hi]`.
// A count that does not match the bytes received or a bad CRC is answered at once with status
// 0xFF; otherwise the command executes for the data sheet's maximum time for the configured clock
// divider (timing.ts) and then its response `[count][data or status][crc]` can be read, in one or
// several reads (each read continues where the last ended; past the end reads give 0xFF).
// The watchdog puts the chip to sleep 1.3 s (13 s with ChipMode bit 2) after the wake, whatever
// it is doing; a command that would finish later is lost.
//
// Time is the bus's virtual time (I2CTransfer.start; see I2CBus), so a firmware that polls sees
// the command finish. State is brought up to date lazily at each transfer.
//
// Private keys never leave the model: no method returns them; only toJSON() writes the whole
// EEPROM (the chip's own non-volatile memory) so a board keeps its chip across power cycles.

import { randomBytes } from 'node:crypto';
import type { I2CDevice, I2CTransfer } from '../../pins.ts';
import { STATUS_COMM_ERROR, STATUS_PARSE_ERROR, type Chip, type Command, type Outcome } from './commands/chip.ts';
import { HANDLERS } from './commands/index.ts';
import { crc16, frame } from './crc16.ts';
import { executionSeconds } from './timing.ts';
import { Eeprom, type EepromJSON } from './zones.ts';

/** Minimum SDA low time that wakes the chip (tWLO). */
export const WAKE_LOW_MICROS = 60;
/** Time from the wake pulse until the chip answers (tWHI, CryptoAuthLib wake_delay 1500 µs). */
export const WAKE_DELAY_SECONDS = 0.0015;
export const WATCHDOG_SECONDS = 1.3;
export const LONG_WATCHDOG_SECONDS = 13;

export const WAKE_REPLY = Uint8Array.of(0x04, 0x11, 0x33, 0x43);
/** The wake reply of a chip whose power-on self test failed (sent literally; its CRC is not atCRC). */
export const SELF_TEST_FAILED_REPLY = Uint8Array.of(0x04, 0x07, 0xc4, 0x40);

export const WORD_RESET = 0x00;
export const WORD_SLEEP = 0x01;
export const WORD_IDLE = 0x02;
export const WORD_COMMAND = 0x03;

/** Largest command packet, count through CRC (ATCA_CMD_SIZE_MAX). */
const MAX_PACKET = 151;
const MIN_PACKET = 7;

export type PowerState = 'asleep' | 'idle' | 'awake';

/** One-shot faults for testing a driver's error handling. */
export type Atecc608Fault =
  /** The next wake pulse is not noticed. */
  | 'missed-wake'
  /** The next wake reply is 04 07 C4 40 (self-test failure). */
  | 'self-test-failure'
  /** The next command response has a corrupted CRC. */
  | 'response-crc';

export interface Atecc608Options {
  /** The shared clock (only now() is used); bus transfers carry their own, later, time. */
  clock: { now(): number };
  /** 9-byte serial number (01 23 … EE); random when absent. Ignored when `eeprom` is given. */
  serial?: Uint8Array;
  /** The chip's RNG: cryptographically random by default; pass a seeded one for repeatable tests. */
  random?: (length: number) => Uint8Array;
  /** EEPROM contents (e.g. restored by fromJSON); a factory-new chip when absent. */
  eeprom?: Eeprom;
}

interface Pending {
  command: Command;
  /** Virtual seconds at which execution ends. */
  doneAt: number;
}

export class Atecc608 implements I2CDevice {
  private readonly clock: { now(): number };
  private readonly eeprom: Eeprom;
  private readonly chip: Chip;
  private power: PowerState = 'asleep';
  private wokeAt = 0;
  /** Before this time the chip does not acknowledge (waking up or executing). */
  private busyUntil = 0;
  private pending: Pending | undefined;
  private output: Uint8Array = new Uint8Array(0);
  private readPosition = 0;
  private lastTime = 0;
  private readonly faults = new Set<Atecc608Fault>();
  private readonly changeListeners = new Set<(eeprom: EepromJSON) => void>();

  constructor(opts: Atecc608Options) {
    this.clock = opts.clock;
    this.eeprom = opts.eeprom ?? Eeprom.factory(opts.serial);
    const random = opts.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
    this.chip = {
      eeprom: this.eeprom,
      tempKey: undefined,
      messageDigest: undefined,
      alternateKey: undefined,
      random,
      eepromChanged: () => {
        const json = this.eeprom.toJSON();
        for (const l of [...this.changeListeners]) l(json);
      },
    };
  }

  /** A chip with the EEPROM of an earlier toJSON() (volatile state starts as after power-up). */
  static fromJSON(json: unknown, opts: Omit<Atecc608Options, 'eeprom' | 'serial'>): Atecc608 {
    return new Atecc608({ ...opts, eeprom: Eeprom.fromJSON(json) });
  }

  /** The EEPROM (config, OTP, data slots including private keys), after any command in progress has finished. */
  toJSON(): EepromJSON {
    this.advance(this.clock.now());
    return this.eeprom.toJSON();
  }

  /** Commands executed (received intact and run to completion), by opcode: what a bus analyser would count. */
  readonly executedCommands = new Map<number, number>();

  /** Called with the EEPROM image whenever a command changed it (for persistence). */
  onEepromChange(listener: (eeprom: EepromJSON) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  get serialNumber(): Uint8Array {
    return this.eeprom.serialNumber();
  }

  /** Power state at the current clock time (diagnostics). */
  get state(): PowerState {
    this.advance(this.clock.now());
    return this.power;
  }

  /** Arms a one-shot fault (see Atecc608Fault). */
  injectFault(fault: Atecc608Fault): void {
    this.faults.add(fault);
  }

  /** Supply voltage gone: volatile state lost, a command in progress never completes. */
  powerOff(): void {
    this.sleep();
  }

  // --- I2CDevice ---------------------------------------------------------------------------

  observe(transfer: I2CTransfer): void {
    const t = this.timeOf(transfer);
    this.advance(t);
    if (transfer.sdaLowMicros < WAKE_LOW_MICROS || this.power === 'awake') return;
    if (this.faults.delete('missed-wake')) return;
    this.power = 'awake';
    this.wokeAt = t;
    this.busyUntil = t + WAKE_DELAY_SECONDS;
    this.setOutput((this.faults.delete('self-test-failure') ? SELF_TEST_FAILED_REPLY : WAKE_REPLY).slice());
  }

  write(bytes: Uint8Array, transfer: I2CTransfer): boolean {
    if (!this.acknowledges(transfer)) return false;
    if (bytes.length === 0) return true;
    switch (bytes[0]) {
      case WORD_RESET:
        this.readPosition = 0;
        return true;
      case WORD_SLEEP:
        this.sleep();
        return true;
      case WORD_IDLE:
        this.power = 'idle';
        return true;
      case WORD_COMMAND:
        this.receiveCommand(bytes.subarray(1), this.timeOf(transfer));
        return true;
      default:
        return false;
    }
  }

  read(n: number, transfer: I2CTransfer): Uint8Array | undefined {
    if (!this.acknowledges(transfer)) return undefined;
    const out = new Uint8Array(n).fill(0xff);
    out.set(this.output.subarray(this.readPosition, this.readPosition + n));
    this.readPosition = Math.min(this.output.length, this.readPosition + n);
    return out;
  }

  // -----------------------------------------------------------------------------------------

  private timeOf(transfer: I2CTransfer): number {
    return Math.max(transfer.start, this.clock.now());
  }

  private acknowledges(transfer: I2CTransfer): boolean {
    const t = this.timeOf(transfer);
    this.advance(t);
    return this.power === 'awake' && t >= this.busyUntil;
  }

  /** Brings the chip to time t: a command due by then completes, the watchdog fires. */
  private advance(t: number): void {
    if (t < this.lastTime) t = this.lastTime;
    this.lastTime = t;
    if (this.power !== 'awake') return;
    const watchdogAt = this.wokeAt + (this.eeprom.longWatchdog ? LONG_WATCHDOG_SECONDS : WATCHDOG_SECONDS);
    if (this.pending && this.pending.doneAt <= t && this.pending.doneAt < watchdogAt) {
      const { command } = this.pending;
      this.pending = undefined;
      this.executedCommands.set(command.opcode, (this.executedCommands.get(command.opcode) ?? 0) + 1);
      this.respondWith(this.execute(command));
    }
    if (t >= watchdogAt) this.sleep();
  }

  private sleep(): void {
    this.power = 'asleep';
    this.pending = undefined;
    this.busyUntil = 0;
    this.setOutput(new Uint8Array(0));
    this.chip.tempKey = undefined;
    this.chip.messageDigest = undefined;
    this.chip.alternateKey = undefined;
  }

  private receiveCommand(packet: Uint8Array, t: number): void {
    this.pending = undefined;
    const count = packet[0];
    if (packet.length < MIN_PACKET || packet.length > MAX_PACKET || count !== packet.length)
      return this.respondWith({ status: STATUS_COMM_ERROR });
    const crc = packet[count - 2] | (packet[count - 1] << 8);
    if (crc16(packet.subarray(0, count - 2)) !== crc) return this.respondWith({ status: STATUS_COMM_ERROR });
    const command: Command = {
      opcode: packet[1],
      param1: packet[2],
      param2: packet[3] | (packet[4] << 8),
      data: packet.slice(5, count - 2),
    };
    this.setOutput(new Uint8Array(0));
    const doneAt = t + executionSeconds(command.opcode, this.eeprom.clockDivider);
    this.pending = { command, doneAt };
    this.busyUntil = doneAt;
  }

  private execute(command: Command): Outcome {
    const handler = HANDLERS[command.opcode];
    return handler ? handler(this.chip, command) : { status: STATUS_PARSE_ERROR };
  }

  private respondWith(outcome: Outcome): void {
    const bytes = frame('data' in outcome ? outcome.data : Uint8Array.of(outcome.status));
    if (this.faults.delete('response-crc')) bytes[bytes.length - 1] ^= 0xff;
    this.setOutput(bytes);
  }

  private setOutput(bytes: Uint8Array): void {
    this.output = bytes;
    this.readPosition = 0;
  }
}
