// CRC-32 (IEEE 802.3, the one zlib and Espruino's E.CRC32 compute) over an 8-bit string, bit by
// bit: no 1 KB table in RAM, and journal records are only a few dozen bytes.

/** CRC-32 of the chars (bytes) of `data` from `start` up to, not including, `end`. */
export function crc32(data: string, start: number, end: number): number {
  let crc = -1;
  for (let i = start; i < end; i++) {
    crc = crc ^ (data.charCodeAt(i) & 0xff);
    for (let bit = 0; bit < 8; bit++) {
      crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
    }
  }
  return (crc ^ -1) >>> 0;
}
