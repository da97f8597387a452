// Firmware entry for test/bridge/market-broadcast-espruino.test.ts: the meter's side of the broadcast
// formats, built by the firmware pipeline and run in Espruino's real interpreter. It decodes the vectors of
// market-broadcast.test.ts (hex given in the test), encodes them again and prints what it found.
import {
  decodeClearing,
  decodeReceipt,
  encodeClearing,
  encodeReceipts,
  findFill,
  findReceipt,
} from '../../firmware/src/protocol/market-broadcast.ts';
import { bytesToHex, hexToBytes } from '../../firmware/src/protocol/hex.ts';

declare const VECTORS: { receipt: string; clearing: string; big: string };

function digest(b: number): Uint8Array {
  const d = new Uint8Array(32);
  for (let i = 0; i < 32; i++) d[i] = b;
  return d;
}

const receipt = decodeReceipt(hexToBytes(VECTORS.receipt) as Uint8Array);
const refused = findReceipt(receipt, digest(0xbb)) as { reason: number };
console.log(
  'receipt ' +
    receipt.accepted[0].interval +
    ' ' +
    receipt.accepted[0].index +
    ' ' +
    refused.reason +
    ' ' +
    bytesToHex(encodeReceipts(receipt)[0]),
);
const clearing = decodeClearing(hexToBytes(VECTORS.clearing) as Uint8Array);
const fill = findFill(clearing, digest(0xcc));
console.log(
  'clearing ' +
    clearing.price +
    ' ' +
    (fill ? fill.fillWh + ' ' + fill.paid : 'none') +
    ' ' +
    bytesToHex(encodeClearing(clearing, clearing.fills)[0]),
);
const big = decodeClearing(hexToBytes(VECTORS.big) as Uint8Array);
console.log('big ' + bytesToHex(big.volumeWh as Uint8Array) + ' ' + big.fills[0].paid);
let error = 'none';
try {
  decodeReceipt(hexToBytes('a0') as Uint8Array);
} catch (err) {
  error = (err as { code: string }).code;
}
console.log('refusal ' + error);
