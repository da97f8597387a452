// `veilgrid testbed`: the main job — a microgrid of emulated meters reporting to the DSO collector.
import { CliError, intOption, parseOptions, type Command } from '../cli/command.ts';
import { findMosquitto, MOSQUITTO_MISSING } from '../broker/mosquitto.ts';
import { runTestbed, TESTBED_DEFAULTS, type TestbedProgress, type TestbedSummary } from './testbed.ts';
import { unavailable, type Backend } from '../../boards/harness/meter-board.ts';

const d = TESTBED_DEFAULTS;

export const command: Command = {
  help: `usage: veilgrid testbed [--board vm|espruino-linux] [--meters N] [--intervals K] [--interval-seconds S] [--speed X] [--json]

Builds the meter firmware, starts an MQTT broker on 127.0.0.1, the DSO (registry, reading verifier,
collector in SQLite) and N emulated ESP32 meters running the built bundle, each provisioned with keys
in its secure element and fed by S0 pulse sources that follow household load and PV profiles. Runs K
metering intervals of simulated time, then prints what the DSO received and verified.

options:
  --board B             what runs each meter's firmware: vm (the emulator, default) or espruino-linux
                        (the real Espruino interpreter, one process per meter, real time: speed 1;
                        docs/hil.md)
  --meters N            emulated meters (default ${d.meters})
  --intervals K         metering intervals to collect (default ${d.intervals})
  --interval-seconds S  length of one interval in simulated seconds (default ${d.intervalSeconds})
  --speed X             simulated seconds per real second (default ${d.speed})
  --impulses N          S0 impulses per kWh of every meter (default ${d.impulsesPerKWh})
  --rotation-seconds S  reading-key rotation period of every meter, simulated seconds (default ${d.rotationSeconds})
  --broker NAME         aedes (in this process, default) or mosquitto (a child process; needs mosquitto installed)
  --work-dir DIR        keep what the run made in DIR: flash images, operator key, broker files, DSO
                        key, registry.db and readings.db (default: a temporary folder, removed);
                        what an earlier run left there is removed first
  --dso-log             print the DSO's JSON log lines on stderr (each rejected reading with its reason)
  --json                print one JSON object instead of the human summary`,

  async run(argv) {
    const { values } = parseOptions(argv, {
      board: { type: 'string' },
      meters: { type: 'string' },
      intervals: { type: 'string' },
      'interval-seconds': { type: 'string' },
      speed: { type: 'string' },
      impulses: { type: 'string' },
      'rotation-seconds': { type: 'string' },
      'work-dir': { type: 'string' },
      broker: { type: 'string' },
      json: { type: 'boolean' },
      'dso-log': { type: 'boolean' },
    });
    const broker = values.broker ?? 'aedes';
    if (broker !== 'aedes' && broker !== 'mosquitto') throw new CliError(`--broker must be aedes or mosquitto, got "${broker}"`);
    if (broker === 'mosquitto' && !findMosquitto()) throw new CliError(`--broker mosquitto: ${MOSQUITTO_MISSING}`);
    const board = values.board ?? 'vm';
    if (board !== 'vm' && board !== 'espruino-linux') throw new CliError(`--board must be vm or espruino-linux, got "${board}"`);
    const missing = unavailable(board);
    if (missing) throw new CliError(`--board ${board}: ${missing}`);
    const realTime = board === 'espruino-linux';
    if (realTime && values.speed !== undefined && values.speed !== '1') throw new CliError('--board espruino-linux runs in real time: leave out --speed (or give 1)');
    const options = {
      board: board as Backend,
      broker: broker as 'aedes' | 'mosquitto',
      meters: intOption(values.meters, 'meters', d.meters, 1),
      intervals: intOption(values.intervals, 'intervals', d.intervals, 1),
      intervalSeconds: intOption(values['interval-seconds'], 'interval-seconds', d.intervalSeconds, 1),
      speed: realTime ? 1 : intOption(values.speed, 'speed', d.speed, 1),
      impulsesPerKWh: intOption(values.impulses, 'impulses', d.impulsesPerKWh, 1),
      rotationSeconds: intOption(values['rotation-seconds'], 'rotation-seconds', d.rotationSeconds, 60),
      workDir: values['work-dir'],
      onProgress: values.json ? undefined : progressPrinter(),
      dsoLog: values['dso-log'] ? (line: string) => process.stderr.write(line + '\n') : undefined,
    };
    if (!values.json) {
      const simulated = options.intervals * options.intervalSeconds;
      console.log(`veilgrid testbed: ${options.meters} meters, ${options.intervals} intervals of ${options.intervalSeconds} s ` +
        `(${simulated} s simulated, about ${Math.ceil(simulated / options.speed)} s at ${options.speed}x)`);
    }
    const summary = await runTestbed(options);
    if (values.json) console.log(JSON.stringify(summary));
    else printSummary(summary);
    return summary.readings.missing === 0 ? 0 : 1;
  },
};

function progressPrinter(): (p: TestbedProgress) => void {
  const tty = process.stderr.isTTY;
  let last = '';
  return (p) => {
    const line = p.phase === 'provisioning'
      ? `  provisioning meters ${p.provisioned}/${p.meters}`
      : `  interval ${p.interval}/${p.intervals} · readings ${p.readingsReceived}/${p.readingsExpected}`;
    if (line === last) return;
    last = line;
    process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
  };
}

function printSummary(s: TestbedSummary): void {
  if (process.stderr.isTTY) process.stderr.write('\n');
  const r = s.readings;
  console.log(`readings   ${r.received}/${r.expected} received, ${r.missing} missing, ${r.duplicates} duplicates dropped; ${r.verified} verified by the DSO, ${r.rejected} rejected`);
  console.log(`keys       ${s.keys.rotations} reading keys certified (each meter's first key included)`);
  console.log(`energy     import ${s.energy.importWh} Wh, export ${s.energy.exportWh} Wh (S0 sources emitted ${s.emitted.importWh} / ${s.emitted.exportWh} Wh)`);
  console.log(`gaps       ${s.gaps.lostSequenceNumbers} lost sequence numbers, ${s.gaps.flaggedReadings} readings flagged by meters`);
  console.log(`time       ${s.simulatedSeconds} s simulated in ${s.wallSeconds} s; metering ran at ${s.achievedSpeed}x`);
  console.log(r.missing === 0 ? 'ok: every reading arrived' : 'FAILED: readings are missing');
}
