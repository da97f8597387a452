// The relay directory: pages of at most 24 records at fixed offsets, chained by hashes from a head the DSO
// signs; every page checked against the chain, and any change, reordering or truncation refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { p256 } from '@noble/curves/nist.js';
import {
  CertificateFormatError,
  decodeRelayDirectoryHead,
  encodeRelayDirectoryHead,
  kidOf,
  type RelayDirectoryHead,
} from '../../firmware/src/protocol/certificate.ts';
import {
  buildDirectoryPages,
  checkDirectoryPage,
  exitOfHead,
  parseDirectoryPage,
  PAGE_HEADER_BYTES,
  RECORDS_PER_PAGE,
  RELAY_RECORD_BYTES,
  RelayDirectoryError,
  relayRecordAt,
  relayRecordBytes,
  type RelayRecord,
} from '../../firmware/src/protocol/relay-directory.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function relays(n: number): RelayRecord[] {
  return Array.from({ length: n }, () => {
    const mixKey = p256.getPublicKey(p256.utils.randomSecretKey(), false);
    return { relayId: kidOf(nodeSha256, mixKey), mixKey: mixKey.subarray(1) };
  });
}

function headFor(relayCount: number, pages: Uint8Array[], firstPageHash: Uint8Array): RelayDirectoryHead {
  return decodeRelayDirectoryHead(
    encodeRelayDirectoryHead({ epoch: 7, relayCount, pageCount: pages.length, firstPageHash, issuedAt: 1_800_000_000 }),
  );
}

/** Walks the chain as a meter does: page 0 against the head, each next page against the one before. */
function walk(head: RelayDirectoryHead, pages: Uint8Array[]): RelayRecord[] {
  const out: RelayRecord[] = [];
  let expected = head.firstPageHash;
  for (let i = 0; i < head.pageCount; i++) {
    const page = checkDirectoryPage(nodeSha256, head, i, expected, pages[i]);
    for (let r = 0; r < page.count; r++) out.push(relayRecordAt(page.records, r));
    expected = page.nextPageHash;
  }
  return out;
}

test('1, 24, 25 and 1,000 relays: pages of 24 at fixed offsets, sorted by relay id, all recovered through the chain', () => {
  for (const n of [1, 24, 25, 1000]) {
    const list = relays(n);
    const { pages, firstPageHash } = buildDirectoryPages(nodeSha256, 7, list);
    assert.is(pages.length, Math.ceil(n / RECORDS_PER_PAGE));
    for (const page of pages)
      assert.ok(page.length <= PAGE_HEADER_BYTES + RECORDS_PER_PAGE * RELAY_RECORD_BYTES && page.length <= 1772);
    const recovered = walk(headFor(n, pages, firstPageHash), pages);
    const sortedIds = list.map((r) => hex(r.relayId)).sort();
    assert.equal(
      recovered.map((r) => hex(r.relayId)),
      sortedIds,
    );
    const byId = new Map(list.map((r) => [hex(r.relayId), hex(r.mixKey)]));
    for (const r of recovered) assert.is(hex(r.mixKey), byId.get(hex(r.relayId)));
    // Record i of the directory is at a fixed offset: what a meter reads from Storage.
    const i = Math.floor(n / 2);
    const page = parseDirectoryPage(pages[Math.floor(i / RECORDS_PER_PAGE)]);
    assert.is(hex(relayRecordAt(page.records, i % RECORDS_PER_PAGE).relayId), sortedIds[i]);
  }
});

test('a changed byte, swapped pages, a dropped page, a wrong count or epoch are refused', () => {
  const list = relays(60);
  const { pages, firstPageHash } = buildDirectoryPages(nodeSha256, 7, list);
  const head = headFor(60, pages, firstPageHash);
  const refused = (fn: () => unknown) => assert.throws(fn, (err: Error) => err instanceof RelayDirectoryError);
  const changed = pages.map((p) => new Uint8Array(p));
  changed[1][PAGE_HEADER_BYTES + 5] ^= 1;
  refused(() => walk(head, changed));
  refused(() => walk(head, [pages[0], pages[2], pages[1]]));
  refused(() => walk({ ...head, pageCount: 2, relayCount: 48 }, pages));
  refused(() => walk({ ...head, relayCount: 59 }, pages));
  refused(() => walk({ ...head, epoch: 8 }, pages));
  refused(() => walk(headFor(60, pages, nodeSha256(pages[1])), pages));
  refused(() => buildDirectoryPages(nodeSha256, 7, [list[0], list[0]]));
  refused(() => buildDirectoryPages(nodeSha256, 7, []));
  refused(() => parseDirectoryPage(pages[0].subarray(0, 100)));
});

test("the head's exit record (field 6): kept when given, absent when not, refused malformed or with another key's id", () => {
  const [exit, other] = relays(2);
  const base = { epoch: 9, relayCount: 1, pageCount: 1, firstPageHash: new Uint8Array(32), issuedAt: 1_800_000_000 };
  const withExit = decodeRelayDirectoryHead(encodeRelayDirectoryHead({ ...base, exit: relayRecordBytes(exit) }));
  assert.equal(withExit.exit, relayRecordBytes(exit));
  assert.equal(exitOfHead(nodeSha256, withExit), exit);
  const without = decodeRelayDirectoryHead(encodeRelayDirectoryHead(base));
  assert.equal(without, base, 'no exit key: no field 6');
  assert.is(exitOfHead(nodeSha256, without), undefined);
  assert.throws(
    () => encodeRelayDirectoryHead({ ...base, exit: new Uint8Array(64) }),
    (err: Error) => err instanceof CertificateFormatError && /exit must be a 72-byte relay record/.test(err.message),
  );
  const forged = relayRecordBytes({ relayId: other.relayId, mixKey: exit.mixKey });
  assert.throws(
    () => exitOfHead(nodeSha256, { ...base, exit: forged }),
    (err: Error) => err instanceof RelayDirectoryError && /not the key id of its mix key/.test(err.message),
  );
});

test.run();
