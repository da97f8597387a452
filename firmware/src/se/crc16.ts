// The ATECC608's CRC-16 (CryptoAuthLib's atCRC): polynomial 0x8005, initial value 0, no final XOR,
// the bits of each byte fed least-significant first into an MSB-first shift register. It covers a
// packet from its count byte up to (not including) the CRC, which travels little-endian.
// Check values: 04 11 -> 33 43 (the wake reply), 07 1B 00 00 00 -> 24 CD (the Random command).

/** CRC-16 of bytes[start..end) as a number; the low byte goes first on the wire. */
export function atCrc16(bytes: Uint8Array, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    for (let bit = 0; bit < 8; bit++) {
      const dataBit = (b >> bit) & 1;
      const crcBit = (crc >> 15) & 1;
      crc = (crc << 1) & 0xffff;
      if (dataBit !== crcBit) crc ^= 0x8005;
    }
  }
  return crc;
}
