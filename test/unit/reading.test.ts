// Interval readings on the wire: the key table, exact bytes, validation of every field, and topics.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as cborx from 'cbor-x';
import { CborMap, encode } from '../../firmware/src/protocol/cbor.ts';
import {
  FLAG_AFTER_OUTAGE,
  FLAG_PARTIAL,
  FLAG_POWER_LOSS,
  ReadingFormatError,
  decodeReading,
  encodeReading,
  readingProblems,
  type Reading,
} from '../../firmware/src/protocol/reading.ts';
import {
  METER_ID_MAX_LENGTH,
  READING_TOPIC_FILTER,
  meterIdFromReadingTopic,
  meterIdProblem,
  readingTopic,
  statusTopic,
} from '../../firmware/src/protocol/topics.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const unhex = (text: string) => new Uint8Array(Buffer.from(text.replace(/ /g, ''), 'hex'));

const example: Reading = {
  meterId: 'meter-0001',
  interval: 29833334,
  importWh: 125,
  exportWh: 0,
  importTotalWh: 48213,
  exportTotalWh: 1032,
  seq: 17,
  flags: FLAG_PARTIAL | FLAG_AFTER_OUTAGE,
};
// The same bytes are shown, annotated, in docs/protocol-readings.md.
const EXAMPLE_HEX = 'a8 01 6a6d657465722d30303031 02 1a01c73876 03 187d 04 00 05 19bc55 06 190408 07 11 08 06';

function rejected(bytes: Uint8Array, ...parts: string[]): ReadingFormatError {
  try {
    decodeReading(bytes);
  } catch (err) {
    assert.instance(err, ReadingFormatError, String(err));
    for (const part of parts)
      assert.ok((err as Error).message.includes(part), `expected "${part}" in "${(err as Error).message}"`);
    return err as ReadingFormatError;
  }
  return assert.unreachable(`${hex(bytes)} should be refused`) as never;
}

/** The example's entries as a CborMap with some keys changed, for building bad readings. */
function withEntries(changes: Array<[number, unknown]>, drop: number[] = []): Uint8Array {
  const values: Array<[number, unknown]> = Object.values(example).map((v, i) => [i + 1, v]);
  const entries = values
    .filter(([k]) => !drop.includes(k))
    .map(([k, v]) => [k, changes.find(([c]) => c === k)?.[1] ?? v]);
  for (const [k, v] of changes) if (!entries.some(([e]) => e === k)) entries.push([k, v]);
  return encode(new CborMap(entries as Array<[number, never]>));
}

const wire = suite('reading: wire format');

wire('the example reading has exactly the documented bytes', () => {
  const bytes = encodeReading(example);
  assert.is(hex(bytes), EXAMPLE_HEX.replace(/ /g, ''));
  assert.is(bytes.length, 36);
  assert.equal(decodeReading(bytes), example);
});

wire('an independent decoder (cbor-x) sees the integer keys 1..8 in order', () => {
  const map = new cborx.Decoder({ mapsAsObjects: false } as cborx.Options).decode(
    Buffer.from(encodeReading(example)),
  ) as Map<number, unknown>;
  assert.equal([...map.keys()], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal([...map.values()], Object.values(example));
});

wire('round-trips at the limits: longest meter id, largest integers, every flag', () => {
  const big = 2 ** 53 - 1;
  const extreme: Reading = {
    meterId: 'M'.repeat(METER_ID_MAX_LENGTH),
    interval: big,
    importWh: big,
    exportWh: 0,
    importTotalWh: big,
    exportTotalWh: big,
    seq: big,
    flags: FLAG_POWER_LOSS | FLAG_PARTIAL | FLAG_AFTER_OUTAGE,
  };
  const bytes = encodeReading(extreme);
  assert.ok(bytes.length <= 130, `largest reading is ${bytes.length} bytes`);
  assert.equal(decodeReading(bytes), extreme);
  const zero: Reading = {
    meterId: 'a',
    interval: 0,
    importWh: 0,
    exportWh: 0,
    importTotalWh: 0,
    exportTotalWh: 0,
    seq: 0,
    flags: 0,
  };
  assert.equal(decodeReading(encodeReading(zero)), zero);
});

wire('flag constants are distinct bits', () => {
  assert.equal([FLAG_POWER_LOSS, FLAG_PARTIAL, FLAG_AFTER_OUTAGE], [1, 2, 4]);
});

const validation = suite('reading: validation');

validation('encodeReading refuses every bad field, naming it', () => {
  const cases: Array<[Partial<Record<keyof Reading, unknown>>, string]> = [
    [{ meterId: '' }, 'meterId must be 1 to 64 characters long (got 0)'],
    [{ meterId: 'x'.repeat(65) }, 'meterId must be 1 to 64 characters long (got 65)'],
    [{ meterId: 'a/b' }, 'meterId may contain only A-Z a-z 0-9 . _ - (character 1 of "a/b"'],
    [{ meterId: 'caf\u00e9' }, 'character 3'],
    [{ meterId: 'a+' }, 'character 1'],
    [{ meterId: 7 }, 'meterId must be a string (got number)'],
    [{ interval: -1 }, 'interval must be an integer from 0 to 2^53-1 (got -1)'],
    [{ importWh: 1.5 }, 'importWh must be an integer from 0 to 2^53-1 (got 1.5)'],
    [{ exportWh: '3' }, 'exportWh must be an integer from 0 to 2^53-1 (got "3")'],
    [{ importTotalWh: 2 ** 53 }, 'importTotalWh must be an integer from 0 to 2^53-1'],
    [{ exportTotalWh: NaN }, 'exportTotalWh must be an integer from 0 to 2^53-1 (got NaN)'],
    [{ seq: Infinity }, 'seq must be an integer'],
    [{ seq: null }, 'seq must be an integer from 0 to 2^53-1 (got null)'],
    [{ flags: 8 }, 'flags 8 has unknown bits'],
    [{ flags: 2 ** 40 }, 'flags 1099511627776 has unknown bits'],
    [{ flags: -1 }, 'flags must be an integer'],
    [{ importWh: 200, importTotalWh: 100 }, 'importWh 200 exceeds the register importTotalWh 100'],
    [{ exportWh: 5, exportTotalWh: 4 }, 'exportWh 5 exceeds the register exportTotalWh 4'],
    [{ seq: undefined }, 'seq (key 7) is missing'],
  ];
  for (const [change, message] of cases) {
    const bad = { ...example, ...change } as Reading;
    assert.throws(
      () => encodeReading(bad),
      (err: Error) => err instanceof ReadingFormatError && err.message.includes(message),
      `${JSON.stringify(change)} -> ${message}`,
    );
  }
});

validation('every problem is reported at once', () => {
  const problems = readingProblems({ ...example, meterId: '', seq: -2, flags: 16 });
  assert.equal(problems, [
    'meterId must be 1 to 64 characters long (got 0)',
    'seq must be an integer from 0 to 2^53-1 (got -2)',
  ]);
  assert.equal(readingProblems(example), []);
  assert.equal(readingProblems('text'), ['a reading must be an object (got "text")']);
});

validation("decodeReading refuses malformed CBOR with the codec's message and offset", () => {
  const bytes = encodeReading(example);
  rejected(bytes.subarray(0, bytes.length - 1), 'not deterministic CBOR: truncated input', 'in the item at offset 35');
  rejected(new Uint8Array([...bytes, 0]), 'not deterministic CBOR: 1 trailing byte(s)', 'offset 36');
  rejected(unhex('ff'), 'unexpected break code');
  rejected(new Uint8Array(0), 'truncated input');
});

validation('decodeReading refuses a non-deterministic encoding of a valid reading', () => {
  // Keys 2 and 1 swapped: a valid CBOR map, but not the deterministic form the meter writes.
  const swapped = unhex('a8 02 1a01c73876 01 6a6d657465722d30303031 03 187d 04 00 05 19bc55 06 190408 07 11 08 06');
  rejected(swapped, 'map key 1 is out of order');
  const longSeq = unhex(EXAMPLE_HEX.replace('07 11', '07 1811'));
  rejected(longSeq, 'non-shortest encoding');
});

validation('decodeReading refuses the wrong shape, unknown or missing keys and bad values', () => {
  rejected(encode([1, 2, 3]), 'expected a CBOR map with integer keys 1..8 (got an array)');
  rejected(encode({ meterId: 'meter-0001' }), 'expected a CBOR map with integer keys 1..8 (got a map)');
  rejected(encode(42), 'got 42');
  rejected(withEntries([[9, 0]]), 'unknown key 9 (a reading has keys 1..8)');
  rejected(withEntries([[0, 0]]), 'unknown key 0');
  rejected(withEntries([], [7]), 'seq (key 7) is missing');
  rejected(withEntries([], [1, 8]), 'meterId (key 1) is missing', 'flags (key 8) is missing');
  rejected(withEntries([[7, 'seventeen']]), 'seq must be an integer from 0 to 2^53-1 (got "seventeen")');
  rejected(withEntries([[3, 1.25]]), 'importWh must be an integer from 0 to 2^53-1 (got 1.25)');
  rejected(withEntries([[4, -3]]), 'exportWh must be an integer from 0 to 2^53-1 (got -3)');
  rejected(withEntries([[1, 'a#b']]), 'meterId may contain only');
  rejected(withEntries([[1, new Uint8Array([0x61])]]), 'meterId must be a string');
  rejected(withEntries([[8, 64]]), 'flags 64 has unknown bits');
  const all = rejected(
    withEntries([
      [2, -1],
      [9, 1],
      [10, 2],
    ]),
    'unknown key 9',
    'unknown key 10',
    'interval must be',
  );
  assert.is(all.problems.length, 3);
});

const topics = suite('reading: topics');

topics('reading and status topics, and the collector filter', () => {
  assert.is(readingTopic('meter-0001'), 'veilgrid/meters/meter-0001/readings');
  assert.is(statusTopic('meter-0001'), 'veilgrid/meters/meter-0001/status');
  assert.is(READING_TOPIC_FILTER, 'veilgrid/meters/+/readings');
});

topics('the meter id is read back from a reading topic, and only from one', () => {
  assert.is(meterIdFromReadingTopic(readingTopic('DE.0001_x-9')), 'DE.0001_x-9');
  assert.is(meterIdFromReadingTopic('veilgrid/meters/meter-0001/status'), undefined);
  assert.is(meterIdFromReadingTopic('veilgrid/meters//readings'), undefined);
  assert.is(meterIdFromReadingTopic('veilgrid/meters/a/b/readings'), undefined);
  assert.is(meterIdFromReadingTopic('other/meters/m1/readings'), undefined);
  assert.is(meterIdFromReadingTopic('veilgrid/meters/readings'), undefined);
});

topics('topics refuse meter ids that are not one safe topic level', () => {
  for (const id of ['', 'a/b', '+', '#', 'a b', 'x'.repeat(65)]) {
    assert.throws(() => readingTopic(id), /meterId/, JSON.stringify(id));
    assert.throws(() => statusTopic(id), /meterId/, JSON.stringify(id));
    assert.ok(meterIdProblem(id));
  }
  assert.is(meterIdProblem('x'.repeat(64)), undefined);
});

wire.run();
validation.run();
topics.run();
