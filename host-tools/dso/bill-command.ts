// `veilgrid dso bill`: a meter's statement per market interval (billing.ts), and `--check`, which checks a
// statement against any JSON-RPC node of the market's chain.
import fs from 'node:fs';
import { createPublicClient, http, type Hex } from 'viem';
import { CliError, parseOptions } from '../cli/command.ts';
import { readDeployment } from '../ledger/market.ts';
import { AssetStore } from './asset-store.ts';
import {
  billingStatement,
  checkStatement,
  loadMarketHistory,
  parseStatementJson,
  statementCsv,
  statementJson,
  statementTable,
  type Statement,
} from './billing.ts';
import { ReadingStore } from './reading-store.ts';

export const billHelp = `usage: veilgrid dso bill --meter ID --from D --to D --readings FILE --assets FILE --deployment FILE
                       [--rpc URL] [--interval-seconds S] [--json | --csv]
       veilgrid dso bill --check --statement FILE [--rpc URL | --deployment FILE]
       veilgrid dso bill --check --meter ID --from D --to D --readings FILE --assets FILE --deployment FILE --rpc URL

A meter's statement per market interval from D to D (interval numbers, or ISO times: the interval running
then): metered import and export from the verified readings, the interval's grant and fills on chain, the
DSO's prices in force, what the DSO supplied (+) or took (-) at those prices, money paid and received in
trades, and the total (+: the household owes). docs/billing.md has the formulas.

  --readings FILE      the DSO's reading store; --assets FILE its issuance records
  --deployment FILE    the market's deployment file; its rpcUrl is read unless --rpc is given
  --interval-seconds S the readings' interval length (default the market's)
  --check              checks a statement against the chain at --rpc (or the deployment's rpcUrl): grants,
                       fills, money and prices line by line, and each line's arithmetic; exits 1 when any
                       line differs. The statement is --statement FILE (one --json printed: what a household
                       got from the DSO), or the one computed from the DSO's records (from the deployment's
                       rpcUrl; give --rpc another node to check it against)`;

function intervalOption(
  text: string | undefined,
  name: string,
  deployment: { genesisTime: number; intervalSeconds: number },
): number {
  if (text === undefined) throw new CliError(`bill needs --${name} (see --help)`);
  if (/^\d+$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new CliError(`--${name} must be an interval number or an ISO time, got "${text}"`);
  return Math.floor((ms / 1000 - deployment.genesisTime) / deployment.intervalSeconds);
}

function chainClient(url: string) {
  return createPublicClient({ transport: http(url) });
}

export async function runBill(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, {
    meter: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    readings: { type: 'string' },
    assets: { type: 'string' },
    deployment: { type: 'string' },
    rpc: { type: 'string' },
    'interval-seconds': { type: 'string' },
    json: { type: 'boolean' },
    csv: { type: 'boolean' },
    check: { type: 'boolean' },
    statement: { type: 'string' },
  });
  const deployment = values.deployment ? readDeploymentOrFail(values.deployment) : undefined;
  if (values.statement && !values.check) throw new CliError('--statement is for --check (see --help)');
  if (values.check) {
    let statement: Statement;
    if (values.statement) {
      try {
        statement = parseStatementJson(fs.readFileSync(values.statement, 'utf8'));
      } catch (err) {
        throw new CliError(`cannot read the statement ${values.statement}: ${(err as Error).message}`);
      }
    } else {
      statement = await computeStatement(values, deployment, deployment?.rpcUrl);
    }
    const url = values.rpc ?? deployment?.rpcUrl;
    if (!url) throw new CliError('--check needs --rpc URL (or a --deployment file naming one)');
    const client = chainClient(url);
    const chainId = await client.getChainId().catch((err: Error) => {
      throw new CliError(`cannot reach ${url}: ${err.message.split('\n')[0]}`);
    });
    if (chainId !== statement.chainId)
      throw new CliError(`the statement is for chain ${statement.chainId}, ${url} serves chain ${chainId}`);
    const keys = statement.lines.flatMap((l) => (l.keyId ? [l.keyId] : []));
    const history = await loadMarketHistory(
      client as never,
      { market: statement.market, deployedAtBlock: deployment?.deployedAtBlock ?? 0 },
      keys,
    );
    const results = checkStatement(statement, history);
    for (const r of results)
      console.log(`interval ${r.interval}: ${r.ok ? 'ok' : 'DIFFERS: ' + r.problems.join('; ')}`);
    const bad = results.filter((r) => !r.ok).length;
    console.log(
      bad === 0
        ? `all ${results.length} lines agree with the chain at ${url}`
        : `${bad} of ${results.length} lines differ from the chain at ${url}`,
    );
    return bad === 0 ? 0 : 1;
  }
  if (values.json && values.csv) throw new CliError('choose one of --json and --csv');
  const statement = await computeStatement(values, deployment, values.rpc ?? deployment?.rpcUrl);
  process.stdout.write(
    values.json ? statementJson(statement) + '\n' : values.csv ? statementCsv(statement) : statementTable(statement),
  );
  return 0;
}

/** The statement from the DSO's records, with the chain's events read at url. */
async function computeStatement(
  values: Record<string, string | boolean | undefined>,
  deployment: ReturnType<typeof readDeployment> | undefined,
  url: string | undefined,
): Promise<Statement> {
  if (typeof values.meter !== 'string') throw new CliError('bill needs --meter ID (see --help)');
  if (!deployment) throw new CliError('bill needs --deployment FILE (see --help)');
  if (typeof values.readings !== 'string' || typeof values.assets !== 'string')
    throw new CliError('bill needs --readings FILE and --assets FILE (see --help)');
  for (const file of [values.readings, values.assets])
    if (!fs.existsSync(file)) throw new CliError(`${file} does not exist`);
  const fromInterval = intervalOption(values.from as string | undefined, 'from', deployment);
  const toInterval = intervalOption(values.to as string | undefined, 'to', deployment);
  if (toInterval < fromInterval) throw new CliError(`--to (${toInterval}) is before --from (${fromInterval})`);
  if (toInterval - fromInterval > 100_000) throw new CliError('at most 100,000 intervals per statement');
  if (!url) throw new CliError('bill needs --rpc URL (the deployment file names none)');
  let readingIntervalSeconds: number | undefined;
  if (typeof values['interval-seconds'] === 'string') {
    readingIntervalSeconds = Number(values['interval-seconds']);
    if (!Number.isInteger(readingIntervalSeconds) || readingIntervalSeconds < 1)
      throw new CliError(`--interval-seconds must be a whole number ≥ 1, got "${values['interval-seconds']}"`);
  }
  const readings = new ReadingStore(values.readings);
  const assets = new AssetStore(values.assets);
  try {
    const keys = assets.requestsOfMeter(values.meter, fromInterval, toInterval).map((r) => r.keyId as Hex);
    const history = await loadMarketHistory(chainClient(url) as never, deployment, keys);
    return billingStatement({
      meterId: values.meter,
      fromInterval,
      toInterval,
      deployment,
      readings: readings.readings(values.meter),
      readingIntervalSeconds,
      assets,
      history,
    });
  } finally {
    assets.close();
    readings.close();
  }
}

function readDeploymentOrFail(file: string) {
  try {
    return readDeployment(file);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}
