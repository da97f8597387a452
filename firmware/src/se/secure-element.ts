// Driver for the ATECC608 secure element on I2C: every private-key operation and all randomness of
// the meter happen inside the chip. Protocol as CryptoAuthLib speaks it (see docs/secure-element.md):
// each command is wake -> command write -> polling reads until the response is there -> idle (with a
// bus clock: a wait before the polls, and one wake and no idle for a burst of commands).
//
// Espruino's I2C is blocking, so every method returns its result synchronously. The bus is software I2C
// (platform/i2c.ts): the chip does not ACK its address while asleep or busy, and there that is no error but
// a read of 0xFF bytes, which checkResponse takes for "nothing yet", and a write the chip never took, which
// shows as a command that is never answered. (On the ESP32's I2C peripheral every missing ACK would be an
// exception, and Espruino builds each one's stack trace by scanning the firmware's source.) With a bus
// clock the driver waits a command's execution time (ChipMode M0, ours) before its first poll, as
// CryptoAuthLib does, and keeps the chip awake through a burst of commands (a reading's five: Random,
// Nonce, Sign, GenKey, ECDH), waking it again only when its watchdog (1.3 s from the wake) might run out;
// the watchdog then puts it to sleep. Without a clock every command is polled from the start, each poll
// taking at least an address byte on the wire (POLL_MIN_MS), so a command gets at most
// maxMs / POLL_MIN_MS polls, and the chip is woken and idled around every command.
//
// Retries: a wake that gets no 04 11 33 43 is retried (after an idle, in case the chip was already
// awake); a command the chip reports as not received intact (status 0xFF), or that never answers,
// is sent again after a fresh wake; a response that arrives with a bad CRC is read again from the
// start of the chip's output buffer (word address 0x00), never re-executed (Counter increments and
// GenKey must not run twice). Each bound ends in a SecureElementError naming command and status.

import {
  buildCommand,
  checkResponse,
  hexByte,
  OP_COUNTER,
  OP_ECDH,
  OP_GENKEY,
  OP_INFO,
  OP_LOCK,
  OP_NONCE,
  OP_RANDOM,
  OP_READ,
  OP_SIGN,
  OP_VERIFY,
  OP_WRITE,
  RESPONSE_BAD_CRC,
  RESPONSE_EMPTY,
  RESPONSE_OK,
  responsePayload,
  responseStatus,
  STATUS_AFTER_WAKE,
  STATUS_COMM_ERROR,
  STATUS_MISCOMPARE,
  STATUS_SELF_TEST_ERROR,
  STATUS_SUCCESS,
  STATUS_WATCHDOG_EXPIRING,
  statusName,
  WORD_IDLE,
  WORD_RESET,
  WORD_SLEEP,
  ZONE_32_BYTES,
  ZONE_CONFIG,
  zoneAddress,
} from './packet.ts';
import { atCrc16 } from './crc16.ts';
import {
  CONFIG_ZONE_BYTES,
  LOCK_BYTE_UNLOCKED,
  OFFSET_LOCK_CONFIG,
  OFFSET_LOCK_VALUE,
} from '../protocol/se-config-zone.ts';
import { VeilgridError } from '../protocol/veilgrid-error.ts';

export const DEFAULT_ADDRESS = 0x60;

/** Shortest time one polling read can take on the wire: start and address byte, ten bits of 8 us on software I2C at 100 kHz. */
const POLL_MIN_MS = 0.08;
/** tWHI (1.5 ms: wake to first possible read) plus margin, in polling reads. */
const WAKE_POLLS = 25;
const WAKE_ATTEMPTS = 3;
/** Time after a wake by which commands must be done: the watchdog's 1.3 s, less a margin for the host to read the response. */
const AWAKE_BUDGET_MS = 1000;
/** The watchdog (ChipMode's short one): the chip sleeps this long after a wake, TempKey cleared. */
const WATCHDOG_MS = 1300;
/** Sends of one command (first send included) when the chip did not receive it or never answered. */
const COMMAND_ATTEMPTS = 3;
/** Reads of one response when it arrives corrupted. */
const RESPONSE_READS = 3;

// Maximum execution times in ms (CryptoAuthLib calib_execution.c), the larger of the 608's M0 and M1
// clock dividers, so a factory-fresh chip is waited for long enough whatever its ChipMode.
const MAX_MS_READ = 5;
const MAX_MS_WRITE = 45;
const MAX_MS_NONCE = 20;
const MAX_MS_LOCK = 35;
const MAX_MS_RANDOM = 23;
const MAX_MS_COUNTER = 25;
const MAX_MS_INFO = 5;
const MAX_MS_GENKEY = 215;
const MAX_MS_SIGN = 220;
const MAX_MS_ECDH = 172;
const MAX_MS_VERIFY = 295;

/** Response lengths: count + payload + CRC. */
const RESPONSE_STATUS = 4;
const RESPONSE_4_BYTES = 7;
const RESPONSE_32_BYTES = 35;
const RESPONSE_64_BYTES = 67;

// Command modes (calib_command.h).
const GENKEY_PRIVATE = 0x04;
const GENKEY_PUBLIC = 0x00;
const KEY_ID_TEMPKEY = 0xffff;
const NONCE_PASS_THROUGH = 0x03;
export const NONCE_TARGET_TEMPKEY = 0x00;
export const NONCE_TARGET_MESSAGE_DIGEST = 0x40;
/** Sign/Verify: the message comes from the message digest buffer (608), leaving TempKey alone. */
const SOURCE_MESSAGE_DIGEST = 0x20;
const SIGN_EXTERNAL = 0x80;
const SIGN_INTERNAL = 0x00;
/** GenKey: recompute a slot's public key and hash it with TempKey into TempKey (key attestation). */
const GENKEY_DIGEST = 0x08;
const VERIFY_EXTERNAL = 0x02;
const VERIFY_KEY_P256 = 0x0004;
/** ECDH: source slot (0) or TempKey (1), output in the clear (0), result to the output buffer (0x0C). */
const ECDH_SLOT_CLEAR = 0x0c;
const ECDH_TEMPKEY_CLEAR = 0x0d;
const LOCK_CONFIG = 0x00;
const LOCK_DATA_NO_CRC = 0x81;
const COUNTER_READ = 0x00;
const COUNTER_INCREMENT = 0x01;

/** A command failed. `status` is the chip's status byte, or -1 when none arrived. */
export class SecureElementError extends VeilgridError {
  declare readonly command: string;
  declare readonly status: number;
  constructor(command: string, status: number, detail: string) {
    const message = 'secure element ' + command + ': ' + detail;
    super('SecureElementError', 'secure-element', message);
    this.command = command;
    this.status = status;
  }
}

function statusError(command: string, status: number, what: string): SecureElementError {
  return new SecureElementError(
    command,
    status,
    what + ' (status 0x' + hexByte(status) + ': ' + statusName(status) + ')',
  );
}

function checkLength(command: string, what: string, bytes: Uint8Array, length: number): void {
  if (!bytes || bytes.length !== length) {
    throw new SecureElementError(
      command,
      -1,
      what + ' must be ' + length + ' bytes, got ' + (bytes ? bytes.length : 'none'),
    );
  }
}

function checkSlot(command: string, slot: number): void {
  if (typeof slot !== 'number' || slot < 0 || slot > 15 || Math.floor(slot) !== slot) {
    throw new SecureElementError(command, -1, 'slot must be 0..15, got ' + slot);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Time for the driver: the board's clock, and a wait that blocks (the bus is blocking anyway). */
export interface BusClock {
  nowMs(): number;
  waitMs(ms: number): void;
}

export interface SecureElementOptions {
  /** 7-bit I2C address (default 0x60). */
  address?: number;
  /** With a clock the driver waits out execution times instead of polling, and keeps the chip awake through a burst. */
  clock?: BusClock;
}

/** tWHI: from the wake to the chip's first possible answer. */
const WAKE_DELAY_MS = 1.5;

/**
 * Execution time in ms with ChipMode's clock divider M0, the factory default and the one provisioning
 * keeps (CryptoAuthLib calib_execution.c): the wait before the first poll. A slower chip is polled.
 */
function expectedMs(opcode: number): number {
  switch (opcode) {
    case OP_GENKEY:
    case OP_SIGN:
      return 115;
    case OP_VERIFY:
      return 105;
    case OP_ECDH:
      return 75;
    case OP_WRITE:
      return 45;
    case OP_LOCK:
      return 35;
    case OP_COUNTER:
      return 25;
    case OP_RANDOM:
      return 23;
    case OP_NONCE:
      return 20;
    default:
      return 5;
  }
}

/** Counts of bus activity, for benchmarks and tests. */
export interface SecureElementStats {
  commands: number;
  wakes: number;
  /** Reads that found the chip busy (or asleep) and were repeated. */
  busyPolls: number;
  /** Commands sent again after the chip reported 0xFF or never answered. */
  resends: number;
  /** Responses read again because their CRC did not match. */
  rereads: number;
}

/**
 * The bus the driver needs (platform/i2c.ts secureElementBus): transfers that never throw for a missing ACK,
 * so a write nobody takes is lost and a read from nobody gives 0xFF bytes, and a wake that holds SDA low for
 * at least tWLO (60 us).
 */
export interface SecureElementBus {
  wake(): void;
  writeTo(address: number, data: Uint8Array | number[]): void;
  readFrom(address: number, quantity: number): Uint8Array;
}

export class SecureElement {
  private declare readonly i2c: SecureElementBus;
  private declare readonly address: number;
  declare readonly stats: SecureElementStats;
  private declare readonly clock: BusClock | undefined;
  /** clock.nowMs() at the last wake; -1 while the chip is not known to be awake. */
  private declare wokeAtMs: number;
  /** Longest the chip can have spent executing since that wake (the sum of the commands' maximum times). */
  private declare busyMsSinceWake: number;
  /** The ephemeral key of the last genTempKey is still in TempKey: the chip has not slept since. */
  private declare tempKeyHeld: boolean;

  constructor(i2c: SecureElementBus, options?: SecureElementOptions) {
    this.i2c = i2c;
    this.address = options && options.address !== undefined ? options.address : DEFAULT_ADDRESS;
    this.clock = options && options.clock;
    this.wokeAtMs = -1;
    this.busyMsSinceWake = 0;
    this.tempKeyHeld = false;
    this.stats = { commands: 0, wakes: 0, busyPolls: 0, resends: 0, rereads: 0 };
  }

  // ---- bus primitives ------------------------------------------------------------------------

  /**
   * Wakes the chip: SDA low for at least tWLO (the bus's wake), then polls until the wake reply
   * 04 11 33 43.
   */
  wake(): void {
    for (let attempt = 0; attempt < WAKE_ATTEMPTS; attempt++) {
      this.stats.wakes++;
      // The watchdog runs from the wake itself, not from the reply read after it.
      const wokeAtMs = this.clock ? this.clock.nowMs() : -1;
      this.i2c.wake();
      if (this.clock) this.clock.waitMs(WAKE_DELAY_MS);
      for (let poll = 0; poll < WAKE_POLLS; poll++) {
        // Past the watchdog the chip sleeps again and every poll is lost (a slow host).
        if (this.clock && this.clock.nowMs() - wokeAtMs > WATCHDOG_MS) break;
        const raw = this.i2c.readFrom(this.address, 4);
        if (raw[0] === 4 && raw[1] === STATUS_AFTER_WAKE && raw[2] === 0x33 && raw[3] === 0x43) {
          this.wokeAtMs = wokeAtMs;
          this.busyMsSinceWake = 0;
          return;
        }
        // The library's constant for a chip stuck in self-test failure (its CRC is not atCRC's).
        if (raw[0] === 4 && raw[1] === STATUS_SELF_TEST_ERROR && raw[2] === 0xc4 && raw[3] === 0x40) {
          throw statusError(
            'wake',
            STATUS_SELF_TEST_ERROR,
            'the chip answered the wake with a self-test failure; power-cycle it',
          );
        }
        if (checkResponse(raw) !== RESPONSE_EMPTY) break; // awake already, showing an old response
      }
      // Perhaps it was awake and ignored the wake: idle it so the next wake is seen.
      this.idle();
    }
    throw new SecureElementError(
      'wake',
      -1,
      'no wake reply (04 11 33 43) from the ATECC608 at I2C address 0x' +
        hexByte(this.address) +
        ' after ' +
        WAKE_ATTEMPTS +
        ' attempts: check its wiring, power and address',
    );
  }

  /** Idle: low power, TempKey and the message digest buffer kept (an awake chip only; never throws). */
  idle(): void {
    // An idle sent after the watchdog may have run out was not heard: the chip slept, and TempKey went with it.
    // (The bus cannot tell: nothing ACKs on software I2C.) Without a clock a lost TempKey shows as ECDH's error.
    if (this.clock && this.wokeAtMs >= 0 && this.clock.nowMs() - this.wokeAtMs > AWAKE_BUDGET_MS)
      this.tempKeyHeld = false;
    this.wokeAtMs = -1;
    this.i2c.writeTo(this.address, [WORD_IDLE]);
  }

  /** Sleep: lowest power; TempKey and the message digest buffer are cleared. An idle chip hears nothing, so it is woken first. */
  sleep(): void {
    this.awakeFor(0);
    this.wokeAtMs = -1;
    this.tempKeyHeld = false;
    this.i2c.writeTo(this.address, [WORD_SLEEP]);
  }

  /**
   * Wakes the chip unless it is awake with `ms` of its watchdog left. Commands that must follow each
   * other within one wake (TempKey or the message digest buffer is lost when the chip sleeps) ask for
   * the time of all of them first.
   */
  private awakeFor(ms: number): void {
    if (this.wokeAtMs >= 0 && this.clock) {
      const spent = Math.max(this.clock.nowMs() - this.wokeAtMs, this.busyMsSinceWake);
      if (spent + ms <= AWAKE_BUDGET_MS) return;
      // Most likely still awake, and an awake chip ignores a wake: idle it first.
      this.idle();
    }
    this.wake();
  }

  /**
   * Polls for a response of up to `length` bytes: the response and checkResponse's verdict on it (OK or
   * BAD_CRC), or undefined if none arrived within maxMs. The CRC is computed once per response: in the
   * interpreter it is work that counts against the chip's watchdog.
   */
  private poll(length: number, maxMs: number): { raw: Uint8Array; check: number } | undefined {
    const polls = Math.ceil(maxMs / POLL_MIN_MS);
    // A poll can take far longer than on the wire (the host is slow): with a clock, the polls also stop
    // once maxMs has passed, after one more read.
    const clock = this.clock;
    const deadlineMs = clock ? clock.nowMs() + maxMs : -1;
    for (let i = 0; i < polls; i++) {
      const late = clock !== undefined && clock.nowMs() > deadlineMs;
      const raw = this.readResponse(length);
      const check = checkResponse(raw);
      if (check !== RESPONSE_EMPTY) return { raw: raw, check: check };
      this.stats.busyPolls++;
      if (late) break;
    }
    return undefined;
  }

  /**
   * Reads a response of up to `length` bytes as CryptoAuthLib does: its count byte, then the rest, so a
   * poll of a busy chip clocks one byte, not a whole response. A count byte of 0xFF is nobody answering
   * (the chip busy or asleep; software I2C reads SDA's pull-up). A count no response can have is noise:
   * the output buffer is read from its start next time. Both give a response checkResponse calls empty.
   */
  private readResponse(length: number): Uint8Array {
    const count = this.i2c.readFrom(this.address, 1)[0];
    if (count < 4 || count > length) {
      if (count !== 0xff) this.i2c.writeTo(this.address, [WORD_RESET]);
      return new Uint8Array(0);
    }
    const raw = new Uint8Array(count);
    raw[0] = count;
    raw.set(this.i2c.readFrom(this.address, count - 1), 1);
    return raw;
  }

  /** Reads a response again from the start of the output buffer (after a bad CRC). */
  private reread(length: number): Uint8Array {
    this.stats.rereads++;
    this.i2c.writeTo(this.address, [WORD_RESET]);
    return this.readResponse(length);
  }

  /**
   * Runs one command and returns its checked response (count … CRC). Statuses other than success
   * throw, except those listed in `allowed` (Verify's miscompare), which the caller interprets.
   */
  private execute(
    name: string,
    opcode: number,
    param1: number,
    param2: number,
    data: Uint8Array | undefined,
    responseLength: number,
    maxMs: number,
    allowed?: number,
  ): Uint8Array {
    const packet = buildCommand(opcode, param1, param2, data);
    this.stats.commands++;
    let problem = '';
    let lastStatus = -1;
    for (let attempt = 0; attempt < COMMAND_ATTEMPTS; attempt++) {
      if (attempt > 0) this.stats.resends++;
      this.awakeFor(maxMs);
      // A chip that slept after all (its watchdog ran out early) does not take this: no response comes.
      this.i2c.writeTo(this.address, packet);
      this.busyMsSinceWake += maxMs;
      if (this.clock) this.clock.waitMs(expectedMs(opcode));
      const response = this.poll(responseLength, maxMs);
      if (!response) {
        problem = 'no response within ' + maxMs + ' ms';
        this.idle();
        continue;
      }
      let raw = response.raw;
      let check = response.check;
      for (let read = 1; read < RESPONSE_READS && check === RESPONSE_BAD_CRC; read++) {
        raw = this.reread(responseLength);
        check = checkResponse(raw);
      }
      if (check !== RESPONSE_OK) {
        this.idle();
        throw new SecureElementError(
          name,
          -1,
          'the response CRC did not match ' +
            RESPONSE_READS +
            ' times (I2C noise or a wiring fault); the command may have run, so it is not repeated',
        );
      }
      const status = responseStatus(raw);
      if (status === STATUS_COMM_ERROR || status === STATUS_AFTER_WAKE || status === STATUS_WATCHDOG_EXPIRING) {
        // The chip did not execute the command (it saw a bad CRC, or had just woken): send it again.
        lastStatus = status;
        problem = 'the chip did not execute the command';
        this.idle();
        continue;
      }
      if (status !== STATUS_SUCCESS && status !== allowed) {
        this.idle();
        throw statusError(name, status, 'the chip refused the command');
      }
      // Without a clock nobody knows when the next command comes: idle the chip now.
      if (!this.clock) this.idle();
      return raw;
    }
    if (lastStatus >= 0) throw statusError(name, lastStatus, problem + ' after ' + COMMAND_ATTEMPTS + ' attempts');
    throw new SecureElementError(name, -1, problem + ' after ' + COMMAND_ATTEMPTS + ' attempts');
  }

  // ---- commands --------------------------------------------------------------------------------

  /** Info (revision): 4 bytes, e.g. 00 00 60 03 for an ATECC608B. */
  info(): Uint8Array {
    return responsePayload(this.execute('info', OP_INFO, 0x00, 0, undefined, RESPONSE_4_BYTES, MAX_MS_INFO));
  }

  /** 32 random bytes from the chip's DRBG (seed updated). */
  random(): Uint8Array {
    return responsePayload(this.execute('random', OP_RANDOM, 0x00, 0, undefined, RESPONSE_32_BYTES, MAX_MS_RANDOM));
  }

  /**
   * Reads a 4-byte word or a 32-byte block: zone 0 config / 1 OTP / 2 data; `slot` only for the data
   * zone; `block` is the 32-byte block, `word` the 4-byte word in it (0 for a block read).
   */
  read(zone: number, slot: number, block: number, word: number, length: number): Uint8Array {
    if (length !== 4 && length !== 32)
      throw new SecureElementError('read', -1, 'length must be 4 or 32, got ' + length);
    const param1 = length === 32 ? zone | ZONE_32_BYTES : zone;
    return responsePayload(
      this.execute(
        'read',
        OP_READ,
        param1,
        zoneAddress(zone, slot, block, word),
        undefined,
        length === 32 ? RESPONSE_32_BYTES : RESPONSE_4_BYTES,
        MAX_MS_READ,
      ),
    );
  }

  /** Writes a 4-byte word or a 32-byte block (addressing as read). Refused by the chip where the lock state or SlotConfig forbids it. */
  write(zone: number, slot: number, block: number, word: number, data: Uint8Array): void {
    if (!data || (data.length !== 4 && data.length !== 32)) {
      throw new SecureElementError('write', -1, 'data must be 4 or 32 bytes, got ' + (data ? data.length : 'none'));
    }
    const param1 = data.length === 32 ? zone | ZONE_32_BYTES : zone;
    this.execute('write', OP_WRITE, param1, zoneAddress(zone, slot, block, word), data, RESPONSE_STATUS, MAX_MS_WRITE);
  }

  /** The whole 128-byte config zone. */
  readConfigZone(): Uint8Array {
    const out = new Uint8Array(CONFIG_ZONE_BYTES);
    for (let block = 0; block < 4; block++) out.set(this.read(ZONE_CONFIG, 0, block, 0, 32), block * 32);
    return out;
  }

  /**
   * Writes config bytes 16..127 (the chip's writable part) from a 128-byte image, as CryptoAuthLib
   * does: 32-byte blocks where possible; words for block 0 (bytes 0-15 are read-only) and block 2,
   * whose word 5 (UserExtra, UserExtraAdd and the two lock bytes, bytes 84-87) only UpdateExtra and
   * Lock may change.
   */
  writeConfigZone(config: Uint8Array): void {
    checkLength('write config zone', 'config image', config, CONFIG_ZONE_BYTES);
    for (let word = 4; word < 8; word++) this.write(ZONE_CONFIG, 0, 0, word, config.subarray(word * 4, word * 4 + 4));
    this.write(ZONE_CONFIG, 0, 1, 0, config.subarray(32, 64));
    for (let word = 0; word < 8; word++) {
      if (word !== 5) this.write(ZONE_CONFIG, 0, 2, word, config.subarray(64 + word * 4, 68 + word * 4));
    }
    this.write(ZONE_CONFIG, 0, 3, 0, config.subarray(96, 128));
  }

  /** Lock bytes (config bytes 86, 87): which zones are locked. */
  lockState(): { config: boolean; data: boolean } {
    const word = this.read(ZONE_CONFIG, 0, 2, 5, 4); // bytes 84..87
    return {
      config: word[OFFSET_LOCK_CONFIG - 84] !== LOCK_BYTE_UNLOCKED,
      data: word[OFFSET_LOCK_VALUE - 84] !== LOCK_BYTE_UNLOCKED,
    };
  }

  /**
   * Locks the config zone, for good. The chip locks only if its config zone CRC equals the CRC of
   * `expected` (the full 128 bytes as they should be, lock bytes still 0x55), so a config that
   * differs from what the caller checked is never locked.
   */
  lockConfig(expected: Uint8Array): void {
    checkLength('lock config', 'expected config zone', expected, CONFIG_ZONE_BYTES);
    this.execute(
      'lock config',
      OP_LOCK,
      LOCK_CONFIG,
      atCrc16(expected, 0, CONFIG_ZONE_BYTES),
      undefined,
      RESPONSE_STATUS,
      MAX_MS_LOCK,
    );
  }

  /** Locks the data and OTP zones, for good (no CRC summary: private key slots cannot be summed by the host). */
  lockData(): void {
    this.execute('lock data', OP_LOCK, LOCK_DATA_NO_CRC, 0, undefined, RESPONSE_STATUS, MAX_MS_LOCK);
  }

  /** Creates a new P-256 private key in `slot`; returns its public key (64 bytes x || y). */
  genKey(slot: number): Uint8Array {
    checkSlot('genkey', slot);
    return responsePayload(
      this.execute('genkey', OP_GENKEY, GENKEY_PRIVATE, slot, undefined, RESPONSE_64_BYTES, MAX_MS_GENKEY),
    );
  }

  /**
   * Creates an ephemeral private key in TempKey (lost on sleep); returns its public key. ecdh('tempkey') throws
   * if the chip slept in between (a slow host: make a new key and try again).
   */
  genTempKey(): Uint8Array {
    if (this.clock) this.awakeFor(MAX_MS_GENKEY + MAX_MS_ECDH);
    this.tempKeyHeld = false;
    const publicKey = responsePayload(
      this.execute(
        'genkey tempkey',
        OP_GENKEY,
        GENKEY_PRIVATE,
        KEY_ID_TEMPKEY,
        undefined,
        RESPONSE_64_BYTES,
        MAX_MS_GENKEY,
      ),
    );
    this.tempKeyHeld = true;
    return publicKey;
  }

  /** The public key of the private key in `slot` (recomputed by the chip). */
  publicKey(slot: number): Uint8Array {
    checkSlot('public key', slot);
    return responsePayload(
      this.execute('public key', OP_GENKEY, GENKEY_PUBLIC, slot, undefined, RESPONSE_64_BYTES, MAX_MS_GENKEY),
    );
  }

  /** Nonce pass-through: loads 32 bytes into TempKey or the message digest buffer. */
  nonce(target: number, data: Uint8Array): void {
    checkLength('nonce', 'nonce input', data, 32);
    this.execute('nonce', OP_NONCE, NONCE_PASS_THROUGH | target, 0, data, RESPONSE_STATUS, MAX_MS_NONCE);
  }

  /**
   * Signs a 32-byte digest with the key in `slot`: 64 bytes r || s. As CryptoAuthLib does, a Random
   * first makes sure the chip's DRBG seed is updated; the digest goes into the message digest buffer
   * so that TempKey (an ephemeral ECDH key) survives.
   */
  sign(slot: number, digest: Uint8Array): Uint8Array {
    checkSlot('sign', slot);
    checkLength('sign', 'digest', digest, 32);
    if (this.clock) this.awakeFor(MAX_MS_RANDOM + MAX_MS_NONCE + MAX_MS_SIGN);
    this.random();
    this.nonce(NONCE_TARGET_MESSAGE_DIGEST, digest);
    return responsePayload(
      this.execute(
        'sign',
        OP_SIGN,
        SIGN_EXTERNAL | SOURCE_MESSAGE_DIGEST,
        slot,
        undefined,
        RESPONSE_64_BYTES,
        MAX_MS_SIGN,
      ),
    );
  }

  /**
   * The chip's attestation of the key in keySlot (protocol/key-attestation.ts): Nonce pass-through puts
   * `nonce` in TempKey, GenKey in digest mode hashes the slot's public key into it, and Sign in internal
   * mode signs that with the key in signerSlot. All within one wake, as TempKey is lost when the chip
   * sleeps. Returns the public key (x || y) the chip hashed and the signature r || s.
   */
  attestKey(signerSlot: number, keySlot: number, nonce: Uint8Array): { publicKey: Uint8Array; signature: Uint8Array } {
    checkSlot('attest', signerSlot);
    checkSlot('attest', keySlot);
    checkLength('attest', 'nonce', nonce, 32);
    if (this.clock) this.awakeFor(MAX_MS_RANDOM + MAX_MS_NONCE + MAX_MS_GENKEY + MAX_MS_SIGN);
    // As before an external Sign: a Random first makes sure the chip's DRBG seed is updated.
    this.random();
    this.nonce(NONCE_TARGET_TEMPKEY, nonce);
    const publicKey = responsePayload(
      this.execute('genkey digest', OP_GENKEY, GENKEY_DIGEST, keySlot, undefined, RESPONSE_64_BYTES, MAX_MS_GENKEY),
    );
    const signature = responsePayload(
      this.execute('sign internal', OP_SIGN, SIGN_INTERNAL, signerSlot, undefined, RESPONSE_64_BYTES, MAX_MS_SIGN),
    );
    return { publicKey: publicKey, signature: signature };
  }

  /** Checks a P-256 signature (r || s) over a 32-byte digest against a public key (x || y). */
  verifyExternal(digest: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
    checkLength('verify', 'digest', digest, 32);
    checkLength('verify', 'signature', signature, 64);
    checkLength('verify', 'public key', publicKey, 64);
    if (this.clock) this.awakeFor(MAX_MS_NONCE + MAX_MS_VERIFY);
    this.nonce(NONCE_TARGET_MESSAGE_DIGEST, digest);
    const raw = this.execute(
      'verify',
      OP_VERIFY,
      VERIFY_EXTERNAL | SOURCE_MESSAGE_DIGEST,
      VERIFY_KEY_P256,
      concat(signature, publicKey),
      RESPONSE_STATUS,
      MAX_MS_VERIFY,
      STATUS_MISCOMPARE,
    );
    return responseStatus(raw) === STATUS_SUCCESS;
  }

  /** ECDH of the key in `slot` (or in TempKey) with a peer public key (x || y): the shared x, 32 bytes. */
  ecdh(source: number | 'tempkey', peerPublicKey: Uint8Array): Uint8Array {
    checkLength('ecdh', 'peer public key', peerPublicKey, 64);
    if (source === 'tempkey') {
      // A chip that slept since the GenKey did not hear the idle before this wake: its TempKey is gone, and the
      // command would fail with an execution error.
      if (this.clock) this.awakeFor(MAX_MS_ECDH);
      if (!this.tempKeyHeld)
        throw new SecureElementError(
          'ecdh tempkey',
          -1,
          'TempKey was lost: the chip slept after the GenKey (its watchdog ends ' +
            WATCHDOG_MS +
            ' ms after a wake); make a new ephemeral key and try again',
        );
      return responsePayload(
        this.execute('ecdh tempkey', OP_ECDH, ECDH_TEMPKEY_CLEAR, 0, peerPublicKey, RESPONSE_32_BYTES, MAX_MS_ECDH),
      );
    }
    checkSlot('ecdh', source);
    return responsePayload(
      this.execute('ecdh', OP_ECDH, ECDH_SLOT_CLEAR, source, peerPublicKey, RESPONSE_32_BYTES, MAX_MS_ECDH),
    );
  }

  /** Reads (increment false) or increments and reads monotonic counter 0 or 1. */
  counter(id: number, increment: boolean): number {
    if (id !== 0 && id !== 1) throw new SecureElementError('counter', -1, 'counter must be 0 or 1, got ' + id);
    const value = responsePayload(
      this.execute(
        increment ? 'counter increment' : 'counter read',
        OP_COUNTER,
        increment ? COUNTER_INCREMENT : COUNTER_READ,
        id,
        undefined,
        RESPONSE_4_BYTES,
        MAX_MS_COUNTER,
      ),
    );
    return value[0] + value[1] * 0x100 + value[2] * 0x10000 + value[3] * 0x1000000;
  }
}
