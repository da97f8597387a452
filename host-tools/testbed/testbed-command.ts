// `veilgrid testbed`: the main job — a microgrid of emulated meters reporting to the DSO and trading.
import { CliError, intOption, parseOptions, type Command } from '../cli/command.ts';
import { findMosquitto, MOSQUITTO_MISSING } from '../broker/mosquitto.ts';
import { runTestbed, TESTBED_DEFAULTS, type TestbedProgress, type TestbedSummary } from './testbed.ts';
import { unavailable, type Backend } from '../../boards/harness/meter-board.ts';

const d = TESTBED_DEFAULTS;

export const command: Command = {
  help: `usage: veilgrid testbed [--board vm|espruino-linux] [--meters N] [--intervals K] [--interval-seconds S] [--speed X] [--no-market] [--no-mix] [--json]

Builds the meter firmware, starts an MQTT broker on 127.0.0.1, the DSO (registry, reading verifier,
collector and asset issuance in SQLite), the market contract on an EVM in this process with the bridge,
and N emulated ESP32 meters running the built bundle, each provisioned with keys in its secure element
and fed by S0 pulse sources that follow household load and PV profiles. Every meter trades each
interval: a forecast, assets from the DSO on a fresh trading key, an offer through the bridge, the
clearing. Offers travel through the mixnet of meters (two relays, then the bridge as exit; docs/mixnet.md),
and a passive observer at the broker tries to name each offer's sender from what the broker sees (who
publishes, on which topic, how many bytes, when). Runs K metering intervals of simulated time, then prints
what the DSO received and verified, what was traded, and the mixnet's figures.

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
  --no-market           meter and report only: no ledger, no bridge, no trading
  --no-mix              offers go straight to the bridge on each meter's offer topic, not through the
                        mixnet (the same meters, plan and seed: compare the observer's link rate)
  --relay-outages N     N meters lose power in the middle of a mix round (one per interval), while they
                        hold other meters' packets, and get it back as the round ends: their senders must
                        send again through new paths (default 0; with the market and the mixnet)
  --seed N              seeds the observer's tie-breaks between equally likely senders (default 1)
  --dso-log             print the DSO's JSON log lines on stderr (each rejected reading with its reason)
  --bridge-log          print the bridge's JSON log lines on stderr
  --console-log DIR     append each meter's console output to DIR/<meter id>.log (DIR is made if missing)
  --json                print one JSON object instead of the human summary; with the market it has
                        "mix": {enabled, packets, dummies, delivered, lost, resent, observerLinkRate, chance,
                        relays: {forwarded, dropped, largestBatch, hopLatencyMs}, exit, seCommandsPerMeterInterval}:
                        packets and dummies the meters sent, resent offers, offers that reached the bridge
                        and offers never delivered after resends, the share of offers on chain whose sender
                        the observer named (null with mosquitto: it hooks the in-process broker), 1/N, what
                        the relays forwarded and dropped, the exit's packets by outcome`,

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
      'bridge-log': { type: 'boolean' },
      'console-log': { type: 'string' },
      'no-market': { type: 'boolean' },
      'no-mix': { type: 'boolean' },
      seed: { type: 'string' },
      'relay-outages': { type: 'string' },
    });
    const broker = values.broker ?? 'aedes';
    if (broker !== 'aedes' && broker !== 'mosquitto')
      throw new CliError(`--broker must be aedes or mosquitto, got "${broker}"`);
    if (broker === 'mosquitto' && !findMosquitto()) throw new CliError(`--broker mosquitto: ${MOSQUITTO_MISSING}`);
    const board = values.board ?? 'vm';
    if (board !== 'vm' && board !== 'espruino-linux')
      throw new CliError(`--board must be vm or espruino-linux, got "${board}"`);
    const missing = unavailable(board);
    if (missing) throw new CliError(`--board ${board}: ${missing}`);
    const realTime = board === 'espruino-linux';
    if (realTime && values.speed !== undefined && values.speed !== '1')
      throw new CliError('--board espruino-linux runs in real time: leave out --speed (or give 1)');
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
      market: !values['no-market'],
      mix: !values['no-mix'],
      seed: intOption(values.seed, 'seed', 1, 0),
      relayOutages: intOption(values['relay-outages'], 'relay-outages', 0, 0),
      bridgeLog: values['bridge-log'] ? (line: string) => process.stderr.write(line + '\n') : undefined,
      consoleLogDir: values['console-log'],
    };
    if (!values.json) {
      const simulated = options.intervals * options.intervalSeconds;
      console.log(
        `veilgrid testbed: ${options.meters} meters, ${options.intervals} intervals of ${options.intervalSeconds} s ` +
          `(${simulated} s simulated, about ${Math.ceil(simulated / options.speed)} s at ${options.speed}x)`,
      );
    }
    const summary = await runTestbed(options);
    if (values.json) console.log(JSON.stringify(summary));
    else printSummary(summary);
    return summary.readings.missing === 0 && offersAccountedFor(summary) ? 0 : 1;
  },
};

function progressPrinter(): (p: TestbedProgress) => void {
  const tty = process.stderr.isTTY;
  let last = '';
  return (p) => {
    const line =
      p.phase === 'provisioning'
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
  console.log(
    `readings   ${r.received}/${r.expected} received, ${r.missing} missing, ${r.duplicates} duplicates dropped; ${r.verified} verified by the DSO, ${r.rejected} rejected`,
  );
  console.log(`keys       ${s.keys.rotations} reading keys certified (each meter's first key included)`);
  console.log(
    `energy     import ${s.energy.importWh} Wh, export ${s.energy.exportWh} Wh (S0 sources emitted ${s.emitted.importWh} / ${s.emitted.exportWh} Wh)`,
  );
  console.log(
    `gaps       ${s.gaps.lostSequenceNumbers} lost sequence numbers, ${s.gaps.flaggedReadings} readings flagged by meters`,
  );
  if (s.offers && s.assets && s.clearing) {
    console.log(
      `assets     ${s.assets.requested} requested, ${s.assets.issued} issued, ${s.assets.refused} refused by the DSO`,
    );
    console.log(
      `offers     ${s.offers.sent} reached the bridge, ${s.offers.onChain} on chain, ${s.offers.rejected} refused with a reason`,
    );
    console.log(
      `clearing   ${s.clearing.intervals} intervals cleared with energy traded, ${s.clearing.tradedWh} Wh; gate closure to result p50 ${s.clearing.latencyMs.p50} ms, p99 ${s.clearing.latencyMs.p99} ms`,
    );
  }
  if (s.mix) {
    const m = s.mix;
    console.log(
      `mixnet     ${m.enabled ? 'on' : 'off (--no-mix)'}: ${m.packets} packets sent (${m.dummies} dummies, ${m.resent} resends), ${m.delivered} offers delivered, ${m.lost} lost; relays forwarded ${m.relays.forwarded} (largest batch ${m.relays.largestBatch}), dropped ${m.relays.dropped}`,
    );
    console.log(
      `observer   ${m.observerLinkRate === null ? 'not run (it hooks the in-process aedes broker)' : `named the sender of ${Math.round(m.observerLinkRate * 1000) / 10} % of the offers on chain`}; chance ${Math.round(m.chance * 1000) / 10} %`,
    );
  }
  console.log(
    `time       ${s.simulatedSeconds} s simulated in ${s.wallSeconds} s; metering ran at ${s.achievedSpeed}x`,
  );
  if (r.missing !== 0) console.log('FAILED: readings are missing');
  else if (!offersAccountedFor(s))
    console.log('FAILED: offers reached the bridge that are neither on chain nor refused');
  else
    console.log(
      s.offers
        ? 'ok: every reading arrived, every offer is on chain or refused with a reason'
        : 'ok: every reading arrived',
    );
}

/** Every offer that reached the bridge is on chain or refused with a reason (true without a market). */
export function offersAccountedFor(s: TestbedSummary): boolean {
  return !s.offers || s.offers.onChain + s.offers.rejected === s.offers.sent;
}
