// Maximum execution time of each command in milliseconds, by ChipMode clock divider, from the
// ATECC608 tables CryptoAuthLib uses when it does not poll (calib_execution.c,
// device_execution_time_608_m0/m1/m2). The model is busy for exactly this long: reads before
// then are not acknowledged.

type Table = Record<number, number>;

//                    Counter ECDH  GenKey Info Lock Nonce Random Read Sign  Verify Write
const OPCODES = [0x24, 0x43, 0x40, 0x30, 0x17, 0x16, 0x1b, 0x02, 0x41, 0x45, 0x12] as const;
const M0 = [25, 75, 115, 5, 35, 20, 23, 5, 115, 105, 45];
const M1 = [25, 172, 215, 5, 35, 20, 23, 5, 220, 295, 45];
const M2 = [25, 531, 653, 5, 35, 20, 23, 5, 665, 1085, 45];

function table(times: number[]): Table {
  const t: Table = {};
  OPCODES.forEach((op, i) => {
    t[op] = times[i];
  });
  return t;
}

const TABLES: Record<number, Table> = { 0x00: table(M0), 0x28: table(M1), 0x68: table(M2) };

/** Opcodes the model does not implement answer a parse error after this long. */
const UNKNOWN_OPCODE_MS = 5;

/** Execution time (seconds) of `opcode` under the ChipMode clock divider (ChipMode & 0xF8). */
export function executionSeconds(opcode: number, clockDivider: number): number {
  const t = (TABLES[clockDivider] ?? TABLES[0x00])[opcode];
  return (t ?? UNKNOWN_OPCODE_MS) / 1000;
}
