// The bridge's broadcast formats (firmware/src/protocol/market-broadcast.ts): exact bytes of a receipt and a
// clearing result (the vectors docs/bridge.md shows and the meter's tests are held to), splitting under the
// broker's packet cap, amounts beyond 2^53, and every refusal of the decoders.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import * as cborx from 'cbor-x';
import { CborMap, encode } from '../../firmware/src/protocol/cbor.ts';
import {
  BroadcastFormatError,
  MAX_BROADCAST_PAYLOAD_BYTES,
  decodeClearing,
  decodeReceipt,
  encodeClearing,
  encodeReceipts,
  findFill,
  findReceipt,
  reasonName,
  type Fill,
} from '../../firmware/src/protocol/market-broadcast.ts';
import { CONTRACTS_DIR } from '../../host-tools/ledger/compile.ts';
import { REFUSALS } from '../../host-tools/ledger/market.ts';
import { MAX_MQTT_PACKET_BYTES } from '../../host-tools/broker/max-packet-size.ts';
import { CLEARING_TOPIC, RECEIPT_TOPIC } from '../../firmware/src/protocol/topics.ts';
import { amountFromBigint, amountToBigint } from '../../host-tools/bridge/amount.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const unhex = (text: string) => new Uint8Array(Buffer.from(text.replace(/ /g, ''), 'hex'));
const digest = (b: number) => new Uint8Array(32).fill(b);

// docs/bridge.md shows these bytes annotated.
const RECEIPT_HEX = 'a2 01 81 83 5820' + 'aa'.repeat(32) + ' 0b 00 02 81 82 5820' + 'bb'.repeat(32) + ' 11';
const CLEARING_HEX =
  'a7 01 0b 02 1896 03 190258 04 02 05 00 06 01 07 82 84 5820' +
  'aa'.repeat(32) +
  ' 190258 00 1a00015f90 84 5820' +
  'cc'.repeat(32) +
  ' 190258 1a00015f90 00';

const formats = suite('broadcast formats');

formats('a receipt: exact bytes, and back', () => {
  const receipt = {
    accepted: [{ digest: digest(0xaa), interval: 11, index: 0 }],
    refused: [{ digest: digest(0xbb), reason: 17 }],
  };
  const messages = encodeReceipts(receipt);
  assert.is(messages.length, 1);
  assert.is(hex(messages[0]), hex(unhex(RECEIPT_HEX)));
  assert.equal(decodeReceipt(messages[0]), receipt);
  assert.equal(
    cborx.decode(Buffer.from(messages[0])),
    { 1: [[Buffer.from(digest(0xaa)), 11, 0]], 2: [[Buffer.from(digest(0xbb)), 17]] },
    'an independent CBOR decoder reads the same',
  );
  assert.equal(findReceipt(decodeReceipt(messages[0]), digest(0xbb)), { digest: digest(0xbb), reason: 17 });
  assert.is(findReceipt(decodeReceipt(messages[0]), digest(0xcc)), undefined);
});

formats('a receipt with one list only leaves the other key out; none for nothing', () => {
  const only = encodeReceipts({ accepted: [], refused: [{ digest: digest(1), reason: 6 }] });
  assert.is(hex(only[0]).slice(0, 6), 'a10281');
  assert.equal(decodeReceipt(only[0]).accepted, []);
  assert.equal(encodeReceipts({ accepted: [], refused: [] }), []);
});

formats('a clearing result: exact bytes, and a meter finds its fill by digest', () => {
  const fills: Fill[] = [
    { digest: digest(0xaa), fillWh: 600, paid: 0, received: 90000 },
    { digest: digest(0xcc), fillWh: 600, paid: 90000, received: 0 },
  ];
  const messages = encodeClearing({ interval: 11, price: 150, volumeWh: 600, offers: 2 }, fills);
  assert.is(messages.length, 1);
  assert.is(hex(messages[0]), hex(unhex(CLEARING_HEX)));
  const part = decodeClearing(messages[0]);
  assert.equal(part, { interval: 11, price: 150, volumeWh: 600, offers: 2, part: 0, parts: 1, fills });
  assert.equal(findFill(part, digest(0xcc)), fills[1]);
  assert.is(findFill(part, digest(0xdd)), undefined);
});

formats('an interval with nothing to settle is one message with no fills', () => {
  const messages = encodeClearing({ interval: 5, price: 0, volumeWh: 0, offers: 0 }, []);
  assert.is(messages.length, 1);
  assert.equal(decodeClearing(messages[0]), {
    interval: 5,
    price: 0,
    volumeWh: 0,
    offers: 0,
    part: 0,
    parts: 1,
    fills: [],
  });
});

formats('long lists are split under the cap, and every PUBLISH fits the broker', () => {
  const fills: Fill[] = Array.from({ length: 1000 }, (_, i) => ({
    digest: digest(i & 0xff),
    fillWh: 0xffffffff,
    paid: 2 ** 53 - 1,
    received: 0,
  }));
  const messages = encodeClearing({ interval: 7, price: 300, volumeWh: 2 ** 40, offers: 1000 }, fills);
  assert.ok(messages.length > 1);
  const got: Fill[] = [];
  messages.forEach((m, i) => {
    assert.ok(m.length <= MAX_BROADCAST_PAYLOAD_BYTES, `part ${i}: ${m.length} bytes`);
    // PUBLISH QoS 1: type byte, remaining length (2 bytes), topic length and topic, packet id, payload.
    assert.ok(1 + 2 + 2 + CLEARING_TOPIC.length + 2 + m.length <= MAX_MQTT_PACKET_BYTES);
    const part = decodeClearing(m);
    assert.is(part.part, i);
    assert.is(part.parts, messages.length);
    assert.is(part.volumeWh, 2 ** 40);
    got.push(...part.fills);
  });
  assert.equal(got, fills, 'every fill once, in order');

  const accepted = Array.from({ length: 150 }, (_, i) => ({
    digest: digest(i),
    interval: 0xffffffff,
    index: 0xffffffff,
  }));
  const refused = Array.from({ length: 70 }, (_, i) => ({ digest: digest(i), reason: 18 }));
  const receipts = encodeReceipts({ accepted, refused });
  assert.ok(receipts.length > 1);
  for (const m of receipts)
    assert.ok(
      m.length <= MAX_BROADCAST_PAYLOAD_BYTES &&
        1 + 2 + 2 + RECEIPT_TOPIC.length + 2 + m.length <= MAX_MQTT_PACKET_BYTES,
    );
  const back = receipts.map(decodeReceipt);
  assert.equal(
    back.flatMap((r) => r.accepted),
    accepted,
  );
  assert.equal(
    back.flatMap((r) => r.refused),
    refused,
  );
});

formats('amounts of 2^53 and more travel as big-endian bytes', () => {
  for (const value of [0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n + 5n, 2n ** 128n - 1n]) {
    const amount = amountFromBigint(value);
    assert.is(typeof amount === 'number', value < 2n ** 53n, String(value));
    assert.is(amountToBigint(amount), value);
  }
  const big = amountFromBigint(2n ** 64n);
  const [message] = encodeClearing({ interval: 1, price: 1, volumeWh: big, offers: 1 }, [
    { digest: digest(1), fillWh: 1, paid: big, received: 0 },
  ]);
  const part = decodeClearing(message);
  assert.is(amountToBigint(part.volumeWh), 2n ** 64n);
  assert.is(amountToBigint(part.fills[0].paid), 2n ** 64n);
  assert.throws(() => amountFromBigint(2n ** 128n), /uint128/);
});

formats("reason codes: the contract's numbering, then the bridge's own", () => {
  // The contract's enum, read from its source, is what the chain's OfferRejected reasons are numbered by.
  const source = fs.readFileSync(path.join(CONTRACTS_DIR, 'Market.sol'), 'utf8');
  const contract = /enum Refusal \{([^}]*)\}/
    .exec(source)![1]
    .split(',')
    .map((name) => name.trim());
  assert.equal(REFUSALS, contract, "the host's list is the contract's");
  for (let code = 1; code < contract.length; code++) assert.is(reasonName(code), contract[code], `code ${code}`);
  assert.equal([16, 17, 18, 19, 20, 21].map(reasonName), [
    'malformed',
    'bad-signature',
    'duplicate',
    'wrong-market',
    'gate-closed',
    'revoked-key',
  ]);
  assert.is(reasonName(0), undefined);
  assert.is(reasonName(12), undefined);
  assert.is(reasonName(22), undefined);
  assert.is(reasonName(1.5), undefined);
});

const refusals = suite('what the decoders refuse');

function refused(fn: () => unknown, pattern: RegExp) {
  try {
    fn();
  } catch (err) {
    assert.instance(err, BroadcastFormatError);
    assert.is((err as BroadcastFormatError).code, 'broadcast-format');
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('nothing was thrown');
}

refusals('receipts', () => {
  refused(() => decodeReceipt(Uint8Array.of(0xff)), /not deterministic CBOR/);
  refused(() => decodeReceipt(encode([1, 2])), /CBOR map/);
  refused(() => decodeReceipt(encode(new CborMap([]))), /at least one offer/);
  refused(() => decodeReceipt(encode(new CborMap([[3, []]]))), /unknown key 3/);
  refused(() => decodeReceipt(encode(new CborMap([[1, [[digest(1), 1]]]]))), /array of 3 items/);
  refused(() => decodeReceipt(encode(new CborMap([[1, [[new Uint8Array(31), 1, 0]]]]))), /32-byte/);
  refused(() => decodeReceipt(encode(new CborMap([[1, [[digest(1), -1, 0]]]]))), /interval/);
  refused(() => decodeReceipt(encode(new CborMap([[2, [[digest(1), 12]]]]))), /unknown reason code 12/);
  refused(() => decodeReceipt(encode(new CborMap([[2, 5]]))), /must be an array/);
  refused(() => decodeReceipt(new Uint8Array(MAX_BROADCAST_PAYLOAD_BYTES + 1)), /at most/);
  refused(() => encodeReceipts({ accepted: [], refused: [{ digest: digest(1), reason: 0 }] }), /unknown reason code 0/);
  refused(
    () => encodeReceipts({ accepted: [{ digest: digest(1), interval: 1.5, index: 0 }], refused: [] }),
    /interval/,
  );
});

refusals('clearing results', () => {
  const good = (over: Array<[number, unknown]>) => {
    const fields = new Map<number, unknown>([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 1],
      [5, 0],
      [6, 1],
      [7, []],
    ]);
    for (const [k, v] of over) v === undefined ? fields.delete(k) : fields.set(k, v);
    return encode(new CborMap([...fields.entries()] as never));
  };
  assert.is(decodeClearing(good([])).interval, 1);
  refused(() => decodeClearing(good([[2, undefined]])), /price \(key 2\) is missing/);
  refused(() => decodeClearing(good([[7, undefined]])), /fills \(key 7\) is missing/);
  refused(() => decodeClearing(good([[5, 1]])), /part 1 of 1/);
  refused(() => decodeClearing(good([[6, 0]])), /part 0 of 0/);
  refused(() => decodeClearing(good([[3, new Uint8Array(7).fill(1)]])), /at least 2\^53/);
  refused(() => decodeClearing(good([[3, Uint8Array.of(0, 1, 2, 3, 4, 5, 6, 7)]])), /leading zero/);
  refused(() => decodeClearing(good([[3, 'x']])), /integer or a byte string/);
  refused(() => decodeClearing(good([[7, [[digest(1), 1, 0]]]])), /array of 4 items/);
  refused(() => decodeClearing(good([[7, [[digest(1), 1, -2, 0]]]])), /paid/);
  refused(() => decodeClearing(good([[8, 0]])), /unknown key 8/);
  refused(() => encodeClearing({ interval: 1, price: -1, volumeWh: 0, offers: 0 }, []), /price/);
  refused(
    () =>
      encodeClearing({ interval: 1, price: 1, volumeWh: 0, offers: 0 }, [
        { digest: digest(1), fillWh: 1, paid: Uint8Array.of(1), received: 0 },
      ]),
    /paid as bytes/,
  );
});

formats.run();
refusals.run();
