// Billing (issue 10 item 6): meters get assets, trade, the interval clears and settles, readings arrive; each
// statement line equals an independent recomputation from the settlement receipts' events, the readings and the
// DSO's prices, and checkStatement finds a changed line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeEventLog, type Hex } from 'viem';
import {
  billingStatement,
  checkStatement,
  loadMarketHistory,
  parseStatementJson,
  replayPrices,
  statementCsv,
  statementJson,
  statementTable,
} from '../../host-tools/dso/billing.ts';
import { ReadingStore } from '../../host-tools/dso/reading-store.ts';
import { compileContracts } from '../../host-tools/ledger/compile.ts';
import type { TradingKey } from '../../host-tools/ledger/trading-key.ts';
import {
  asTradingKey,
  CONSUMPTION_PRICE,
  DELIVERY,
  INTERVAL_SECONDS,
  issuanceFixture,
  PRODUCTION_PRICE,
} from './asset-fixtures.ts';

const abi = compileContracts().Market.abi;

test('replayPrices keeps the schedule as the contract does: a later entry drops those from its interval on', () => {
  const schedule = replayPrices([
    { fromInterval: 5, consumption: 300, production: 100 },
    { fromInterval: 9, consumption: 320, production: 100 },
    { fromInterval: 8, consumption: 310, production: 90 },
  ]);
  assert.equal(
    schedule.map((e) => e.fromInterval),
    [5, 8],
  );
});

test("statements equal an independent recomputation from the chain's settlement events, the readings and the prices; a changed line is found", async () => {
  const f = await issuanceFixture();
  const readings = new ReadingStore(':memory:');
  try {
    const [seller, buyer, small, idle] = ['bill-seller', 'bill-buyer', 'bill-small', 'bill-idle'].map((id) =>
      f.meter(id),
    );
    const plan = [
      { meter: seller, request: { productionWh: 600 }, offer: { side: 'ask' as const, wh: 600, limitPrice: 150 } },
      { meter: buyer, request: { consumptionWh: 800 }, offer: { side: 'bid' as const, wh: 800, limitPrice: 250 } },
      { meter: small, request: { consumptionWh: 300 }, offer: { side: 'bid' as const, wh: 300, limitPrice: 200 } },
      { meter: idle, request: {}, offer: undefined },
    ];
    const keys = new Map<string, TradingKey>();
    for (const p of plan) {
      const { outcome, tradingKey: pair } = f.request(p.meter, { interval: DELIVERY, ...p.request });
      assert.is(outcome.outcome, 'accepted');
      keys.set(p.meter.meterId, asTradingKey(pair));
    }
    f.toIssueTime(DELIVERY);
    await f.issuer.tick();
    const offers = plan
      .filter((p) => p.offer)
      .map((p) => f.dev.offer(keys.get(p.meter.meterId)!, { interval: DELIVERY, ...p.offer! }));
    await f.dev.market.submitOffers(f.dev.relayer, offers);
    await f.dev.passGateClosure(DELIVERY);
    await f.dev.market.clear(f.dev.anyone, DELIVERY);
    const settleReceipt = await f.dev.market.settle(f.dev.anyone, DELIVERY, 200);

    // readings: the reading interval that starts inside market interval DELIVERY, and one outside it
    const { genesisTime } = f.dev.market.deployment;
    const r = Math.ceil((genesisTime + DELIVERY * INTERVAL_SECONDS) / INTERVAL_SECONDS);
    const metered: Record<string, { importWh: number; exportWh: number }> = {
      'bill-seller': { importWh: 40, exportWh: 700 },
      'bill-buyer': { importWh: 650, exportWh: 0 },
      'bill-small': { importWh: 310, exportWh: 5 },
      'bill-idle': { importWh: 90, exportWh: 0 },
    };
    for (const [meterId, m] of Object.entries(metered)) {
      readings.insert({
        meterId,
        seq: 1,
        interval: r - 1,
        importWh: 999,
        exportWh: 0,
        importTotalWh: 999,
        exportTotalWh: 0,
        flags: 0,
      });
      readings.insert({
        meterId,
        seq: 2,
        interval: r,
        importWh: m.importWh,
        exportWh: m.exportWh,
        importTotalWh: 999 + m.importWh,
        exportTotalWh: m.exportWh,
        flags: 0,
      });
    }

    // the independent side: fills straight from the settle receipt, sides from the plan
    const settled = settleReceipt.logs.flatMap((log) => {
      try {
        const event = decodeEventLog({ abi, data: log.data, topics: log.topics }) as unknown as {
          eventName: string;
          args: Record<string, unknown>;
        };
        return event.eventName === 'Settled' ? [event.args] : [];
      } catch {
        return [];
      }
    });
    assert.ok(settled.length >= 2, 'fills settled');
    let tradedAny = false;
    for (const p of plan) {
      const key = keys.get(p.meter.meterId)!;
      const mine = settled.filter((s) => (s.keyId as Hex).toLowerCase() === key.keyId.toLowerCase());
      const fill = mine.reduce((a, s) => a + Number(s.fillWh), 0);
      const paid = mine.reduce((a, s) => a + (s.paid as bigint), 0n);
      const received = mine.reduce((a, s) => a + (s.received as bigint), 0n);
      if (fill > 0) tradedAny = true;
      const sold = p.offer?.side === 'ask' ? fill : 0;
      const bought = p.offer?.side === 'bid' ? fill : 0;
      const m = metered[p.meter.meterId];
      const fromDso = m.importWh - m.exportWh - bought + sold;
      const expectedTotal =
        BigInt(fromDso) * BigInt(fromDso > 0 ? CONSUMPTION_PRICE : PRODUCTION_PRICE) + paid - received;

      const history = await loadMarketHistory(
        f.dev.ledger.publicClient as never,
        f.dev.market.deployment,
        f.store.requestsOfMeter(p.meter.meterId).map((q) => q.keyId),
      );
      const statement = billingStatement({
        meterId: p.meter.meterId,
        fromInterval: DELIVERY - 1,
        toInterval: DELIVERY,
        deployment: f.dev.market.deployment,
        readings: readings.readings(p.meter.meterId),
        assets: f.store,
        history,
      });
      assert.is(statement.lines.length, 2);
      const line = statement.lines[1];
      assert.equal(
        {
          importWh: line.importWh,
          exportWh: line.exportWh,
          soldWh: line.soldWh,
          boughtWh: line.boughtWh,
          paid: line.paid,
          received: line.received,
          imbalanceWh: line.imbalanceWh,
          total: line.total,
        },
        { ...m, soldWh: sold, boughtWh: bought, paid, received, imbalanceWh: fromDso, total: expectedTotal },
        p.meter.meterId,
      );
      assert.is(line.keyId, key.keyId.toLowerCase(), "the interval's key, also for a zero request");
      // the interval before: only the reading that starts in it, no trade, prices not yet in force (set from DELIVERY)
      assert.equal(
        [statement.lines[0].importWh, statement.lines[0].keyId, statement.lines[0].consumptionPrice],
        [999, undefined, 0],
      );
      assert.is(statement.totals.total, statement.lines[0].total + line.total);

      // a household checks it against the chain, through JSON as the CLI prints it
      const copy = parseStatementJson(statementJson(statement));
      assert.ok(
        checkStatement(copy, history).every((c) => c.ok),
        JSON.stringify(checkStatement(copy, history)),
      );
      copy.lines[1].paid += 1n;
      copy.lines[1].total += 1n;
      const results = checkStatement(copy, history);
      assert.is(results[1].ok, false);
      assert.match(results[1].problems.join('; '), 'paid: the statement says');
      assert.ok(results[0].ok);
      assert.match(statementTable(statement), p.meter.meterId);
      assert.is(statementCsv(statement).trim().split('\n').length, 3);
    }
    assert.ok(tradedAny, 'something traded');
  } finally {
    readings.close();
    await f.close();
  }
});

test.run();
