// `veilgrid dso`: the DSO's own key, to which every meter seals its readings, and the DSO service
// that verifies and stores them (dso-service.ts).
import fs from 'node:fs';
import path from 'node:path';
import type { Hex } from 'viem';
import { BrokerCredentials, DSO_PASSWORD_FILE } from '../broker/credentials.ts';
import { developmentKeys } from '../ledger/ledger-client.ts';
import { readDeployment } from '../ledger/market.ts';
import type { IssuanceOptions } from './asset-issuance.ts';
import { billHelp, runBill } from './bill-command.ts';
import { CliError, parseOptions, type Command } from '../cli/command.ts';
import { ExitKeyError, parseExitKey } from './directory-publisher.ts';
import { createDsoKey, DsoKeyError, exportDsoPublicKey, readDsoKey } from './dso-key.ts';
import { DEFAULT_HTTP_PORT, DsoServiceError, startDsoService } from './dso-service.ts';

export const command: Command = {
  help: `usage: veilgrid dso key-init --file FILE
       veilgrid dso key-export --file FILE --out FILE
       veilgrid dso serve --file FILE --dso-db FILE --readings FILE --broker URL --broker-dir DIR
                          [--http HOST:PORT] [--interval-seconds S] [--exit-key HEX]
                          [--deployment FILE --assets FILE [--eth-key-file FILE] [--issuance FILE]]

Manages the DSO's P-256 key pair, and runs the DSO service. Meters seal every reading to the public
key; the service opens them with the private key.

  key-init     creates FILE (mode 0600) with a new key pair; refuses to replace an existing one,
               since every provisioned meter seals its readings to it
  key-export   writes the public half alone to --out, for the machines technicians provision from
               (veilgrid provision --dso-key)
  serve        runs until stopped (Ctrl-C, SIGTERM): subscribes to every meter's key certificates and
               readings as the DSO user, verifies each reading (operator -> device certificate -> key
               certificate -> signature, sequence and replay, revocation) and stores what passes in
               --readings; each rejection is one JSON line on stderr with its reason. Serves
               GET /metrics (Prometheus) and GET /healthz. Publishes the mixnet's relay directory (every
               active meter's mix key, signed) at start and whenever the active meters change, and
               anchors it on the market when --deployment is given (docs/relay-directory.md).

serve options:
  --dso-db FILE      the registry provisioning writes (veilgrid provision --dso-db)
  --readings FILE    the reading store (SQLite), created if absent
  --broker URL       the broker, e.g. mqtt://127.0.0.1:1883
  --broker-dir DIR   the broker folder provisioning writes; the DSO's MQTT password is in it
  --http HOST:PORT   where /metrics and /healthz listen (default 127.0.0.1:${DEFAULT_HTTP_PORT}; port 0: any free one)
  --interval-seconds S  the grid's metering interval: a reading for an interval that has not ended by
                     the DSO's clock (5 minutes of skew allowed) is refused as out-of-bounds
  --exit-key HEX     the mixnet exit's mix public key, 128 hex digits x || y, which 'veilgrid bridge
                     exit-key' prints; named in the relay directory. Without it the directory is
                     published, but meters cannot send through the mixnet until it is given

asset issuance (docs/asset-issuance.md), on when --deployment is given:
  --deployment FILE  the market's deployment file (veilgrid ledger serve or deploy writes it)
  --assets FILE      the DSO's issuance records (SQLite), created if absent
  --eth-key-file FILE  the DSO account's private key (0x and 64 hex digits): the account that deployed
                     the market. Default on a development chain (chain id 31337) only: development account 0
  --issuance FILE    JSON: { "leadFraction": 0.5, "lookaheadIntervals": 1, "roundGrants": true,
                     "maxGrantsPerTransaction": 300, "feederLimits": { "<feeder>": { "productionWh": …,
                     "consumptionWh": … } }, "defaultFeederLimit": { … }, "feederIds": { "<feeder>": 7 },
                     "prices": { "consumption": 300, "production": 100 } } (each optional; feeders are named
                     as in device certificates; prices are set on chain from the next interval when they differ)

The service's MQTT client id is its user name, dso, with a persistent session: the broker keeps readings
for it while the service is down. Both brokers tie a client id to its login (see docs/security.md).

${billHelp}`,

  async run(argv) {
    if (argv[0] === 'bill') return runBill(argv.slice(1));
    const { values, positionals } = parseOptions(
      argv,
      {
        file: { type: 'string' },
        out: { type: 'string' },
        'dso-db': { type: 'string' },
        readings: { type: 'string' },
        broker: { type: 'string' },
        'broker-dir': { type: 'string' },
        http: { type: 'string' },
        'interval-seconds': { type: 'string' },
        deployment: { type: 'string' },
        assets: { type: 'string' },
        'eth-key-file': { type: 'string' },
        issuance: { type: 'string' },
        'exit-key': { type: 'string' },
      },
      true,
    );
    const [sub] = positionals;
    if (!values.file) throw new CliError('--file is required (see --help)');
    if (sub === 'serve') return serve(values.file, values);
    try {
      if (sub === 'key-init') {
        const key = createDsoKey(values.file);
        console.log(`created ${values.file}: DSO public key ${Buffer.from(key.publicKey).toString('hex')}`);
        return 0;
      }
      if (sub === 'key-export') {
        if (!values.out) throw new CliError('key-export needs --out FILE (see --help)');
        exportDsoPublicKey(readDsoKey(values.file), values.out);
        console.log(`wrote the public key alone to ${values.out}`);
        return 0;
      }
    } catch (err) {
      if (err instanceof DsoKeyError) throw new CliError(err.message);
      throw err;
    }
    throw new CliError(`unknown subcommand "${sub ?? ''}": use key-init, key-export or serve (see --help)`);
  },
};

async function serve(keyFile: string, values: Record<string, string | boolean | undefined>): Promise<number> {
  const need = (name: string): string => {
    const value = values[name];
    if (typeof value !== 'string' || value === '') throw new CliError(`serve needs --${name} (see --help)`);
    return value;
  };
  const brokerUrl = need('broker');
  if (!/^mqtts?:\/\/[^/]+$/.test(brokerUrl))
    throw new CliError(`--broker must be a URL like mqtt://127.0.0.1:1883, got "${brokerUrl}"`);
  const http = parseHostPort(typeof values.http === 'string' ? values.http : `127.0.0.1:${DEFAULT_HTTP_PORT}`);
  let intervalSeconds: number | undefined;
  if (typeof values['interval-seconds'] === 'string') {
    intervalSeconds = Number(values['interval-seconds']);
    if (!Number.isInteger(intervalSeconds) || intervalSeconds < 1)
      throw new CliError(
        `--interval-seconds must be a whole number of seconds ≥ 1, got "${values['interval-seconds']}"`,
      );
  }
  const credentials = new BrokerCredentials(need('broker-dir'));
  const passwordFile = path.join(credentials.dir, DSO_PASSWORD_FILE);
  if (!fs.existsSync(passwordFile))
    throw new CliError(
      `${passwordFile} does not exist: --broker-dir must be the folder 'veilgrid provision --broker-dir' writes (the DSO's broker user is made with the first meter)`,
    );
  const exitKey = typeof values['exit-key'] === 'string' ? values['exit-key'] : undefined;
  if (exitKey !== undefined) {
    try {
      parseExitKey(exitKey);
    } catch (err) {
      if (err instanceof ExitKeyError) throw new CliError(`--exit-key: ${err.message}`);
      throw err;
    }
  }
  const market = issuanceOptions(values);
  let service;
  try {
    service = await startDsoService({
      ...market,
      keyFile,
      registryDb: need('dso-db'),
      readingsDb: need('readings'),
      brokerUrl,
      brokerPassword: credentials.dsoPassword(),
      http,
      intervalSeconds,
      exitKey,
    });
  } catch (err) {
    if (err instanceof DsoServiceError) throw new CliError(err.message);
    throw err;
  }
  console.error(`veilgrid dso serve: verifying readings from ${brokerUrl}; metrics on ${service.http.url}/metrics`);
  if (service.issuer) {
    const d = service.issuer.intervalAt(Date.now()) + 1;
    console.error(
      `veilgrid dso serve: issuing assets on the market ${market.market?.deploymentFile} names; interval ${d} is issued at ${new Date(service.issuer.issueAtMs(d)).toISOString()}, records in ${market.assetsDb}`,
    );
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const { stats } = service.collector;
  const assets = service.assets?.summary();
  await service.close();
  console.error(
    `veilgrid dso serve: stopped (${signal}); ${stats.received} readings stored, ${stats.rejected} rejected, ${stats.duplicates} duplicates dropped${assets ? `; asset requests ${assets.requested} accepted (${assets.issued} issued, ${assets.pending} pending), ${assets.refused} refused` : ''}`,
  );
  return 0;
}

function issuanceOptions(values: Record<string, string | boolean | undefined>): {
  market?: { deploymentFile: string; privateKey: Hex };
  assetsDb?: string;
  issuance?: IssuanceOptions;
} {
  const deploymentFile = typeof values.deployment === 'string' ? values.deployment : undefined;
  if (!deploymentFile) {
    for (const name of ['assets', 'eth-key-file', 'issuance'])
      if (values[name] !== undefined)
        throw new CliError(`--${name} is for asset issuance, which needs --deployment FILE (see --help)`);
    return {};
  }
  if (typeof values.assets !== 'string')
    throw new CliError(
      "asset issuance needs --assets FILE, the SQLite file of the DSO's issuance records (see --help)",
    );
  let privateKey: Hex;
  const keyFile = values['eth-key-file'];
  if (typeof keyFile === 'string') {
    const text = fs.existsSync(keyFile) ? fs.readFileSync(keyFile, 'utf8').trim() : '';
    if (!/^0x[0-9a-fA-F]{64}$/.test(text))
      throw new CliError(`--eth-key-file ${keyFile} must exist and hold one private key: 0x and 64 hex digits`);
    privateKey = text as Hex;
  } else {
    let chainId: number;
    try {
      chainId = readDeployment(deploymentFile).chainId;
    } catch (err) {
      throw new CliError((err as Error).message);
    }
    if (chainId !== 31337)
      throw new CliError(
        `--eth-key-file is needed: ${deploymentFile} is for chain ${chainId}, not a development chain`,
      );
    privateKey = developmentKeys(1)[0];
  }
  let issuance: IssuanceOptions | undefined;
  if (typeof values.issuance === 'string') {
    try {
      issuance = JSON.parse(fs.readFileSync(values.issuance, 'utf8')) as IssuanceOptions;
    } catch (err) {
      throw new CliError(`cannot read --issuance ${values.issuance}: ${(err as Error).message}`);
    }
    const known = [
      'leadFraction',
      'lookaheadIntervals',
      'roundGrants',
      'maxGrantsPerTransaction',
      'feederLimits',
      'defaultFeederLimit',
      'feederIds',
      'prices',
    ];
    const unknown = Object.keys(issuance).filter((k) => !known.includes(k));
    if (unknown.length > 0)
      throw new CliError(
        `--issuance ${values.issuance}: unknown keys ${unknown.join(', ')} (known: ${known.join(', ')})`,
      );
  }
  return { market: { deploymentFile, privateKey }, assetsDb: values.assets, issuance };
}

function parseHostPort(text: string): { host: string; port: number } {
  const match = /^([^:]+):(\d+)$/.exec(text);
  if (!match) throw new CliError(`--http must be HOST:PORT, got "${text}"`);
  const port = Number(match[2]);
  if (port > 65535) throw new CliError(`--http port must be at most 65535, got ${port}`);
  return { host: match[1], port };
}
