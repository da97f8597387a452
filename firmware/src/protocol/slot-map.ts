// Which ATECC608 slot holds which key (docs/secure-element.md), and which slot a rotating key uses next.
// Pure: no I/O. The permissions behind each slot are in protocol/se-config-zone.ts.

/** P-256 identity key: never readable, signs only attestations the chip builds (key-attestation.ts); certified by the operator. */
export const IDENTITY_SLOT = 0;
/** The two reading keys, used alternately: one signs while the next is certified. */
export const READING_KEY_SLOTS = [1, 2];
/** Mix relay key: ECDH with clear output, no signing. */
export const MIX_SLOT = 3;
/** Data slot (416 bytes): certificate cache, readable and writable in the clear. */
export const DATA_SLOT = 8;
/** Trading keys, one per delivery interval, taken in this order to spread EEPROM wear. */
export const TRADING_RING = [4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15];

/** Monotonic counter numbering reading-key rotations. */
export const ROTATION_COUNTER = 0;
/** Monotonic counter numbering broker logins: one step per connection attempt (keys/meter-login.ts). */
export const LOGIN_COUNTER = 1;

/** The reading-key slot for a rotation number (0, 1, 2 …): rotations alternate between the two. */
export function readingSlotForRotation(rotation: number): number {
  if (rotation < 0 || Math.floor(rotation) !== rotation)
    throw new Error('rotation must be a whole number >= 0, got ' + rotation);
  return READING_KEY_SLOTS[rotation % READING_KEY_SLOTS.length];
}

/** The trading slot after `slot` in the ring (wrapping from 15 back to 4). */
export function nextTradingSlot(slot: number): number {
  const i = TRADING_RING.indexOf(slot);
  if (i < 0) throw new Error('slot ' + slot + ' is not in the trading ring (' + TRADING_RING.join(', ') + ')');
  return TRADING_RING[(i + 1) % TRADING_RING.length];
}
