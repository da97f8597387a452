// The large fuzz run (issue 8): mutated readings, key certificates, broker logins and MQTT packets through the DSO's
// decode path and the MQTT stream decoder (test/fuzz/dso-fuzz.ts), printing what happened.
//   node --import tsx bench/fuzz-dso.ts [count=100000] [seed=1]
import os from 'node:os';
import { runDsoFuzz } from '../test/fuzz/dso-fuzz.ts';

const count = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? 1);
const figures = runDsoFuzz(count, seed);
console.log(
  `DSO fuzz: ${figures.inputs} inputs (seed ${seed}) in ${figures.seconds.toFixed(1)} s on ${os.cpus().length} CPUs, Node ${process.version}`,
);
console.log(
  `  readings          ${figures.readings.inputs} (refused ${figures.readings.refused}, accepted ${figures.readings.accepted})`,
);
console.log(
  `  key certificates  ${figures.keyCertificates.inputs} (refused ${figures.keyCertificates.refused}, accepted ${figures.keyCertificates.accepted})`,
);
console.log(
  `  broker logins     ${figures.logins.inputs} (refused ${figures.logins.refused}, accepted ${figures.logins.accepted})`,
);
console.log(
  `  MQTT packet pairs ${figures.mqttPackets.inputs} (refused ${figures.mqttPackets.refused}, decoded ${figures.mqttPackets.decoded})`,
);
console.log(
  `  exceptions escaping ${figures.escapedExceptions}, forgeries accepted ${figures.acceptedForgeries}, slowest input ${figures.slowestInputMs.toFixed(1)} ms`,
);
for (const problem of figures.firstProblems) console.log(`  ${problem}`);
process.exitCode = figures.escapedExceptions + figures.acceptedForgeries === 0 ? 0 : 1;
