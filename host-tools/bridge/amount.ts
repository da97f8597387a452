// Amounts in the broadcast (firmware/src/protocol/market-broadcast.ts) from and to the chain's bigints: a
// number below 2^53, else the big-endian bytes (the meter has no BigInt).
import type { Amount } from '../../firmware/src/protocol/market-broadcast.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

const TWO_POW_53 = 2n ** 53n;

export function amountFromBigint(value: bigint): Amount {
  if (value < 0n || value >= 2n ** 128n)
    throw new VeilgridError('AmountError', 'amount', `an amount is a uint128, got ${value}`);
  if (value < TWO_POW_53) return Number(value);
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function amountToBigint(amount: Amount): bigint {
  if (typeof amount === 'number') return BigInt(amount);
  return BigInt(`0x${Buffer.from(amount).toString('hex')}`);
}
