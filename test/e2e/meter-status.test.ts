// The meter's status topic, end to end: the firmware bundle on an emulated board, an aedes broker
// and MQTT.js subscribers that arrive late. A subscriber that comes after the meter connected finds
// the retained "online"; after a power cut (the board's sockets vanish without DISCONNECT) the
// broker publishes the retained Will, and a subscriber that comes later still finds "offline".
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { CONFIG_FILE, type MeterConfig } from '../../firmware/src/protocol/meter-config.ts';
import { statusTopic } from '../../firmware/src/protocol/topics.ts';

const METER = 'meter-status';
const STATUS = statusTopic(METER);

async function waitFor(cond: () => boolean, what: string, timeoutMs = 20000) {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** What a subscriber arriving now is told about the meter: the retained status message, if any. */
async function lateSubscriberSees(url: string): Promise<{ payload: string; retain: boolean } | 'nothing retained'> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  let timer: NodeJS.Timeout | undefined;
  try {
    const first = new Promise<{ payload: string; retain: boolean } | 'nothing retained'>((resolve) => {
      client.once('message', (_topic, payload, packet) =>
        resolve({ payload: payload.toString('latin1'), retain: packet.retain }),
      );
      // A retained message comes right after SUBACK; this only bounds the wait when there is none.
      timer = setTimeout(() => resolve('nothing retained'), 3000);
    });
    await client.subscribeAsync(STATUS, { qos: 1 });
    return await first;
  } finally {
    clearTimeout(timer);
    await client.endAsync(true);
  }
}

test('a late subscriber finds "online" while the meter is connected and "offline" after a power cut', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-status-'));
  const broker = await startEmbeddedBroker();
  const clock = new SimClock({ speed: 10 });
  const definition = loadBoardDefinition('esp32-meter');
  const board = new Board({ definition, clock, name: METER, flashPath: path.join(work, 'meter.flash') });
  try {
    const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(work, 'esp32-meter.js') });
    const config: MeterConfig = {
      meterId: METER,
      broker: { host: '127.0.0.1', port: broker.port },
      mqtt: { username: METER, password: 'x' },
      intervalSeconds: 60,
      s0: {
        importPin: definition.pins.s0Import,
        exportPin: definition.pins.s0Export,
        impulsesPerKWh: 1000,
        debounceMs: 10,
      },
      journal: { commitEveryWh: 10 },
    };
    board.storage.write('.bootcde', fs.readFileSync(outFile, 'latin1'));
    board.storage.write(CONFIG_FILE, JSON.stringify(config));
    const statuses: { payload: string; retain: boolean; from: string }[] = [];
    broker.aedes.on('publish', (packet, client) => {
      if (packet.topic === STATUS)
        statuses.push({
          payload: packet.payload.toString(),
          retain: packet.retain,
          from: client ? client.id : 'broker',
        });
    });

    board.powerOn();
    await waitFor(() => statuses.some((s) => s.payload === 'online'), 'the meter to publish its status');
    assert.equal(statuses[0], { payload: 'online', retain: true, from: METER });
    assert.equal(await lateSubscriberSees(broker.url), { payload: 'online', retain: true });

    board.powerCut();
    await waitFor(() => statuses.some((s) => s.payload === 'offline'), 'the broker to publish the Will');
    assert.equal(await lateSubscriberSees(broker.url), { payload: 'offline', retain: true });

    board.powerOn(); // back: "online" again, for the next subscriber too
    await waitFor(() => statuses.filter((s) => s.payload === 'online').length >= 2, 'the status after power-on');
    assert.equal(await lateSubscriberSees(broker.url), { payload: 'online', retain: true });
  } finally {
    board.close();
    clock.close();
    await broker.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test.run();
