import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  mixSlotAt,
  nextMixSlot,
  ROUNDS_PER_WINDOW,
  roundStartMs,
  SLOTS_PER_ROUND,
  slotMs,
} from '../../firmware/src/protocol/mix-schedule.ts';

const clock = { genesisTime: 1_800_000_000, intervalSeconds: 10 };
const gateMs = (d: number) => (clock.genesisTime + d * clock.intervalSeconds) * 1000;

test('rounds start after the issuance half-way and every round ends before the gate closes', () => {
  for (const intervalSeconds of [10, 20, 60, 900]) {
    const c = { genesisTime: clock.genesisTime, intervalSeconds };
    const windowOpen = (c.genesisTime + 4 * intervalSeconds) * 1000;
    assert.ok(roundStartMs(c, 5, 0) > windowOpen + intervalSeconds * 500, 'after issuance');
    const lastEnd = roundStartMs(c, 5, ROUNDS_PER_WINDOW - 1) + SLOTS_PER_ROUND * slotMs(c);
    assert.ok(lastEnd < windowOpen + intervalSeconds * 1000, `${intervalSeconds} s: last round ends before the gate`);
  }
  assert.is(slotMs(clock), 500);
  assert.is(roundStartMs(clock, 7, 0), gateMs(6) + 5500);
  assert.is(roundStartMs(clock, 7, 1), gateMs(6) + 7500);
});

test('mixSlotAt names the interval, round and slot running at a time, and nothing between windows', () => {
  assert.equal(mixSlotAt(clock, gateMs(6) + 5500), {
    interval: 7,
    round: 0,
    slot: 0,
    startMs: gateMs(6) + 5500,
    endMs: gateMs(6) + 6000,
  });
  const last = mixSlotAt(clock, gateMs(6) + 9499)!;
  assert.equal([last.interval, last.round, last.slot], [7, 1, 3]);
  assert.is(mixSlotAt(clock, gateMs(6) + 5499), undefined);
  assert.is(mixSlotAt(clock, gateMs(6) + 9500), undefined);
  assert.is(mixSlotAt(clock, gateMs(6)), undefined);
});

test('nextMixSlot steps through every slot of a window, then to the next window', () => {
  let at = gateMs(6);
  const seen: string[] = [];
  for (let i = 0; i < ROUNDS_PER_WINDOW * SLOTS_PER_ROUND + 1; i++) {
    const next = nextMixSlot(clock, at);
    assert.ok(next.startMs > at);
    seen.push(`${next.interval}.${next.round}.${next.slot}`);
    at = next.startMs;
  }
  assert.equal(seen, ['7.0.0', '7.0.1', '7.0.2', '7.0.3', '7.1.0', '7.1.1', '7.1.2', '7.1.3', '8.0.0']);
});

test.run();
