// The ATECC608's CRC-16 (CryptoAuthLib's atCRC): polynomial 0x8005, initial value 0, no final XOR,
// the bits of each byte fed least-significant first into an MSB-first shift register. It covers a
// packet from its count byte up to (not including) the CRC, which travels little-endian.
// Check values: 04 11 -> 33 43 (the wake reply), 07 1B 00 00 00 -> 24 CD (the Random command).
//
// Four bits per step from two 16-entry tables: bit by bit, Espruino's interpreter spent tens of ms per
// command on it (a 67-byte response is 536 steps), time that counts against the chip's watchdog.

/** REVERSED[n]: nibble n with its bits in reverse order (the data enters least-significant bit first). */
const REVERSED = new Uint8Array([0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15]);

/** STEP[n]: what four bits n (most significant first) shifted out of the register's top XOR into it. */
const STEP = new Uint16Array(16);
for (let n = 0; n < 16; n++) {
  let crc = n << 12;
  for (let bit = 0; bit < 4; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x8005) & 0xffff : (crc << 1) & 0xffff;
  STEP[n] = crc;
}

/** CRC-16 of bytes[start..end) as a number; the low byte goes first on the wire. */
export function atCrc16(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    crc = ((crc << 4) & 0xffff) ^ STEP[(crc >> 12) ^ REVERSED[b & 15]];
    crc = ((crc << 4) & 0xffff) ^ STEP[(crc >> 12) ^ REVERSED[b >> 4]];
  }
  return crc;
}
