// `veilgrid broker logins`: what a mosquitto broker needs beside it so that meters can log in with their
// secure element (docs/broker-login.md): the plugin, built here, and the login service it asks.
import fs from 'node:fs';
import { CliError, intOption, parseOptions, type Command } from '../cli/command.ts';
import { BrokerCredentials } from './credentials.ts';
import { startLoginService } from './login-service.ts';
import { loginPluginPath, PluginBuildError } from './mosquitto-plugin.ts';

export const DEFAULT_LOGIN_PORT = 18830;

export const command: Command = {
  help: `usage: veilgrid broker logins --broker-dir DIR [--port PORT]

Checks meter logins for a mosquitto broker. Meters log in with a password their secure element makes
for each connection, which only veilgrid can check: this builds mosquitto's veilgrid_login plugin (needs
gcc and Debian's mosquitto-dev and libmosquitto-dev), prints the lines mosquitto's configuration needs,
and then answers the plugin on 127.0.0.1:PORT until stopped (Ctrl-C, SIGTERM). Each refused login is one
JSON line on stderr with its reason (a replayed login, a login of another meter, an unknown meter). Run
it on the broker's machine, before mosquitto. The testbed's broker (aedes) checks logins itself.

options:
  --broker-dir DIR   the broker folder 'veilgrid provision --broker-dir' writes (meter-logins.db in it)
  --port PORT        where the service listens, on 127.0.0.1 only (default ${DEFAULT_LOGIN_PORT}; 0: any free
                     port, shown in the printed lines)`,

  async run(argv) {
    const { values, positionals } = parseOptions(
      argv,
      { 'broker-dir': { type: 'string' }, port: { type: 'string' } },
      true,
    );
    const [sub] = positionals;
    if (sub !== 'logins') throw new CliError(`unknown subcommand "${sub ?? ''}": use logins (see --help)`);
    if (!values['broker-dir']) throw new CliError('logins needs --broker-dir DIR (see --help)');
    const port = intOption(values.port, 'port', DEFAULT_LOGIN_PORT, 0);
    if (port > 65535) throw new CliError(`--port must be at most 65535, got ${port}`);
    const credentials = new BrokerCredentials(values['broker-dir']);
    if (!fs.existsSync(credentials.meterLoginsFile)) {
      throw new CliError(
        `${credentials.meterLoginsFile} does not exist: --broker-dir must be the folder 'veilgrid provision --broker-dir' writes (the meter logins are made with the first meter)`,
      );
    }
    let pluginPath: string;
    try {
      pluginPath = loginPluginPath();
    } catch (err) {
      if (err instanceof PluginBuildError) throw new CliError(err.message);
      throw err;
    }
    let service;
    try {
      service = await startLoginService({
        check: (username, password) => credentials.checkLogin(username, password),
        port,
      });
    } catch (err) {
      throw new CliError(`cannot listen on 127.0.0.1:${port}: ${(err as Error).message} (choose another with --port)`);
    }
    console.log(
      [
        '# mosquitto configuration lines for this broker folder:',
        ...credentials.mosquittoConfigLines({ pluginPath, port: service.port }),
      ].join('\n'),
    );
    console.error(`veilgrid broker logins: checking meter logins on 127.0.0.1:${service.port} for ${credentials.dir}`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await service.close();
    console.error(`veilgrid broker logins: stopped (${signal})`);
    return 0;
  },
};
