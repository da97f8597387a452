// The DSO's asset reply: round trips, the documented bytes, and refusal of anything else.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Encoder } from 'cbor-x';
import { CborMap, encode } from '../../firmware/src/protocol/cbor.ts';
import {
  ASSET_REFUSALS,
  AssetReplyError,
  decodeAssetReply,
  encodeAssetReply,
} from '../../firmware/src/protocol/asset-reply.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

test('issued and refused replies round-trip, as the documented CBOR maps', () => {
  assert.equal(decodeAssetReply(encodeAssetReply({ interval: 1_988_010, issued: true })), {
    interval: 1_988_010,
    issued: true,
  });
  for (const reason of ASSET_REFUSALS)
    assert.equal(decodeAssetReply(encodeAssetReply({ interval: 7, issued: false, reason })), {
      interval: 7,
      issued: false,
      reason,
    });
  // an independent encoder writes the same bytes
  const independent = (map: Map<number, unknown>) =>
    hex(new Encoder({ mapsAsObjects: false, useRecords: false }).encode(map));
  assert.is(
    hex(encodeAssetReply({ interval: 7, issued: true })),
    independent(
      new Map([
        [1, 7],
        [2, 1],
      ]),
    ),
  );
  assert.is(
    hex(encodeAssetReply({ interval: 7, issued: false, reason: 'too-late' })),
    independent(
      new Map<number, unknown>([
        [1, 7],
        [2, 2],
        [3, 'too-late'],
      ]),
    ),
  );
});

test('anything else is refused with AssetReplyError', () => {
  const bad = [
    new Uint8Array([0xff]),
    encode([1, 2]),
    encode(new CborMap([[1, 7]])),
    encode(
      new CborMap([
        [1, 7],
        [2, 1],
        [3, 'too-late'],
      ]),
    ),
    encode(
      new CborMap([
        [1, 7],
        [2, 2],
        [3, 'made-up'],
      ]),
    ),
    encode(
      new CborMap([
        [1, -1],
        [2, 1],
      ]),
    ),
  ];
  for (const bytes of bad)
    assert.throws(
      () => decodeAssetReply(bytes),
      (err: Error) => err instanceof AssetReplyError && (err as AssetReplyError).code === 'asset-reply',
      hex(bytes),
    );
  assert.throws(
    () => encodeAssetReply({ interval: 7, issued: false }),
    (err: Error) => err instanceof AssetReplyError,
  );
  assert.throws(
    () => encodeAssetReply({ interval: 7, issued: true, reason: 'too-late' }),
    (err: Error) => err instanceof AssetReplyError,
  );
});

test.run();
