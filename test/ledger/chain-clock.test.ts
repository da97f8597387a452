// A development chain that follows a virtual clock: its genesis where the clock starts, its blocks never
// behind the clock after a sync, and never sent back in time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openLedger } from '../../host-tools/ledger/ledger-client.ts';
import { followClock } from '../../host-tools/ledger/chain-clock.ts';

test('the chain starts at the virtual clock and keeps up with it, without going back', async () => {
  let virtual = 1_790_000_000;
  const ledger = await openLedger({ kind: 'in-process', accounts: 1, genesisTime: virtual });
  const genesis = Number((await ledger.publicClient.getBlock({ blockNumber: 0n })).timestamp);
  assert.ok(Math.abs(genesis - virtual) <= 1, `genesis at the virtual start (${genesis})`);
  const clock = followClock(ledger, () => virtual, 10_000);
  try {
    virtual += 900;
    await clock.sync();
    assert.is(Number((await ledger.publicClient.getBlock()).timestamp), virtual);
    virtual -= 100;
    await clock.sync();
    assert.is(
      Number((await ledger.publicClient.getBlock()).timestamp),
      virtual + 100,
      'a clock behind the chain is left alone',
    );
  } finally {
    clock.stop();
  }
});

test.run();
