// The ATECC608B's EEPROM: configuration zone (128 bytes), OTP zone (64 bytes) and the data zone
// (16 slots: 0–7 of 36 bytes, 8 of 416, 9–15 of 72), with the lock bytes and the per-slot
// SlotConfig/KeyConfig fields the commands consult. Layout and field meanings follow the ATECC608
// data sheet as CryptoAuthLib uses it (calib_command.h offsets, calib_get_zone_size, the counter
// encoding of calib_write_config_counter).

import { randomBytes } from 'node:crypto';

export const CONFIG_SIZE = 128;
export const OTP_SIZE = 64;
export const SLOT_COUNT = 16;

export const ZONE_CONFIG = 0;
export const ZONE_OTP = 1;
export const ZONE_DATA = 2;

/** Lock byte values (config bytes 86 LockValue = data/OTP, 87 LockConfig). */
export const UNLOCKED = 0x55;
export const LOCKED = 0x00;

/** Byte offsets in the configuration zone. */
export const CFG = {
  SN_0_3: 0,
  REV_NUM: 4,
  SN_4_8: 8,
  AES_ENABLE: 13,
  I2C_ENABLE: 14,
  I2C_ADDRESS: 16,
  COUNT_MATCH: 18,
  CHIP_MODE: 19,
  SLOT_CONFIG: 20,
  COUNTER: 52,
  USE_LOCK: 68,
  VOLATILE_KEY_PERMISSION: 69,
  SECURE_BOOT: 70,
  USER_EXTRA: 84,
  USER_EXTRA_ADD: 85,
  LOCK_VALUE: 86,
  LOCK_CONFIG: 87,
  SLOT_LOCKED: 88,
  CHIP_OPTIONS: 90,
  X509_FORMAT: 92,
  KEY_CONFIG: 96,
} as const;

/** RevNum of an ATECC608B as the Info command reports it (byte 2 0x60 = 608, byte 3 0x03 = B). */
export const REVISION_608B = Uint8Array.of(0x00, 0x00, 0x60, 0x03);

/** Highest value of a monotonic counter (COUNTER_MAX_VALUE). */
export const COUNTER_MAX = 2097151;

/** Bytes 36 of slots 0–7, 416 of slot 8, 72 of slots 9–15. */
export function slotSize(slot: number): number {
  if (slot < 8) return 36;
  if (slot === 8) return 416;
  return 72;
}

/** A private key sits in a slot as 4 pad bytes and the 32-byte scalar (the PrivWrite layout). */
export const PRIVATE_KEY_OFFSET = 4;

export type WriteAccess = 'always' | 'pub-invalid' | 'never' | 'encrypt';

/** SlotConfig (2 bytes, little-endian) of one slot. */
export interface SlotConfig {
  raw: number;
  readKey: number;
  noMac: boolean;
  limitedUse: boolean;
  encryptRead: boolean;
  isSecret: boolean;
  writeKey: number;
  writeConfig: number;
  /** For private-key slots, ReadKey bit 0: Sign may sign external messages. */
  externalSignatures: boolean;
  /** ReadKey bit 1: Sign may sign internally generated messages. */
  internalSignatures: boolean;
  /** ReadKey bit 2: ECDH may use this key. */
  ecdhPermitted: boolean;
  /** ReadKey bit 3: ECDH writes the shared secret to slot N|1 instead of returning it in the clear. */
  ecdhToNextSlot: boolean;
  /** WriteConfig bit 1: GenKey may create a key in this slot. */
  genKeyAllowed: boolean;
  /** What the Write command may do (WriteConfig: 0000 always, 0001 PubInvalid, x1xx encrypt, otherwise never). */
  writeAccess: WriteAccess;
}

export function parseSlotConfig(raw: number): SlotConfig {
  const readKey = raw & 0x0f;
  const writeConfig = (raw >> 12) & 0x0f;
  let writeAccess: WriteAccess;
  if (writeConfig === 0) writeAccess = 'always';
  else if (writeConfig === 1) writeAccess = 'pub-invalid';
  else if (writeConfig & 0x4) writeAccess = 'encrypt';
  else writeAccess = 'never';
  return {
    raw,
    readKey,
    noMac: (raw & 0x10) !== 0,
    limitedUse: (raw & 0x20) !== 0,
    encryptRead: (raw & 0x40) !== 0,
    isSecret: (raw & 0x80) !== 0,
    writeKey: (raw >> 8) & 0x0f,
    writeConfig,
    externalSignatures: (readKey & 0x1) !== 0,
    internalSignatures: (readKey & 0x2) !== 0,
    ecdhPermitted: (readKey & 0x4) !== 0,
    ecdhToNextSlot: (readKey & 0x8) !== 0,
    genKeyAllowed: (writeConfig & 0x2) !== 0,
    writeAccess,
  };
}

/** KeyConfig.KeyType of a P-256 key (6 is AES, 7 data/SHA). */
export const KEY_TYPE_P256 = 4;

/** KeyConfig (2 bytes, little-endian) of one slot. */
export interface KeyConfig {
  raw: number;
  /** The slot holds an ECC private key: never readable, never writable with Write. */
  private: boolean;
  pubInfo: boolean;
  keyType: number;
  /** The slot may be locked on its own (Lock mode 0x02). */
  lockable: boolean;
  reqRandom: boolean;
  reqAuth: boolean;
  authKey: number;
}

export function parseKeyConfig(raw: number): KeyConfig {
  return {
    raw,
    private: (raw & 0x01) !== 0,
    pubInfo: (raw & 0x02) !== 0,
    keyType: (raw >> 2) & 0x07,
    lockable: (raw & 0x20) !== 0,
    reqRandom: (raw & 0x40) !== 0,
    reqAuth: (raw & 0x80) !== 0,
    authKey: (raw >> 8) & 0x0f,
  };
}

/** A monotonic counter's 8 config bytes (calib_write_config_counter's encoding). */
export function encodeCounter(value: number): Uint8Array {
  const linA = 0xffff >>> (value % 32);
  const linB = value >= 16 ? 0xffff >>> ((value - 16) % 32) : 0xffff;
  const binA = Math.floor(value / 32);
  const binB = value >= 16 ? Math.floor((value - 16) / 32) : 0;
  return Uint8Array.of(linA >> 8, linA & 0xff, linB >> 8, linB & 0xff, binA >> 8, binA & 0xff, binB >> 8, binB & 0xff);
}

export function decodeCounter(bytes: Uint8Array): number {
  const linA = (bytes[0] << 8) | bytes[1];
  const linB = (bytes[2] << 8) | bytes[3];
  const binA = (bytes[4] << 8) | bytes[5];
  const step = linA !== 0 ? 16 - popcount(linA) : 32 - popcount(linB);
  return binA * 32 + step;
}

function popcount(v: number): number {
  let n = 0;
  for (let x = v; x; x >>>= 1) n += x & 1;
  return n;
}

/**
 * A new chip's serial number: SN[0..1] = 01 23 and SN[8] = EE as on every ATECC, the six bytes in
 * between unique per chip.
 */
export function newSerialNumber(): Uint8Array {
  const sn = new Uint8Array(9);
  sn.set([0x01, 0x23]);
  sn.set(randomBytes(6), 2);
  sn[8] = 0xee;
  return sn;
}

/**
 * The configuration zone of a chip as it leaves the factory, unconfigured: serial number, RevNum
 * of a 608B, I2C enabled at 0xC0 (0x60 in 7-bit form), ChipMode 0 (short ~1.3 s watchdog, M0
 * clock), every slot a plain data slot (SlotConfig 0x0000: readable, Write always allowed;
 * KeyConfig 0x003C: data, lockable), counters at 0, no slot locked, config and data unlocked.
 * The firmware writes its own SlotConfig/KeyConfig at provisioning and locks.
 */
export function factoryConfig(serial: Uint8Array): Uint8Array {
  if (serial.length !== 9) throw new Error(`ATECC608 serial number must be 9 bytes, got ${serial.length}`);
  const c = new Uint8Array(CONFIG_SIZE);
  c.set(serial.subarray(0, 4), CFG.SN_0_3);
  c.set(REVISION_608B, CFG.REV_NUM);
  c.set(serial.subarray(4, 9), CFG.SN_4_8);
  c[CFG.AES_ENABLE] = 0x01;
  c[CFG.I2C_ENABLE] = 0x01;
  c[CFG.I2C_ADDRESS] = 0xc0;
  c[CFG.CHIP_MODE] = 0x00;
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    c[CFG.KEY_CONFIG + 2 * slot] = 0x3c;
    c[CFG.KEY_CONFIG + 2 * slot + 1] = 0x00;
  }
  c.set(encodeCounter(0), CFG.COUNTER);
  c.set(encodeCounter(0), CFG.COUNTER + 8);
  c[CFG.LOCK_VALUE] = UNLOCKED;
  c[CFG.LOCK_CONFIG] = UNLOCKED;
  c[CFG.SLOT_LOCKED] = 0xff;
  c[CFG.SLOT_LOCKED + 1] = 0xff;
  return c;
}

export interface EepromJSON {
  format: 'atecc608-eeprom-v1';
  config: string;
  otp: string;
  slots: string[];
}

/** The chip's non-volatile memory. */
export class Eeprom {
  readonly config: Uint8Array;
  readonly otp: Uint8Array;
  readonly slots: Uint8Array[];

  constructor(config: Uint8Array, otp: Uint8Array = new Uint8Array(OTP_SIZE), slots?: Uint8Array[]) {
    if (config.length !== CONFIG_SIZE)
      throw new Error(`config zone must be ${CONFIG_SIZE} bytes, got ${config.length}`);
    if (otp.length !== OTP_SIZE) throw new Error(`OTP zone must be ${OTP_SIZE} bytes, got ${otp.length}`);
    this.config = config;
    this.otp = otp;
    this.slots = slots ?? Array.from({ length: SLOT_COUNT }, (_, i) => new Uint8Array(slotSize(i)));
    this.slots.forEach((s, i) => {
      if (s.length !== slotSize(i)) throw new Error(`slot ${i} must be ${slotSize(i)} bytes, got ${s.length}`);
    });
  }

  static factory(serial: Uint8Array = newSerialNumber()): Eeprom {
    return new Eeprom(factoryConfig(serial));
  }

  get configLocked(): boolean {
    return this.config[CFG.LOCK_CONFIG] !== UNLOCKED;
  }

  get dataLocked(): boolean {
    return this.config[CFG.LOCK_VALUE] !== UNLOCKED;
  }

  serialNumber(): Uint8Array {
    const sn = new Uint8Array(9);
    sn.set(this.config.subarray(0, 4));
    sn.set(this.config.subarray(8, 13), 4);
    return sn;
  }

  slotConfig(slot: number): SlotConfig {
    return parseSlotConfig(this.u16(CFG.SLOT_CONFIG + 2 * slot));
  }

  keyConfig(slot: number): KeyConfig {
    return parseKeyConfig(this.u16(CFG.KEY_CONFIG + 2 * slot));
  }

  /** SlotLocked bit clear = the slot is locked. */
  slotLocked(slot: number): boolean {
    return (this.u16(CFG.SLOT_LOCKED) & (1 << slot)) === 0;
  }

  lockSlot(slot: number): void {
    const v = this.u16(CFG.SLOT_LOCKED) & ~(1 << slot);
    this.config[CFG.SLOT_LOCKED] = v & 0xff;
    this.config[CFG.SLOT_LOCKED + 1] = (v >> 8) & 0xff;
  }

  /** ChipMode bits 3–7: clock divider (ChipMode & 0xF8 = 0x00 M0, 0x28 M1, 0x68 M2). */
  get clockDivider(): number {
    return this.config[CFG.CHIP_MODE] & 0xf8;
  }

  /** ChipMode bit 2: long (~13 s) watchdog instead of ~1.3 s. */
  get longWatchdog(): boolean {
    return (this.config[CFG.CHIP_MODE] & 0x04) !== 0;
  }

  /** ChipOptions bits 8–9 (ECDHProt): 0 clear output allowed, 1 output must be encrypted, 2 output only to a slot/TempKey. */
  get ecdhProtection(): number {
    return (this.u16(CFG.CHIP_OPTIONS) >> 8) & 0x3;
  }

  counter(id: number): number {
    return decodeCounter(this.config.subarray(CFG.COUNTER + 8 * id, CFG.COUNTER + 8 * id + 8));
  }

  setCounter(id: number, value: number): void {
    this.config.set(encodeCounter(value), CFG.COUNTER + 8 * id);
  }

  toJSON(): EepromJSON {
    return { format: 'atecc608-eeprom-v1', config: hex(this.config), otp: hex(this.otp), slots: this.slots.map(hex) };
  }

  static fromJSON(json: unknown): Eeprom {
    const j = json as Partial<EepromJSON> | null;
    if (
      !j ||
      j.format !== 'atecc608-eeprom-v1' ||
      typeof j.config !== 'string' ||
      typeof j.otp !== 'string' ||
      !Array.isArray(j.slots) ||
      j.slots.length !== SLOT_COUNT
    ) {
      throw new Error(
        'not an ATECC608 EEPROM image (expected {format: "atecc608-eeprom-v1", config, otp, slots[16]}): delete the file to start with a factory-new chip',
      );
    }
    return new Eeprom(
      unhex(j.config),
      unhex(j.otp),
      j.slots.map((s) => unhex(String(s))),
    );
  }

  private u16(offset: number): number {
    return this.config[offset] | (this.config[offset + 1] << 8);
  }
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function unhex(s: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/i.test(s)) throw new Error(`ATECC608 EEPROM image holds a non-hex field: ${s.slice(0, 20)}…`);
  return new Uint8Array(Buffer.from(s, 'hex'));
}
