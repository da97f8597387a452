// The ATECC608's CRC-16 (CryptoAuthLib atCRC): polynomial 0x8005, initial value 0, no final XOR;
// each byte's bits are fed least-significant first into a most-significant-first shift register.
// The two CRC bytes travel little-endian after the bytes they cover (count through data).

export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    for (let bit = 0; bit < 8; bit++) {
      const dataBit = (byte >> bit) & 1;
      const crcBit = (crc >> 15) & 1;
      crc = (crc << 1) & 0xffff;
      if (dataBit !== crcBit) crc ^= 0x8005;
    }
  }
  return crc;
}

/** The two CRC bytes as sent on the wire (little-endian). */
export function crc16Bytes(bytes: Uint8Array): Uint8Array {
  const crc = crc16(bytes);
  return Uint8Array.of(crc & 0xff, crc >> 8);
}

/** `[count][body…][crc lo][crc hi]` with count = body length + 3. */
export function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 3);
  out[0] = out.length;
  out.set(body, 1);
  out.set(crc16Bytes(out.subarray(0, out.length - 2)), out.length - 2);
  return out;
}
