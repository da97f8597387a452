// The bridge's hot path verifies ES256 with node:crypto (offer-check.ts, verifyEs256); @noble/curves, an
// independent implementation, must give the same answer on valid signatures, signatures by other keys, high-s
// signatures (n − s: the ATECC608 makes them and P256VERIFY accepts them, so both must accept), every single-bit
// mutation of signature and bytes, out-of-range r and s, and points off the curve. And the bridge's whole check
// (checkOfferMessage) agrees with noble on random offers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { p256 } from '@noble/curves/nist.js';
import { encodeOffer, encodeOfferMessage } from '../../firmware/src/protocol/offer.ts';
import { REASON_BRIDGE_BAD_SIGNATURE } from '../../firmware/src/protocol/market-broadcast.ts';
import { checkOfferMessage, verifyEs256 } from '../../host-tools/bridge/offer-check.ts';
import { generateTradingKey, type TradingKey } from '../../host-tools/ledger/trading-key.ts';

const N = p256.Point.CURVE().n;

function nobleVerify(message: Uint8Array, signature: Uint8Array, x: Uint8Array, y: Uint8Array): boolean {
  try {
    return p256.verify(signature, message, new Uint8Array([4, ...x, ...y]), { lowS: false });
  } catch {
    return false; // a malformed signature or a point off the curve
  }
}

function agree(
  message: Uint8Array,
  signature: Uint8Array,
  key: { x: Uint8Array; y: Uint8Array },
  expected: boolean,
  what: string,
) {
  assert.is(verifyEs256(message, signature, key.x, key.y), expected, `node:crypto, ${what}`);
  assert.is(nobleVerify(message, signature, key.x, key.y), expected, `@noble/curves, ${what}`);
}

const big = (bytes: Uint8Array) => BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
const bytes32 = (n: bigint) => new Uint8Array(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'));

function withS(signature: Uint8Array, s: bigint): Uint8Array {
  return new Uint8Array([...signature.subarray(0, 32), ...bytes32(s)]);
}

const domain = { chainId: 31337, market: '0x5fbdb2315678afecb367f032d93f642f64180aa3' };
function offerBytes(key: TradingKey, seq: number) {
  return encodeOffer(domain, {
    side: seq % 2 ? 'ask' : 'bid',
    interval: 11,
    wh: 1 + seq,
    limitPrice: 150,
    seq,
    key: key.publicKey,
  });
}

test('valid, foreign-key and high-s signatures: both accept or both refuse', () => {
  for (let i = 0; i < 50; i++) {
    const key = generateTradingKey();
    const message = offerBytes(key, i);
    const signature = key.sign(message);
    agree(message, signature, key.publicKey, true, `valid #${i}`);
    const s = big(signature.subarray(32));
    agree(message, withS(signature, N - s), key.publicKey, true, `high/low-s twin #${i}`);
    agree(message, generateTradingKey().sign(message), key.publicKey, false, `another key's signature #${i}`);
  }
});

test('every single-bit mutation of the signature or the signed bytes is refused by both', () => {
  const key = generateTradingKey();
  const message = offerBytes(key, 1);
  const signature = key.sign(message);
  for (let bit = 0; bit < 512; bit++) {
    const mutated = signature.slice();
    mutated[bit >> 3] ^= 1 << (bit & 7);
    // Flipping s to n − s is not a single bit, so every flip must fail.
    agree(message, mutated, key.publicKey, false, `signature bit ${bit}`);
  }
  for (let bit = 0; bit < message.length * 8; bit += 7) {
    const mutated = message.slice();
    mutated[bit >> 3] ^= 1 << (bit & 7);
    agree(mutated, signature, key.publicKey, false, `message bit ${bit}`);
  }
});

test('r or s out of range, wrong lengths and points off the curve are refused by both', () => {
  const key = generateTradingKey();
  const message = offerBytes(key, 2);
  const signature = key.sign(message);
  for (const [what, sig] of [
    ['s = 0', withS(signature, 0n)],
    ['s = n', withS(signature, N)],
    ['s = n + 1', withS(signature, N + 1n)],
    ['r = 0', new Uint8Array([...bytes32(0n), ...signature.subarray(32)])],
    ['r = n', new Uint8Array([...bytes32(N), ...signature.subarray(32)])],
    ['r = 2^256 - 1', new Uint8Array([...new Uint8Array(32).fill(0xff), ...signature.subarray(32)])],
    ['all zero', new Uint8Array(64)],
    ['all 0xff', new Uint8Array(64).fill(0xff)],
  ] as const) {
    agree(message, sig, key.publicKey, false, what);
  }
  assert.is(
    verifyEs256(message, signature.subarray(0, 63), key.publicKey.x, key.publicKey.y),
    false,
    '63-byte signature',
  );
  const offCurve = { x: key.publicKey.x, y: key.publicKey.y.slice() };
  offCurve.y[31] ^= 1;
  agree(message, signature, offCurve, false, 'key point off the curve');
  agree(message, signature, { x: new Uint8Array(32), y: new Uint8Array(32) }, false, 'the zero point');
});

test("the bridge's whole check agrees with noble on random offers and random corruption", () => {
  const keys = Array.from({ length: 8 }, () => generateTradingKey());
  const context = { domain, gateClosure: () => Number.MAX_SAFE_INTEGER, now: () => 0, revokedKeys: new Set<string>() };
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 0, max: 1000 }),
      fc.option(fc.integer({ min: 0, max: 176 * 8 - 1 }), { nil: undefined }),
      (k, seq, flip) => {
        const key = keys[k];
        const signed = offerBytes(key, seq);
        const message = encodeOfferMessage(signed, key.sign(signed));
        if (flip !== undefined) message[flip >> 3] ^= 1 << (flip & 7);
        const check = checkOfferMessage(message, context);
        const bytes = message.subarray(0, 113);
        const noble = nobleVerify(bytes, message.subarray(113), bytes.subarray(49, 81), bytes.subarray(81, 113));
        if (check.ok) assert.ok(noble, 'the bridge took what noble refuses');
        else if (check.reason === REASON_BRIDGE_BAD_SIGNATURE)
          assert.not.ok(noble, 'the bridge refused what noble accepts');
        if (flip === undefined) assert.ok(check.ok);
      },
    ),
    { numRuns: 300 },
  );
});

test.run();
