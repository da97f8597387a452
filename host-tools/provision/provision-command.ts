// `veilgrid provision`: the field technician's tool (provision.ts), from the command line.
import { CliError, intOption, parseOptions, type Command } from '../cli/command.ts';
import { DsoKeyError, readDsoKey } from '../dso/dso-key.ts';
import { PASSPHRASE_ENV, readPassphrase } from '../operator/operator-command.ts';
import { ConsolePasswords, ConsolePasswordStoreError } from './console-passwords.ts';
import { MeterConsoleError, openMeterConsole } from '../../boards/console/meter-console.ts';
import { DEFAULT_LIMITS, ProvisionError, provisionMeter, revokeMeter } from './provision.ts';

const help = `usage: veilgrid provision --port PORT --meter-id ID --feeder F [--limits IMPORT_W,EXPORT_W]
                          --operator-dir DIR --dso-db FILE --broker-dir DIR --broker HOST:PORT --dso-key FILE
                          [--passphrase-file FILE] [--interval-seconds S] [--mixnet on|off] [--rotate] [--replace]
       veilgrid provision --revoke --meter-id ID --dso-db FILE --broker-dir DIR
       veilgrid provision --show-console-password --meter-id ID --operator-dir DIR

Gives a meter its identity through its Espruino console: checks the firmware, has it configure and lock
its ATECC608 secure element and generate the identity and mix keys inside it, issues the device
certificate with the operator key, writes the meter's vg.config (broker, the DSO's public key, interval,
S0 constants, a generated console password) and restarts it, records the meter's broker login in the
broker folder (the meter logs in with a password its secure element makes for each connection:
docs/broker-login.md) and the ACL file, and registers the meter with the DSO — last, so a failure
leaves nothing half-registered (earlier steps are undone). Running it again with the same options changes
nothing.

From its next boot on the meter keeps its network console off and its console locked with its console
password. That password is kept for the operator in DIR/console-passwords.json (--operator-dir, mode
0600) and typed by provision and 'veilgrid flash --meter-id' when the console asks for it; it is never
printed unless asked (--show-console-password).

options:
  --port PORT            the meter's console: a serial device (/dev/ttyUSB0, 115200 baud) or tcp://host:port
                         ('veilgrid emulate'; veilgrid firmware turns Espruino's network console off)
  --meter-id ID          the meter id (A-Z a-z 0-9 . _ -, up to 64 characters); also its MQTT user name
  --feeder F             the feeder the meter is on (goes into its device certificate)
  --limits I,E           maximum import and export power in watts (default ${DEFAULT_LIMITS.maxImportW},${DEFAULT_LIMITS.maxExportW})
  --operator-dir DIR     the operator key folder ('veilgrid operator init')
  --passphrase-file FILE the operator passphrase (first line); otherwise from ${PASSPHRASE_ENV}
  --dso-db FILE          the DSO's registry database (SQLite)
  --broker-dir DIR       the broker folder: meter logins (meter-logins.db), the services' password file
                         (mosquitto.passwd) and the ACL file (mosquitto.acl)
  --broker HOST:PORT     the MQTT broker the meter connects to
  --dso-key FILE         the DSO key file (its public key is written into the meter's configuration)
  --interval-seconds S   reading interval (default: keep the meter's, else 900)
  --mixnet on|off        offers through the mixnet of meters, or straight to the bridge (default: keep the
                         meter's, else the firmware's default)
  --rotate               force a new reading key (and key certificate) now
  --replace              register this board under an id the DSO knows with other keys, or that was revoked
  --revoke               revoke the meter at the DSO and remove its broker credentials (no --port needed)
  --show-console-password  print the meter's stored console password (to type it at its console by hand)
  -h, --help             this text`;

function required(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new CliError(`--${name} is required (see --help)`);
  return value;
}

function parseBroker(text: string): { host: string; port: number } {
  const match = /^([^:]+):(\d+)$/.exec(text);
  if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535)
    throw new CliError(`--broker must be HOST:PORT, got "${text}"`);
  return { host: match[1], port: Number(match[2]) };
}

function parseOnOff(text: string | undefined, name: string): boolean | undefined {
  if (text === undefined) return undefined;
  if (text === 'on' || text === 'off') return text === 'on';
  throw new CliError(`--${name} must be on or off, got "${text}"`);
}

function parseLimits(text: string | undefined) {
  if (text === undefined) return DEFAULT_LIMITS;
  const parts = text.split(',').map((p) => Number(p.trim()));
  if (parts.length !== 2 || parts.some((n) => !Number.isInteger(n) || n < 0))
    throw new CliError(`--limits must be two whole numbers of watts, IMPORT,EXPORT (got "${text}")`);
  return { maxImportW: parts[0], maxExportW: parts[1] };
}

export const command: Command = {
  help,
  async run(argv) {
    const { values } = parseOptions(argv, {
      port: { type: 'string' },
      'meter-id': { type: 'string' },
      feeder: { type: 'string' },
      limits: { type: 'string' },
      'operator-dir': { type: 'string' },
      'passphrase-file': { type: 'string' },
      'dso-db': { type: 'string' },
      'broker-dir': { type: 'string' },
      broker: { type: 'string' },
      'dso-key': { type: 'string' },
      'interval-seconds': { type: 'string' },
      mixnet: { type: 'string' },
      rotate: { type: 'boolean', default: false },
      replace: { type: 'boolean', default: false },
      revoke: { type: 'boolean', default: false },
      'show-console-password': { type: 'boolean', default: false },
    });
    const progress = (line: string) => console.log(`• ${line}`);
    const meterId = required(values['meter-id'], 'meter-id');
    try {
      if (values['show-console-password']) {
        const store = new ConsolePasswords(required(values['operator-dir'], 'operator-dir'));
        const password = store.get(meterId);
        if (password === undefined)
          throw new CliError(`no console password is stored for meter "${meterId}" in ${store.file}`, 1);
        console.log(password);
        return 0;
      }
      if (values.revoke) {
        const result = revokeMeter({
          meterId,
          dsoDb: required(values['dso-db'], 'dso-db'),
          brokerDir: required(values['broker-dir'], 'broker-dir'),
          progress,
        });
        console.log(
          result.wasRegistered
            ? `${meterId} is revoked`
            : `${meterId} was not registered; its broker credentials are gone`,
        );
        return 0;
      }
      const port = required(values.port, 'port');
      const options = {
        meterId,
        feeder: required(values.feeder, 'feeder'),
        limits: parseLimits(values.limits),
        operatorDir: required(values['operator-dir'], 'operator-dir'),
        dsoDb: required(values['dso-db'], 'dso-db'),
        brokerDir: required(values['broker-dir'], 'broker-dir'),
        broker: parseBroker(required(values.broker, 'broker')),
        dsoPublicKey: readDsoKey(required(values['dso-key'], 'dso-key')).publicKey,
        intervalSeconds:
          values['interval-seconds'] === undefined
            ? undefined
            : intOption(values['interval-seconds'], 'interval-seconds', 900, 1),
        mixnet: parseOnOff(values.mixnet, 'mixnet'),
        rotate: values.rotate,
        replace: values.replace,
        passphrase: readPassphrase(values['passphrase-file']),
        progress,
      };
      progress(`connecting to the meter console at ${port}`);
      const meter = await openMeterConsole(port);
      try {
        const result = await provisionMeter(options, meter);
        console.log(
          `${meterId} is provisioned (SE ${result.serial}, DSO registration ${result.registration}${result.rotation === undefined ? '' : `, key rotation ${result.rotation}`})`,
        );
        return 0;
      } finally {
        await meter.close();
      }
    } catch (err) {
      if (
        err instanceof ProvisionError ||
        err instanceof MeterConsoleError ||
        err instanceof DsoKeyError ||
        err instanceof ConsolePasswordStoreError
      )
        throw new CliError(err.message, 1);
      throw err;
    }
  },
};
