// `veilgrid bridge`: the ledger bridge as a service (bridge.ts; docs/bridge.md).
import fs from 'node:fs';
import path from 'node:path';
import { BRIDGE_USERNAME } from '../broker/acl.ts';
import { BrokerCredentials } from '../broker/credentials.ts';
import { CliError, hostPortOption, intOption, parseOptions, type Command } from '../cli/command.ts';
import { DEFAULT_DEPLOYMENT_FILE, readKeyFile } from '../ledger/ledger-command.ts';
import { developmentKeys, LedgerConnectionError } from '../ledger/ledger-client.ts';
import { openDevelopmentMarket } from '../ledger/development-market.ts';
import { DeploymentFileError, openDeployedMarket } from '../ledger/market.ts';
import { BridgeError, CRASH_POINTS, MAX_BATCH, startBridge, type CrashPoint } from './bridge.ts';
import { BridgeStoreError } from './bridge-store.ts';
import { ensureExitKey, EXIT_KEY_FILE, ExitKeyFileError, exitKeyHex } from './exit-key.ts';
import { DEFAULT_KEY_BUDGET, DEFAULT_WINDOW_PACKETS } from './mix-exit.ts';

export const DEFAULT_DIR = '.veilgrid/bridge';
export const DEFAULT_HTTP = '127.0.0.1:9465';

export const command: Command = {
  help: `usage: veilgrid bridge --broker URL [--broker-dir DIR] [--dir DIR] [--deployment FILE] [--key-file FILE]
                       [--db FILE] [--http HOST:PORT] [--batch-size N] [--replace-after S] [--no-clearing]
                       [--mix-window-packets N] [--mix-key-budget N]
       veilgrid bridge exit-key [--dir DIR]

The ledger bridge: takes the meters' signed offers from the broker (veilgrid/meters/+/offers, QoS 1),
checks each off chain (length and codec, this market's chain id and address, gate closure, keys revoked
on chain, the ES256 signature), queues it in SQLite before acknowledging it, and submits the queue to
the market contract in submitOffers transactions. It publishes a receipt per offer on
veilgrid/market/receipts (accepted with its interval and book index, or refused with a reason: the
contract's or its own), and after each interval's gate closure clears the interval (computeClearing,
then clear), settles it in chunks and publishes the result and every offer's fill on
veilgrid/market/clearing; it keeps the market's deployment, clock and next prices retained on
veilgrid/market/info. Crash-safe: a kill at any point loses no acknowledged offer and puts none on
chain twice. Runs until Ctrl-C or SIGTERM; logs one JSON object per line on stderr; serves
GET /metrics (Prometheus) and GET /healthz. The formats and the reasons are in docs/bridge.md.

The bridge is also the mixnet's exit: it reads onion packets on veilgrid/mix/exit (QoS 0), peels the
last layer with its exit key (DIR/${EXIT_KEY_FILE}, mode 0600, made on first start), drops dummies,
replays and bad packets (counted by outcome on /metrics) and takes each offer it finds as one that came
directly.

exit-key  prints the exit's public key as 128 hex digits (x || y), what \`veilgrid dso serve --exit-key\`
          takes, and its relay id (8 bytes, hex) on a second line; makes the key in DIR first if there is
          none yet. Give the DSO the key before meters send through the mixnet: a new key file means a new
          directory.

options:
  --broker URL          the broker, e.g. mqtt://127.0.0.1:1883 (required)
  --broker-dir DIR      the broker folder (veilgrid provision --broker-dir): the bridge logs in as user
                        "${BRIDGE_USERNAME}" with the password in DIR/bridge-mqtt.password, made with its broker
                        user if absent (a running mosquitto must then reload its password file). Without
                        it the bridge connects without a login (a broker without access rules)
  --dir DIR             the bridge's folder: its exit key and, unless --db says otherwise, its queue
                        (default: the folder of --db, else ${DEFAULT_DIR})
  --deployment FILE     the market's deployment file (veilgrid ledger serve or deploy writes it; default
                        ${DEFAULT_DEPLOYMENT_FILE} when that file exists). Without one, the bridge runs
                        its own development market in this process (for trying it out only: nothing
                        else can reach that chain)
  --key-file FILE       file holding the relayer account's private key (0x and 64 hex digits); the
                        account pays every transaction's gas and must hold ether. Default: development
                        account 1, whose key is public (only for veilgrid ledger serve's chain). One
                        account per running bridge: two processes sharing it would race for nonces
  --db FILE             the SQLite queue, created if absent; one per market (default DIR/queue.db)
  --http HOST:PORT      where /metrics and /healthz listen (default ${DEFAULT_HTTP}; port 0: any free one)
  --batch-size N        offers per submitOffers transaction, 1..${MAX_BATCH} (default ${MAX_BATCH}; about 96 k gas each
                        under Osaka's 16.8 M cap per transaction)
  --replace-after S     a transaction still pending after S seconds is sent again with 25 % higher fees
                        under the same nonce (default 30)
  --no-clearing         only relay offers and receipts; clearing and settlement are left to others
                        (anyone may call them)
  --mix-window-packets N  onion packets the exit peels per offer window at most (default
                        ${DEFAULT_WINDOW_PACKETS}: a packet per round from each of ${DEFAULT_WINDOW_PACKETS / 2} meters); the rest
                        are dropped unread (window-full). Also bounds the replay tags kept (2 windows)
  --mix-key-budget N    refused or duplicate offers one trading key may cause through the mixnet per
                        offer window (default ${DEFAULT_KEY_BUDGET}); past it they are dropped unanswered
  -h, --help            this text

The MQTT client id is the user name ("bridge" also without --broker-dir) with a persistent session, so
the broker keeps offers while the bridge is down.

environment (tests only):
  VEILGRID_BRIDGE_CRASH_AT=POINT[:N]  the process kills itself (SIGKILL) the N-th time (default 1) it reaches
                        POINT: ${CRASH_POINTS.join(', ')} (test/bridge/bridge-crash.test.ts)`,

  async run(argv) {
    if (argv[0] === 'exit-key') return printExitKey(argv.slice(1));
    const { values } = parseOptions(argv, {
      broker: { type: 'string' },
      'broker-dir': { type: 'string' },
      dir: { type: 'string' },
      'mix-window-packets': { type: 'string' },
      'mix-key-budget': { type: 'string' },
      deployment: { type: 'string' },
      'key-file': { type: 'string' },
      db: { type: 'string' },
      http: { type: 'string' },
      'batch-size': { type: 'string' },
      'replace-after': { type: 'string' },
      'no-clearing': { type: 'boolean' },
    });
    const brokerUrl = values.broker;
    if (!brokerUrl) throw new CliError('--broker URL is required (see --help)');
    if (!/^mqtts?:\/\/[^/]+$/.test(brokerUrl))
      throw new CliError(`--broker must be a URL like mqtt://127.0.0.1:1883, got "${brokerUrl}"`);
    const http = hostPortOption(values.http ?? DEFAULT_HTTP, 'http');
    const batchSize = intOption(values['batch-size'], 'batch-size', MAX_BATCH, 1);
    if (batchSize > MAX_BATCH) throw new CliError(`--batch-size must be at most ${MAX_BATCH}, got ${batchSize}`);
    const replaceAfterMs = intOption(values['replace-after'], 'replace-after', 30, 1) * 1000;
    const mix = {
      windowPackets: intOption(values['mix-window-packets'], 'mix-window-packets', DEFAULT_WINDOW_PACKETS, 1),
      keyBudget: intOption(values['mix-key-budget'], 'mix-key-budget', DEFAULT_KEY_BUDGET, 1),
    };
    const dir = values.dir ?? (values.db ? path.dirname(values.db) : DEFAULT_DIR);
    const relayerKey = values['key-file'] ? readKeyFile(values['key-file']) : developmentKeys(2)[1];
    const deploymentFile =
      values.deployment ?? (fs.existsSync(DEFAULT_DEPLOYMENT_FILE) ? DEFAULT_DEPLOYMENT_FILE : undefined);
    let login: { username: string; password: string } | undefined;
    if (values['broker-dir'])
      login = { username: BRIDGE_USERNAME, password: new BrokerCredentials(values['broker-dir']).ensureBridgeUser() };

    // Listen for the stop signals first, so a signal during start-up still stops cleanly.
    const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    let bridge;
    try {
      let market;
      let relayer;
      if (deploymentFile) {
        market = await openDeployedMarket(deploymentFile, [relayerKey]);
        relayer = market.ledger.accounts[0];
      } else {
        console.error('veilgrid bridge: no deployment file: running a development market in this process');
        const development = await openDevelopmentMarket({
          intervalSeconds: 60,
          startInterval: 10,
          prices: { consumption: 300, production: 100 },
          feeder: { id: 1, production: 10n ** 9n, consumption: 10n ** 9n },
        });
        market = development.market;
        relayer = development.relayer;
      }
      bridge = await startBridge({
        market,
        relayer,
        db: values.db ?? path.join(dir, 'queue.db'),
        exitKey: ensureExitKey(path.join(dir, EXIT_KEY_FILE)),
        mix,
        brokerUrl,
        ...login,
        clientId: login?.username ?? 'bridge',
        http,
        batchSize,
        replaceAfterMs,
        clearing: !values['no-clearing'],
        crashAt: crashAtFromEnvironment(),
      });
    } catch (err) {
      if (
        err instanceof BridgeError ||
        err instanceof BridgeStoreError ||
        err instanceof ExitKeyFileError ||
        err instanceof DeploymentFileError ||
        err instanceof LedgerConnectionError
      )
        throw new CliError(err.message, 1);
      throw err;
    }
    console.error(
      `veilgrid bridge: relaying offers from ${brokerUrl} to ${marketName(bridge)}; metrics on ${bridge.http!.url}/metrics`,
    );
    const signal = await stopSignal;
    await bridge.close();
    const { stats } = bridge;
    console.error(
      `veilgrid bridge: stopped (${signal}); ${stats.received} offers received, ${stats.accepted} on chain, ${Object.values(stats.dropped).reduce((a, b) => a + b, 0)} dropped, ${Object.values(stats.rejectedOnChain).reduce((a, b) => a + b, 0)} refused on chain`,
    );
    return 0;
  },
};

/** `veilgrid bridge exit-key`: the exit's public key for the DSO, and its relay id. */
function printExitKey(argv: string[]): number {
  const { values } = parseOptions(argv, { dir: { type: 'string' } });
  const file = path.join(values.dir ?? DEFAULT_DIR, EXIT_KEY_FILE);
  const existed = fs.existsSync(file);
  let key;
  try {
    key = ensureExitKey(file);
  } catch (err) {
    if (err instanceof ExitKeyFileError) throw new CliError(err.message, 1);
    throw err;
  }
  if (!existed) console.error(`veilgrid bridge: made a new exit key in ${file} (mode 0600)`);
  console.log(exitKeyHex(key));
  console.log(`relay id ${Buffer.from(key.relayId).toString('hex')}`);
  return 0;
}

/** VEILGRID_BRIDGE_CRASH_AT=POINT[:N] (tests only): die by SIGKILL the N-th time (default 1) POINT is reached. */
function crashAtFromEnvironment(): { point: CrashPoint; nth: number } | undefined {
  const setting = process.env.VEILGRID_BRIDGE_CRASH_AT;
  if (!setting) return undefined;
  const [point, nth] = setting.split(':');
  if (!(CRASH_POINTS as readonly string[]).includes(point))
    throw new CliError(`VEILGRID_BRIDGE_CRASH_AT names no crash point: ${point} (known: ${CRASH_POINTS.join(', ')})`);
  return { point: point as CrashPoint, nth: Number(nth ?? 1) };
}

function marketName(bridge: Awaited<ReturnType<typeof startBridge>>): string {
  return bridge.store.meta('market') ?? 'the market';
}
