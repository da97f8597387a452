// `veilgrid dso`: the DSO's own key, to which every meter seals its readings.
import { CliError, parseOptions, type Command } from '../cli/command.ts';
import { createDsoKey, DsoKeyError, exportDsoPublicKey, readDsoKey } from './dso-key.ts';

export const command: Command = {
  help: `usage: veilgrid dso key-init --file FILE
       veilgrid dso key-export --file FILE --out FILE

Manages the DSO's P-256 key pair. Meters seal every reading to its public key; the DSO opens them with
the private key.

  key-init     creates FILE (mode 0600) with a new key pair; refuses to replace an existing one,
               since every provisioned meter seals its readings to it
  key-export   writes the public half alone to --out, for the machines technicians provision from
               (veilgrid provision --dso-key)`,

  async run(argv) {
    const { values, positionals } = parseOptions(argv, { file: { type: 'string' }, out: { type: 'string' } }, true);
    const [sub] = positionals;
    if (!values.file) throw new CliError('--file is required (see --help)');
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
    throw new CliError(`unknown subcommand "${sub ?? ''}": use key-init or key-export (see --help)`);
  },
};
