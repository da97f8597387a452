// `veilgrid dso`: the DSO's own key, to which every meter seals its readings, and the DSO service
// that verifies and stores them (dso-service.ts).
import fs from 'node:fs';
import path from 'node:path';
import { BrokerCredentials, DSO_PASSWORD_FILE } from '../broker/credentials.ts';
import { CliError, parseOptions, type Command } from '../cli/command.ts';
import { createDsoKey, DsoKeyError, exportDsoPublicKey, readDsoKey } from './dso-key.ts';
import { DEFAULT_HTTP_PORT, DsoServiceError, startDsoService } from './dso-service.ts';

export const command: Command = {
  help: `usage: veilgrid dso key-init --file FILE
       veilgrid dso key-export --file FILE --out FILE
       veilgrid dso serve --file FILE --dso-db FILE --readings FILE --broker URL --broker-dir DIR
                          [--http HOST:PORT] [--interval-seconds S]

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
               GET /metrics (Prometheus) and GET /healthz.

serve options:
  --dso-db FILE      the registry provisioning writes (veilgrid provision --dso-db)
  --readings FILE    the reading store (SQLite), created if absent
  --broker URL       the broker, e.g. mqtt://127.0.0.1:1883
  --broker-dir DIR   the broker folder provisioning writes; the DSO's MQTT password is in it
  --http HOST:PORT   where /metrics and /healthz listen (default 127.0.0.1:${DEFAULT_HTTP_PORT}; port 0: any free one)
  --interval-seconds S  the grid's metering interval: a reading for an interval that has not ended by
                     the DSO's clock (5 minutes of skew allowed) is refused as out-of-bounds

The service's MQTT client id is its user name, dso, with a persistent session: the broker keeps readings
for it while the service is down. Both brokers tie a client id to its login (see docs/security.md).`,

  async run(argv) {
    const { values, positionals } = parseOptions(argv, {
      file: { type: 'string' },
      out: { type: 'string' },
      'dso-db': { type: 'string' },
      readings: { type: 'string' },
      broker: { type: 'string' },
      'broker-dir': { type: 'string' },
      http: { type: 'string' },
      'interval-seconds': { type: 'string' },
    }, true);
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
  if (!/^mqtts?:\/\/[^/]+$/.test(brokerUrl)) throw new CliError(`--broker must be a URL like mqtt://127.0.0.1:1883, got "${brokerUrl}"`);
  const http = parseHostPort(typeof values.http === 'string' ? values.http : `127.0.0.1:${DEFAULT_HTTP_PORT}`);
  let intervalSeconds: number | undefined;
  if (typeof values['interval-seconds'] === 'string') {
    intervalSeconds = Number(values['interval-seconds']);
    if (!Number.isInteger(intervalSeconds) || intervalSeconds < 1) throw new CliError(`--interval-seconds must be a whole number of seconds ≥ 1, got "${values['interval-seconds']}"`);
  }
  const credentials = new BrokerCredentials(need('broker-dir'));
  const passwordFile = path.join(credentials.dir, DSO_PASSWORD_FILE);
  if (!fs.existsSync(passwordFile)) throw new CliError(`${passwordFile} does not exist: --broker-dir must be the folder 'veilgrid provision --broker-dir' writes (the DSO's broker user is made with the first meter)`);
  let service;
  try {
    service = await startDsoService({
      keyFile,
      registryDb: need('dso-db'),
      readingsDb: need('readings'),
      brokerUrl,
      brokerPassword: credentials.dsoPassword(),
      http,
      intervalSeconds,
    });
  } catch (err) {
    if (err instanceof DsoServiceError) throw new CliError(err.message);
    throw err;
  }
  console.error(`veilgrid dso serve: verifying readings from ${brokerUrl}; metrics on ${service.http.url}/metrics`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const { stats } = service.collector;
  await service.close();
  console.error(`veilgrid dso serve: stopped (${signal}); ${stats.received} readings stored, ${stats.rejected} rejected, ${stats.duplicates} duplicates dropped`);
  return 0;
}

function parseHostPort(text: string): { host: string; port: number } {
  const match = /^([^:]+):(\d+)$/.exec(text);
  if (!match) throw new CliError(`--http must be HOST:PORT, got "${text}"`);
  const port = Number(match[2]);
  if (port > 65535) throw new CliError(`--http port must be at most 65535, got ${port}`);
  return { host: match[1], port };
}
