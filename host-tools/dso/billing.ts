// Billing (issue 10 item 6, docs/billing.md): per meter and market interval, PETra's balance — the metered net
// energy (verified readings) minus the energy traded, settled at the DSO's prices, plus the money paid or
// received in trades. The DSO's records give which trading key the meter had for which interval
// (asset-store.ts); the chain gives the prices in force (PricesSet, replayed as the contract keeps its
// schedule), the grants (AssetIssued) and the fills (Settled, with each offer's side from OfferAccepted).
//
//   netWh       = importWh − exportWh                        metered, + drawn from the grid
//   tradedWh    = boughtWh − soldWh                          filled in the market
//   imbalanceWh = netWh − tradedWh                           what the DSO supplied (+) or took (−)
//   dsoAmount   = imbalanceWh · consumptionPrice   if imbalanceWh > 0
//               = imbalanceWh · productionPrice    otherwise (a credit)
//   total       = dsoAmount + paid − received                money units; + the household owes
//
// checkStatement recomputes every chain-derived column of a statement from a chain alone (any JSON-RPC URL),
// so a household can check the DSO's bill without the DSO's databases; the metered columns it can only take as
// given (or compare with its meter's display), and it recomputes the arithmetic.
import type { Hex, PublicClient } from 'viem';
import { compileContracts } from '../ledger/compile.ts';
import type { MarketDeployment } from '../ledger/market.ts';
import type { AssetStore } from './asset-store.ts';
import type { StoredReading } from './reading-store.ts';

export interface BillingLine {
  meterId: string;
  interval: number;
  /** The interval's start (its gate closure), ISO 8601. */
  start: string;
  /** Verified readings counted in this interval (0: nothing metered, the metered columns are 0). */
  readings: number;
  importWh: number;
  exportWh: number;
  /** The interval's trading key (keccak256(x || y)), when the meter asked for assets. */
  keyId?: Hex;
  grantedProductionWh: number;
  grantedConsumptionWh: number;
  grantedMoney: bigint;
  soldWh: number;
  boughtWh: number;
  /** Money paid for bought energy and received for sold energy in the market. */
  paid: bigint;
  received: bigint;
  consumptionPrice: number;
  productionPrice: number;
  imbalanceWh: number;
  dsoAmount: bigint;
  total: bigint;
}

export interface Statement {
  meterId: string;
  fromInterval: number;
  toInterval: number;
  market: Hex;
  chainId: number;
  lines: BillingLine[];
  totals: {
    importWh: number;
    exportWh: number;
    soldWh: number;
    boughtWh: number;
    paid: bigint;
    received: bigint;
    dsoAmount: bigint;
    total: bigint;
  };
}

export interface PriceEntry {
  fromInterval: number;
  consumption: number;
  production: number;
}

export interface Fill {
  interval: number;
  index: number;
  side: 'ask' | 'bid';
  fillWh: number;
  paid: bigint;
  received: bigint;
}

export interface Issued {
  production: number;
  consumption: number;
  first: number;
  last: number;
  money: bigint;
}

/** What billing reads from the chain: the price schedule, and grants and fills by trading key. */
export interface MarketHistory {
  prices: PriceEntry[];
  grants: Map<Hex, Issued[]>;
  fills: Map<Hex, Fill[]>;
}

/** The prices in force at an interval (the contract's pricesAt): the last entry from at or before it; zero before any. */
export function pricesAt(schedule: PriceEntry[], interval: number): { consumption: number; production: number } {
  for (let i = schedule.length - 1; i >= 0; i--)
    if (schedule[i].fromInterval <= interval)
      return { consumption: schedule[i].consumption, production: schedule[i].production };
  return { consumption: 0, production: 0 };
}

/** The schedule the contract keeps, from its PricesSet events in order: a new entry drops the entries from its interval on. */
export function replayPrices(events: PriceEntry[]): PriceEntry[] {
  const schedule: PriceEntry[] = [];
  for (const e of events) {
    while (schedule.length > 0 && schedule[schedule.length - 1].fromInterval >= e.fromInterval) schedule.pop();
    schedule.push(e);
  }
  return schedule;
}

const lower = (h: Hex) => h.toLowerCase() as Hex;

/** Reads PricesSet, and AssetIssued, OfferAccepted and Settled of the given keys, from a chain. */
export async function loadMarketHistory(
  client: PublicClient,
  deployment: Pick<MarketDeployment, 'market' | 'deployedAtBlock'>,
  keyIds: Hex[],
): Promise<MarketHistory> {
  const abi = compileContracts().Market.abi;
  const base = { address: deployment.market, abi, fromBlock: BigInt(deployment.deployedAtBlock ?? 0) } as const;
  type Log = { args: Record<string, unknown> };
  const priceLogs = (await client.getContractEvents({ ...base, eventName: 'PricesSet' })) as unknown as Log[];
  const prices = replayPrices(
    priceLogs.map((l) => ({
      fromInterval: Number(l.args.fromInterval),
      consumption: Number(l.args.consumption),
      production: Number(l.args.production),
    })),
  );
  const grants = new Map<Hex, Issued[]>();
  const fills = new Map<Hex, Fill[]>();
  for (let i = 0; i < keyIds.length; i += 100) {
    const keys = keyIds.slice(i, i + 100);
    const issued = (await client.getContractEvents({
      ...base,
      eventName: 'AssetIssued',
      args: { keyId: keys },
    })) as unknown as Log[];
    for (const l of issued) {
      const key = lower(l.args.keyId as Hex);
      grants.set(key, [
        ...(grants.get(key) ?? []),
        {
          production: Number(l.args.production),
          consumption: Number(l.args.consumption),
          first: Number(l.args.first),
          last: Number(l.args.last),
          money: l.args.money as bigint,
        },
      ]);
    }
    const accepted = (await client.getContractEvents({
      ...base,
      eventName: 'OfferAccepted',
      args: { keyId: keys },
    })) as unknown as Log[];
    const sides = new Map(
      accepted.map((l) => [
        `${Number(l.args.interval)}:${Number(l.args.index)}`,
        Number(l.args.side) === 1 ? ('ask' as const) : ('bid' as const),
      ]),
    );
    const settled = (await client.getContractEvents({
      ...base,
      eventName: 'Settled',
      args: { keyId: keys },
    })) as unknown as Log[];
    for (const l of settled) {
      const key = lower(l.args.keyId as Hex);
      const interval = Number(l.args.interval);
      const index = Number(l.args.index);
      const side = sides.get(`${interval}:${index}`) ?? ((l.args.received as bigint) > 0n ? 'ask' : 'bid');
      fills.set(key, [
        ...(fills.get(key) ?? []),
        {
          interval,
          index,
          side,
          fillWh: Number(l.args.fillWh),
          paid: l.args.paid as bigint,
          received: l.args.received as bigint,
        },
      ]);
    }
  }
  return { prices, grants, fills };
}

/** The market interval a reading counts in: the one in which it starts. */
export function marketIntervalOfReading(
  readingInterval: number,
  readingIntervalSeconds: number,
  deployment: Pick<MarketDeployment, 'genesisTime' | 'intervalSeconds'>,
): number {
  return Math.floor((readingInterval * readingIntervalSeconds - deployment.genesisTime) / deployment.intervalSeconds);
}

/** One line's money, from its metered and traded energy and prices (the formulas at the top). */
export function lineAmounts(
  line: Pick<
    BillingLine,
    'importWh' | 'exportWh' | 'soldWh' | 'boughtWh' | 'paid' | 'received' | 'consumptionPrice' | 'productionPrice'
  >,
): { imbalanceWh: number; dsoAmount: bigint; total: bigint } {
  const imbalanceWh = line.importWh - line.exportWh - (line.boughtWh - line.soldWh);
  const dsoAmount = BigInt(imbalanceWh) * BigInt(imbalanceWh > 0 ? line.consumptionPrice : line.productionPrice);
  return { imbalanceWh, dsoAmount, total: dsoAmount + line.paid - line.received };
}

export interface StatementInput {
  meterId: string;
  fromInterval: number;
  toInterval: number;
  deployment: Pick<MarketDeployment, 'market' | 'chainId' | 'genesisTime' | 'intervalSeconds'>;
  /** The meter's verified readings (ReadingStore.readings(meterId)). */
  readings: StoredReading[];
  /** The length of a reading's interval (the DSO's --interval-seconds); default the market's. */
  readingIntervalSeconds?: number;
  assets: AssetStore;
  history: MarketHistory;
}

/** A meter's statement over market intervals [fromInterval, toInterval]. */
export function billingStatement(input: StatementInput): Statement {
  const { meterId, fromInterval, toInterval, deployment, history } = input;
  const readingSeconds = input.readingIntervalSeconds ?? deployment.intervalSeconds;
  const metered = new Map<number, { importWh: number; exportWh: number; readings: number }>();
  for (const r of input.readings) {
    if (r.meterId !== meterId) continue;
    const d = marketIntervalOfReading(r.interval, readingSeconds, deployment);
    if (d < fromInterval || d > toInterval) continue;
    const m = metered.get(d) ?? { importWh: 0, exportWh: 0, readings: 0 };
    m.importWh += r.importWh;
    m.exportWh += r.exportWh;
    m.readings++;
    metered.set(d, m);
  }
  const requests = new Map(input.assets.requestsOfMeter(meterId, fromInterval, toInterval).map((r) => [r.interval, r]));
  const lines: BillingLine[] = [];
  for (let d = fromInterval; d <= toInterval; d++) {
    const m = metered.get(d) ?? { importWh: 0, exportWh: 0, readings: 0 };
    const request = requests.get(d);
    const keyId = request && request.status === 'issued' ? lower(request.keyId) : undefined;
    const grant = keyId ? (history.grants.get(keyId) ?? []).filter((g) => g.first <= d && d <= g.last) : [];
    const fills = keyId ? (history.fills.get(keyId) ?? []).filter((f) => f.interval === d) : [];
    const prices = pricesAt(history.prices, d);
    const partial = {
      importWh: m.importWh,
      exportWh: m.exportWh,
      soldWh: fills.filter((f) => f.side === 'ask').reduce((a, f) => a + f.fillWh, 0),
      boughtWh: fills.filter((f) => f.side === 'bid').reduce((a, f) => a + f.fillWh, 0),
      paid: fills.reduce((a, f) => a + f.paid, 0n),
      received: fills.reduce((a, f) => a + f.received, 0n),
      consumptionPrice: prices.consumption,
      productionPrice: prices.production,
    };
    const line: BillingLine = {
      meterId,
      interval: d,
      start: new Date((deployment.genesisTime + d * deployment.intervalSeconds) * 1000).toISOString(),
      readings: m.readings,
      ...partial,
      grantedProductionWh: grant.reduce((a, g) => a + g.production, 0),
      grantedConsumptionWh: grant.reduce((a, g) => a + g.consumption, 0),
      grantedMoney: grant.reduce((a, g) => a + g.money, 0n),
      ...lineAmounts(partial),
    };
    if (keyId) line.keyId = keyId;
    lines.push(line);
  }
  const sum = <K extends keyof BillingLine>(k: K) => lines.reduce((a, l) => a + (l[k] as number), 0);
  const sumBig = <K extends keyof BillingLine>(k: K) => lines.reduce((a, l) => a + (l[k] as bigint), 0n);
  return {
    meterId,
    fromInterval,
    toInterval,
    market: deployment.market,
    chainId: deployment.chainId,
    lines,
    totals: {
      importWh: sum('importWh'),
      exportWh: sum('exportWh'),
      soldWh: sum('soldWh'),
      boughtWh: sum('boughtWh'),
      paid: sumBig('paid'),
      received: sumBig('received'),
      dsoAmount: sumBig('dsoAmount'),
      total: sumBig('total'),
    },
  };
}

// --- output ------------------------------------------------------------------------------------------

const COLUMNS: Array<[keyof BillingLine, string]> = [
  ['interval', 'interval'],
  ['start', 'start'],
  ['readings', 'readings'],
  ['importWh', 'import Wh'],
  ['exportWh', 'export Wh'],
  ['grantedProductionWh', 'granted prod Wh'],
  ['grantedConsumptionWh', 'granted cons Wh'],
  ['soldWh', 'sold Wh'],
  ['boughtWh', 'bought Wh'],
  ['paid', 'paid'],
  ['received', 'received'],
  ['consumptionPrice', 'cons price'],
  ['productionPrice', 'prod price'],
  ['imbalanceWh', 'DSO Wh'],
  ['dsoAmount', 'DSO amount'],
  ['total', 'total'],
  ['keyId', 'trading key'],
];

/** JSON with money as decimal strings (bigints do not survive JSON.stringify). */
export function statementJson(statement: Statement): string {
  return JSON.stringify(statement, (_, v) => (typeof v === 'bigint' ? v.toString() : v), 2);
}

/** A statement read back from statementJson. */
export function parseStatementJson(text: string): Statement {
  const raw = JSON.parse(text) as Statement & {
    lines: Array<Record<string, unknown>>;
    totals: Record<string, unknown>;
  };
  const money = ['grantedMoney', 'paid', 'received', 'dsoAmount', 'total'];
  for (const line of raw.lines) for (const k of money) line[k] = BigInt(line[k] as string);
  for (const k of ['paid', 'received', 'dsoAmount', 'total']) raw.totals[k] = BigInt(raw.totals[k] as string);
  return raw as Statement;
}

export function statementCsv(statement: Statement): string {
  const cell = (v: unknown) =>
    v === undefined ? '' : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v);
  const rows = [['meter', ...COLUMNS.map(([k]) => k)].join(',')];
  for (const line of statement.lines)
    rows.push([statement.meterId, ...COLUMNS.map(([k]) => line[k])].map(cell).join(','));
  return rows.join('\n') + '\n';
}

export function statementTable(statement: Statement): string {
  const header = COLUMNS.map(([, title]) => title);
  const body = statement.lines.map((l) =>
    COLUMNS.map(([k]) => (l[k] === undefined ? '-' : k === 'keyId' ? String(l[k]).slice(0, 10) + '…' : String(l[k]))),
  );
  const t = statement.totals;
  body.push([
    'total',
    '',
    '',
    String(t.importWh),
    String(t.exportWh),
    '',
    '',
    String(t.soldWh),
    String(t.boughtWh),
    String(t.paid),
    String(t.received),
    '',
    '',
    '',
    String(t.dsoAmount),
    String(t.total),
    '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i <= 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return (
    [
      `meter ${statement.meterId}, market intervals ${statement.fromInterval}..${statement.toInterval} (chain ${statement.chainId}, market ${statement.market}); money in the market's units`,
      fmt(header),
      ...body.map(fmt),
    ].join('\n') + '\n'
  );
}

// --- checking a statement against a chain ------------------------------------------------------------

export interface CheckResult {
  interval: number;
  ok: boolean;
  /** What differs, one sentence each. */
  problems: string[];
}

/**
 * Checks each line of a statement against a chain's history (loaded for the statement's keys): grants,
 * fills, money paid and received and prices as the chain has them, and the line's arithmetic. Metered
 * energy is taken from the statement.
 */
export function checkStatement(statement: Statement, history: MarketHistory): CheckResult[] {
  return statement.lines.map((line) => {
    const problems: string[] = [];
    const differs = (what: string, stated: unknown, chain: unknown) => {
      if (String(stated) !== String(chain)) problems.push(`${what}: the statement says ${stated}, the chain ${chain}`);
    };
    const prices = pricesAt(history.prices, line.interval);
    differs('consumption price', line.consumptionPrice, prices.consumption);
    differs('production price', line.productionPrice, prices.production);
    const key = line.keyId ? lower(line.keyId) : undefined;
    const grants = key
      ? (history.grants.get(key) ?? []).filter((g) => g.first <= line.interval && line.interval <= g.last)
      : [];
    const fills = key ? (history.fills.get(key) ?? []).filter((f) => f.interval === line.interval) : [];
    differs(
      'granted production Wh',
      line.grantedProductionWh,
      grants.reduce((a, g) => a + g.production, 0),
    );
    differs(
      'granted consumption Wh',
      line.grantedConsumptionWh,
      grants.reduce((a, g) => a + g.consumption, 0),
    );
    differs(
      'granted money',
      line.grantedMoney,
      grants.reduce((a, g) => a + g.money, 0n),
    );
    differs(
      'sold Wh',
      line.soldWh,
      fills.filter((f) => f.side === 'ask').reduce((a, f) => a + f.fillWh, 0),
    );
    differs(
      'bought Wh',
      line.boughtWh,
      fills.filter((f) => f.side === 'bid').reduce((a, f) => a + f.fillWh, 0),
    );
    differs(
      'paid',
      line.paid,
      fills.reduce((a, f) => a + f.paid, 0n),
    );
    differs(
      'received',
      line.received,
      fills.reduce((a, f) => a + f.received, 0n),
    );
    const amounts = lineAmounts(line);
    differs('DSO Wh', line.imbalanceWh, amounts.imbalanceWh);
    differs('DSO amount', line.dsoAmount, amounts.dsoAmount);
    differs('total', line.total, amounts.total);
    return { interval: line.interval, ok: problems.length === 0, problems };
  });
}
