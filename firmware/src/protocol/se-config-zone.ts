// The ATECC608 configuration zone this firmware writes at provisioning: one definition, used by the
// provisioning code (write, then lock with a CRC over exactly these bytes) and by the check that a
// chip already locked carries our configuration and not a foreign one.
//
// Layout (128 bytes, ATECC608 datasheet / CryptoAuthLib): 0-15 serial number, revision and
// interface bytes (read-only), 16 I2C address, 17 reserved, 18 CountMatch, 19 ChipMode,
// 20-51 SlotConfig[16], 52-67 Counter[0..1], 68 UseLock, 69 VolatileKeyPermission, 70-71
// SecureBoot, 72-74 KDF IV, 75-83 reserved, 84 UserExtra, 85 UserExtraAdd, 86 LockValue (data
// zone), 87 LockConfig, 88-89 SlotLocked, 90-91 ChipOptions, 92-95 X509format, 96-127 KeyConfig[16].
// 16-bit fields are little-endian.

import { DATA_SLOT, IDENTITY_SLOT, MIX_SLOT, READING_KEY_SLOTS, TRADING_RING } from './slot-map.ts';

export const CONFIG_ZONE_BYTES = 128;
export const OFFSET_I2C_ADDRESS = 16;
export const OFFSET_CHIP_MODE = 19;
export const OFFSET_SLOT_CONFIG = 20;
export const OFFSET_COUNTERS = 52;
export const OFFSET_USER_EXTRA = 84;
export const OFFSET_LOCK_VALUE = 86;
export const OFFSET_LOCK_CONFIG = 87;
export const OFFSET_SLOT_LOCKED = 88;
export const OFFSET_CHIP_OPTIONS = 90;
export const OFFSET_KEY_CONFIG = 96;

/** Lock bytes: a zone is unlocked while its byte reads 0x55. */
export const LOCK_BYTE_UNLOCKED = 0x55;
export const LOCK_BYTE_LOCKED = 0x00;

// SlotConfig of a P-256 private key slot: ReadKey (bits 0-3) says what the key may do — bit 0 sign
// external messages, bit 1 sign internal messages (attestations the chip builds, keys/
// key-attestation.ts), bit 2 ECDH (bit 3 clear: ECDH result in the clear); bit 7 IsSecret (never
// readable); WriteConfig (bits 12-15) = 0b0010: GenKey may replace the key after the data zone is
// locked (keys rotate; no PrivWrite, so no key ever comes from outside the chip).
// The identity key signs internal messages only: whoever drives the chip cannot make it sign a
// certificate for a key the chip does not hold.
const SLOT_SIGN_INTERNAL_ONLY = 0x2082;
const SLOT_SIGN_EXTERNAL_ONLY = 0x2081;
const SLOT_ECDH_CLEAR_ONLY = 0x2084;
// Data slot: readable and writable in the clear (public certificates only).
const SLOT_CLEAR_DATA = 0x0000;

// KeyConfig: bit 0 Private, bit 1 PubInfo (public key can be recomputed with GenKey mode 0),
// bits 2-4 KeyType (4 = P-256, 7 = data); no slot locking, no required random nonce, no auth key.
const KEY_P256_PRIVATE = 0x0013;
const KEY_DATA = 0x001c;

/** What a slot of the slot map (protocol/slot-map.ts) is for. */
function slotRole(slot: number): 'attest' | 'sign' | 'ecdh' | 'data' {
  if (slot === IDENTITY_SLOT) return 'attest';
  if (slot === MIX_SLOT) return 'ecdh';
  if (slot === DATA_SLOT) return 'data';
  if (READING_KEY_SLOTS.indexOf(slot) >= 0 || TRADING_RING.indexOf(slot) >= 0) return 'sign';
  throw new Error('slot ' + slot + ' is not in the slot map (0..15)');
}

/** The SlotConfig word for a slot. */
export function slotConfigFor(slot: number): number {
  const role = slotRole(slot);
  if (role === 'attest') return SLOT_SIGN_INTERNAL_ONLY;
  return role === 'sign' ? SLOT_SIGN_EXTERNAL_ONLY : role === 'ecdh' ? SLOT_ECDH_CLEAR_ONLY : SLOT_CLEAR_DATA;
}

/** The KeyConfig word for a slot. */
export function keyConfigFor(slot: number): number {
  return slotRole(slot) === 'data' ? KEY_DATA : KEY_P256_PRIVATE;
}

function putWord(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >> 8) & 0xff;
}

/**
 * The config zone to write and lock: the chip's own read-only bytes (0-15) and the bytes only
 * UpdateExtra/Lock change (84-87) taken from `chipConfig` (a 128-byte read of the chip), every
 * other byte ours.
 */
export function provisioningConfig(chipConfig: Uint8Array): Uint8Array {
  if (chipConfig.length !== CONFIG_ZONE_BYTES)
    throw new Error('config zone must be ' + CONFIG_ZONE_BYTES + ' bytes, got ' + chipConfig.length);
  const c = new Uint8Array(CONFIG_ZONE_BYTES);
  c.set(chipConfig.subarray(0, OFFSET_I2C_ADDRESS), 0);
  // 16: I2C address 0x60 in its 8-bit form; 17 reserved; 18 CountMatch off.
  c[OFFSET_I2C_ADDRESS] = 0xc0;
  // 19 ChipMode 0x00: address from byte 16, fixed input levels, 1.3 s watchdog (a chip left awake
  // by a crashed host goes back to sleep soon; every command here finishes well inside it), clock
  // divider M0 (the fastest: Sign 115 ms, ECDH 75 ms, GenKey 115 ms).
  c[OFFSET_CHIP_MODE] = 0x00;
  for (let slot = 0; slot < 16; slot++) {
    putWord(c, OFFSET_SLOT_CONFIG + 2 * slot, slotConfigFor(slot));
    putWord(c, OFFSET_KEY_CONFIG + 2 * slot, keyConfigFor(slot));
  }
  // 52-67: both monotonic counters at 0 (the chip's encoding of 0: FF FF FF FF 00 00 00 00).
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 4; j++) c[OFFSET_COUNTERS + 8 * i + j] = 0xff;
  }
  // 68-83: UseLock, VolatileKeyPermission, SecureBoot, KDF IV all off; reserved bytes 0.
  c.set(chipConfig.subarray(OFFSET_USER_EXTRA, OFFSET_SLOT_LOCKED), OFFSET_USER_EXTRA);
  // 88-89 SlotLocked: no slot individually locked.
  c[OFFSET_SLOT_LOCKED] = 0xff;
  c[OFFSET_SLOT_LOCKED + 1] = 0xff;
  // 90-91 ChipOptions 0: no power-on self test, no IO protection key, ECDH and KDF output allowed in
  // the clear (the mix key's ECDH and TempKey ECDH return the shared x to the host).
  // 92-95 X509format: unused.
  return c;
}

/** Bytes that change in normal use and so are not part of "our configuration": counters, lock bytes. */
function isPolicyByte(offset: number): boolean {
  if (offset < OFFSET_I2C_ADDRESS) return false;
  if (offset >= OFFSET_COUNTERS && offset < OFFSET_COUNTERS + 16) return false;
  return offset < OFFSET_USER_EXTRA || offset >= OFFSET_SLOT_LOCKED;
}

/** True when a chip's config zone carries the permissions this firmware provisions. */
export function hasProvisioningConfig(chipConfig: Uint8Array): boolean {
  if (chipConfig.length !== CONFIG_ZONE_BYTES) return false;
  const ours = provisioningConfig(chipConfig);
  for (let i = 0; i < CONFIG_ZONE_BYTES; i++) {
    if (isPolicyByte(i) && ours[i] !== chipConfig[i]) return false;
  }
  return true;
}
