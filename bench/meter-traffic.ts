// What one meter costs per interval: secure-element commands (counted by the ATECC608 model, by opcode,
// as a bus analyser would) and bytes on the wire (every PUBLISH the meter sends, sized as the MQTT 3.1.1
// packet it is). One emulated meter runs the built firmware, provisioned as in the field, against aedes
// enforcing its credentials, for D simulated days with the configured interval and key rotation.
// Keep --speed at 1000 or below: one millisecond the host waits for a loopback reply is a second of
// virtual time at 1000x, and the meter's 10 s PINGRESP timeout starts to bite well before 5000x.
// Usage: node --import tsx bench/meter-traffic.ts [--days 2] [--interval-seconds 900] [--rotation-seconds 86400] [--speed 1000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqttPacket from 'mqtt-packet';
import { loadBoardDefinition } from '../boards/board-definition.ts';
import { Board } from '../boards/emulator/board.ts';
import { SimClock } from '../boards/emulator/clock.ts';
import { S0PulseSource } from '../boards/emulator/devices/s0-pulse-source.ts';
import { householdImport } from '../boards/emulator/load-profile.ts';
import * as op from '../firmware/src/se/packet.ts';
import { BrokerCredentials } from '../host-tools/broker/credentials.ts';
import { startEmbeddedBroker } from '../host-tools/broker/embedded-broker.ts';
import { buildFirmware } from '../host-tools/build/build-firmware.ts';
import { createDsoKey } from '../host-tools/dso/dso-key.ts';
import { MeterRegistry } from '../host-tools/dso/registry.ts';
import { initOperator, unlockOperatorKey } from '../host-tools/operator/operator-key.ts';
import { inProcessConsole } from '../boards/console/meter-console.ts';
import { provisionMeter } from '../host-tools/provision/provision.ts';

const { values } = parseArgs({
  options: {
    days: { type: 'string', default: '2' },
    'interval-seconds': { type: 'string', default: '900' },
    'rotation-seconds': { type: 'string', default: '86400' },
    speed: { type: 'string', default: '1000' },
  },
});
const days = Number(values.days);
const intervalSeconds = Number(values['interval-seconds']);
const rotationSeconds = Number(values['rotation-seconds']);
const speed = Number(values.speed);

const OPCODE_NAMES: Record<number, string> = {
  [op.OP_READ]: 'Read',
  [op.OP_WRITE]: 'Write',
  [op.OP_NONCE]: 'Nonce',
  [op.OP_LOCK]: 'Lock',
  [op.OP_RANDOM]: 'Random',
  [op.OP_COUNTER]: 'Counter',
  [op.OP_INFO]: 'Info',
  [op.OP_GENKEY]: 'GenKey',
  [op.OP_SIGN]: 'Sign',
  [op.OP_ECDH]: 'ECDH',
  [op.OP_VERIFY]: 'Verify',
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-bench-traffic-'));
const meterId = 'meter-0001';
const definition = loadBoardDefinition('esp32-meter');
const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(dir, 'esp32-meter.js') });
const credentials = new BrokerCredentials(path.join(dir, 'broker'));
credentials.ensureDsoUser();
const broker = await startEmbeddedBroker({ auth: credentials });
const clock = new SimClock({
  speed: 1,
  startEpochSeconds: Math.ceil(1_790_000_000 / intervalSeconds) * intervalSeconds,
});
const board = new Board({ definition, clock, name: meterId, flashPath: path.join(dir, 'meter.flash') });
const registry = new MeterRegistry(':memory:');

/** Per topic kind (readings, keys, status): messages and wire bytes. */
const traffic = new Map<string, { messages: number; bytes: number; payloadBytes: number }>();
broker.aedes.on('publish', (packet, client) => {
  if (client?.id === undefined || !packet.topic.startsWith(`veilgrid/meters/${meterId}/`)) return;
  const kind = packet.topic.slice(`veilgrid/meters/${meterId}/`.length);
  const wire = mqttPacket.generate({
    cmd: 'publish',
    topic: packet.topic,
    payload: packet.payload as Buffer,
    qos: packet.qos,
    messageId: packet.qos > 0 ? 1 : undefined,
    retain: packet.retain,
    dup: false,
  }).length;
  const entry = traffic.get(kind) ?? { messages: 0, bytes: 0, payloadBytes: 0 };
  entry.messages++;
  entry.bytes += wire;
  entry.payloadBytes += packet.payload.length;
  traffic.set(kind, entry);
});

try {
  board.storage.write('.bootcde', fs.readFileSync(outFile, 'latin1'));
  board.powerOn();
  const operatorDir = path.join(dir, 'operator');
  await initOperator({ dir: operatorDir, passphrase: 'bench passphrase' });
  const dsoKey = createDsoKey(path.join(dir, 'dso-key.json'));
  await provisionMeter(
    {
      meterId,
      feeder: 'bench-feeder',
      operatorDir,
      operatorKey: await unlockOperatorKey(operatorDir, 'bench passphrase'),
      dsoDb: registry,
      brokerDir: credentials.dir,
      broker: { host: '127.0.0.1', port: broker.port },
      dsoPublicKey: dsoKey.publicKey,
      intervalSeconds,
      rotationSeconds,
    },
    inProcessConsole(board, meterId),
  );
  // From here on: what the meter does in operation, not what provisioning cost.
  board.secureElement.executedCommands.clear();
  traffic.clear();
  const source = new S0PulseSource({
    board,
    pin: definition.pins.s0Import,
    impulsesPerKWh: 1000,
    profile: householdImport({ seed: 1 }),
  });
  source.start();
  clock.setSpeed(speed);
  const simulated = days * 86400;
  const started = Date.now();
  const t0 = clock.now();
  await new Promise<void>((resolve) => {
    let shownDay = -1;
    const poll = () => {
      const day = Math.floor((clock.now() - t0) / 86400);
      if (day !== shownDay) {
        shownDay = day;
        process.stderr.write(`  simulated day ${Math.min(day, days)}/${days}\n`);
      }
      if (clock.now() - t0 >= simulated) resolve();
      else setTimeout(poll, 200);
    };
    poll();
  });
  source.stop();
  const wallSeconds = (Date.now() - started) / 1000;
  const intervals = simulated / intervalSeconds;
  const readings = traffic.get('readings')?.messages ?? 0;

  console.log(
    `one meter, ${days} simulated days: ${intervals} intervals of ${intervalSeconds} s, key rotation every ${rotationSeconds} s (${wallSeconds.toFixed(0)} s wall)`,
  );
  console.log('');
  console.log('secure-element commands (executed by the ATECC608 model)');
  let total = 0;
  for (const [opcode, count] of [...board.secureElement.executedCommands].sort((a, b) => b[1] - a[1])) {
    total += count;
    console.log(
      `  ${(OPCODE_NAMES[opcode] ?? `0x${opcode.toString(16)}`).padEnd(8)} ${String(count).padStart(6)}  ${(count / intervals).toFixed(2)} per interval`,
    );
  }
  console.log(
    `  total    ${String(total).padStart(6)}  ${(total / intervals).toFixed(2)} per interval, ${(total / Math.max(1, readings)).toFixed(2)} per reading sent`,
  );
  console.log('');
  console.log('MQTT PUBLISH packets from the meter (QoS 1 packet size: fixed header, topic, packet id, payload)');
  let bytes = 0;
  for (const [kind, t] of [...traffic].sort()) {
    bytes += t.bytes;
    console.log(
      `  ${kind.padEnd(9)} ${String(t.messages).padStart(5)} messages  ${(t.payloadBytes / t.messages).toFixed(1).padStart(6)} B payload  ${(t.bytes / t.messages).toFixed(1).padStart(6)} B on the wire each`,
    );
  }
  console.log(`  all      ${(bytes / days).toFixed(0)} B per day, ${(bytes / intervals).toFixed(1)} B per interval`);
} finally {
  board.close();
  clock.close();
  registry.close();
  await broker.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
