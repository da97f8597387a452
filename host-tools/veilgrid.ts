// The `veilgrid` command line: one dispatcher, one module per subcommand in its tool's folder, each loaded only
// when it runs. What every command shares (Command, CliError, option parsing) is in cli/, which imports no command.
import { CliError, type Command } from './cli/command.ts';

const commands: Record<string, () => Promise<{ command: Command }>> = {
  build: () => import('./build/build-command.ts'),
  check: () => import('./build/check-command.ts'),
  emulate: () => import('./emulate/emulate-command.ts'),
  testbed: () => import('./testbed/testbed-command.ts'),
  operator: () => import('./operator/operator-command.ts'),
  provision: () => import('./provision/provision-command.ts'),
  flash: () => import('./flash/flash-command.ts'),
  dso: () => import('./dso/dso-command.ts'),
  broker: () => import('./broker/broker-command.ts'),
  ledger: () => import('./ledger/ledger-command.ts'),
  bridge: () => import('./bridge/bridge-command.ts'),
};

function usage(): string {
  return [
    'usage: veilgrid <command> [options]',
    '',
    'commands:',
    '  build     bundle the meter firmware for a board and check it runs on Espruino',
    '  check     run the Espruino profile check on a JavaScript file',
    '  flash     build, upload to one or many meters at once and check each runs the build',
    '  emulate   run an emulated meter board with an Espruino console on a TCP port',
    '  testbed   run a microgrid of emulated meters against a broker and the DSO collector',
    "  operator  create and show the grid operator's signing key and certificate",
    '  dso       the DSO key meters seal their readings to, and the DSO service that verifies them',
    '  provision give a meter its identity, broker login and DSO registration through its console',
    '  broker    the login service a mosquitto broker asks when meters log in with their secure element',
    '  ledger    a ledger node (anvil) with the market contract deployed, or the market on any EVM node',
    "  bridge    relay meters' offers to the market contract, publish receipts and each interval's clearing",
    '',
    "'veilgrid <command> --help' describes a command's options.",
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    console.error(`veilgrid: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const { command } = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof CliError) {
      console.error(`veilgrid ${name}: ${err.message}`);
      return err.exitCode;
    }
    throw err;
  }
}
