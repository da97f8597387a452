// Per-meter budgets of refused messages: spent only by charges, refilled with time, one bucket per meter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MessageBudgets } from '../../host-tools/dso/message-limits.ts';

test('a meter is exhausted after burst charges, not before; others are untouched; time refills it', () => {
  const budgets = new MessageBudgets({ burst: 3, perSecond: 0.5 });
  const t0 = 1_000_000;
  for (let i = 0; i < 3; i++) {
    assert.not.ok(budgets.exhausted('meter-a', t0), `after ${i} charges`);
    budgets.charge('meter-a', t0);
  }
  assert.ok(budgets.exhausted('meter-a', t0));
  assert.not.ok(budgets.exhausted('meter-b', t0), 'another meter has its own budget');
  assert.ok(budgets.exhausted('meter-a', t0 + 1_900), 'not yet one token back after 1.9 s at 0.5/s');
  assert.not.ok(budgets.exhausted('meter-a', t0 + 2_000), 'one token back after 2 s');
  budgets.charge('meter-a', t0 + 2_000);
  assert.ok(budgets.exhausted('meter-a', t0 + 2_000));
  assert.not.ok(budgets.exhausted('meter-a', t0 + 3_600_000), 'refilled, never above the burst');
  for (let i = 0; i < 3; i++) budgets.charge('meter-a', t0 + 3_600_000);
  assert.ok(budgets.exhausted('meter-a', t0 + 3_600_000), 'the burst is the ceiling');
});

test.run();
