// The bridge's SQLite queue (bridge-store.ts): one market per file, duplicates by digest, the bridge's own
// refusals keyed by the whole message, a batch recorded with its signed transaction before sending and finished
// with its outcomes (the rest back to the queue), receipts owed until published, and pruning.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import Database from 'better-sqlite3';
import { BridgeStore } from '../../host-tools/bridge/bridge-store.ts';
import { tempDir } from './bridge-fixture.ts';

const market = { chainId: 31337, market: '0x5fbdb2315678afecb367f032d93f642f64180aa3' };
const d = (b: number) => new Uint8Array(32).fill(b);
const attempt = (n: number) => ({
  hash: `0x${String(n).padStart(64, '0')}` as const,
  raw: '0x02' as const,
  maxFeePerGas: 10n,
  maxPriorityFeePerGas: 1n,
  sentMs: 1000 + n,
});

test('a queue belongs to one market', () => {
  const tmp = tempDir('veilgrid-bridge-store-');
  try {
    const file = path.join(tmp.dir, 'q.db');
    new BridgeStore(file, market).close();
    assert.throws(() => new BridgeStore(file, { ...market, chainId: 1 }), /give this market its own --db/);
    new BridgeStore(file, { ...market, market: market.market.toUpperCase().replace('0X', '0x') }).close();
  } finally {
    tmp.remove();
  }
});

test('a queue made before batches kept their order gets the columns; its old batches keep arrival order', () => {
  const tmp = tempDir('veilgrid-bridge-store-');
  try {
    const file = path.join(tmp.dir, 'q.db');
    const old = new Database(file);
    old.exec(
      "CREATE TABLE offers (digest BLOB PRIMARY KEY, message BLOB, interval INTEGER, state TEXT NOT NULL, batch INTEGER, reason INTEGER, book_index INTEGER, received_ms INTEGER NOT NULL, published INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID; INSERT INTO offers (digest, interval, state, batch, received_ms) VALUES (x'02', 11, 'in-flight', 1, 1), (x'01', 11, 'in-flight', 1, 2); CREATE TABLE batches (id INTEGER PRIMARY KEY, nonce INTEGER NOT NULL UNIQUE, state TEXT NOT NULL, created_ms INTEGER NOT NULL); INSERT INTO batches VALUES (1, 0, 'pending', 1)",
    );
    old.close();
    const store = new BridgeStore(file, market);
    assert.equal(
      store.pendingBatches()[0].digests.map((x) => x[0]),
      [2, 1],
    );
    assert.ok(store.queue({ digest: d(3), message: new Uint8Array(177), interval: 11 }));
    store.recordBatch(1, [d(3)], attempt(1));
    store.close();
  } finally {
    tmp.remove();
  }
});

test('offers that came in the same millisecond stay in the order they came, whatever their digests', () => {
  const store = new BridgeStore(':memory:', market);
  for (const b of [9, 3, 7, 1]) assert.ok(store.queue({ digest: d(b), message: new Uint8Array(177), interval: 11 }, 5));
  assert.ok(store.queue({ digest: d(2), message: new Uint8Array(177), interval: 11 }, 4));
  assert.equal(
    store.queued().map((o) => o.digest[0]),
    [2, 9, 3, 7, 1],
  );
  store.close();
});

test('queue, refuse, batch, finish, publish, prune', () => {
  const store = new BridgeStore(':memory:', market);
  assert.ok(store.queue({ digest: d(1), message: new Uint8Array(177).fill(1), interval: 11 }));
  assert.not.ok(store.queue({ digest: d(1), message: new Uint8Array(177).fill(1), interval: 11 }), 'a duplicate');
  assert.ok(store.queue({ digest: d(2), message: new Uint8Array(177).fill(2), interval: 11 }, 0));
  assert.ok(store.refuse(d(0xa1), d(3), 17));
  assert.ok(store.refuse(d(0xa2), d(3), 17), 'another message with the same offer digest is its own refusal');
  assert.not.ok(store.refuse(d(0xa1), d(3), 17), 'the same message again');
  assert.equal(
    store.queued().map((o) => o.digest[0]),
    [2, 1],
    'oldest first (the order they came; batch-order.ts chooses the order on chain)',
  );

  const id = store.recordBatch(5, [d(1), d(2)], attempt(1));
  assert.is(store.count('in-flight'), 2);
  store.addAttempt(id, attempt(2));
  assert.is(store.highestNonce(), 5);
  const [pending] = store.pendingBatches();
  assert.equal(
    pending.attempts.map((a) => a.hash),
    [attempt(1).hash, attempt(2).hash],
  );
  assert.is(pending.nonce, 5);
  assert.equal(
    pending.digests.map((x) => x[0]),
    [1, 2],
    "the transaction's order, not the order they came: a replacement carries them so",
  );
  assert.equal(store.messagesOf([d(2)])[0][0], 2);
  store.finishBatch(id, [{ digest: d(1), accepted: true, interval: 11, index: 0 }]);
  assert.equal(store.stateOf(d(1)), { state: 'accepted', reason: null, interval: 11, index: 0 });
  assert.equal(store.stateOf(d(2))?.state, 'queued', 'an offer the receipt does not name goes back to the queue');
  assert.equal(store.pendingBatches(), []);

  const owed = store.unpublished(10);
  assert.equal(
    owed.map((o) => [o.digest[0], o.state, o.reason]),
    [
      [1, 'accepted', null],
      [3, 'refused', 17],
      [3, 'refused', 17],
    ],
  );
  store.markPublished(owed);
  assert.equal(store.unpublished(10), []);

  assert.ok(store.republishOffer(d(1)), 'a known outcome is owed again');
  assert.not.ok(store.republishOffer(d(2)), 'a queued offer has no outcome yet');
  assert.ok(store.republishRefusal(d(0xa1)));
  assert.equal(
    store.unpublished(10).map((o) => o.digest[0]),
    [1, 3],
  );
  store.markPublished(store.unpublished(10));

  assert.equal(
    store.expireQueued((interval) => interval <= 11, 20).map((x) => x[0]),
    [2],
  );
  assert.equal(store.stateOf(d(2)), { state: 'refused', reason: 20, interval: 11, index: null });
  store.markPublished(store.unpublished(10));
  assert.equal(store.prune(12, Date.now() + 1), { offers: 2, refusals: 2 });
  assert.is(store.has(d(1)), false);
  assert.is(store.highestNonce(), 5, 'the highest nonce is remembered');
  store.close();
});

test.run();
