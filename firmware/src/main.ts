// The meter firmware's entry point: wires the platform to configuration, metering and the energy
// journal, readings and MQTT. Nothing here decides metering policy (metering/meter.ts does); this
// file only builds the parts from the configuration and connects them.
//
// Boot: read vg.config (on error: say what is wrong on the console and stay idle, no reboot loop)
// -> open the outbox and the journal -> restore registers and start counting S0 pulses -> join
// Wi-Fi if configured -> MQTT with a Last Will on the status topic. At every interval boundary the
// meter hands over a Reading, which is published with QoS 1 (stored in the outbox first) before
// the journal records the boundary as done.

import { CONFIG_FILE, parseMeterConfig, type MeterConfig } from './config/config.ts';
import { EnergyJournal } from './metering/energy-journal.ts';
import { Meter } from './metering/meter.ts';
import { PulseCounter } from './metering/pulse-counter.ts';
import { MqttClient } from './mqtt/client.ts';
import { Outbox } from './mqtt/outbox.ts';
import { deviceClock } from './platform/device-clock.ts';
import { log } from './platform/console.ts';
import { watchPin } from './platform/gpio.ts';
import { deviceNet } from './platform/net.ts';
import { flashStorage } from './platform/storage.ts';
import { onBoot } from './platform/system.ts';
import { keepWifiJoined, wifiModule } from './platform/wifi.ts';
import { stringToBytes } from './platform/bytes.ts';
import { decodeReading, encodeReading, type Reading } from './readings/reading.ts';
import { readingTopic, statusTopic } from './readings/topics.ts';

/** Firmware version, printed at boot (the build may replace it with a commit hash). */
const VERSION = '0.1.0';

const KEEP_ALIVE_SECONDS = 60;
const WIFI_RETRY_SECONDS = 30;
const SNTP_SERVER = 'pool.ntp.org';

/** This meter's readings still in the outbox (stored, not yet acknowledged by the broker). */
function readingsInOutbox(outbox: Outbox, topic: string): Reading[] {
  const found: Reading[] = [];
  let entry = outbox.first();
  while (entry) {
    if (entry.topic === topic) {
      try {
        found.push(decodeReading(entry.payload));
      } catch (e) {
        log('veilgrid: outbox entry ' + entry.id + ' on ' + topic + ' is not a reading (' + (e as Error).message + '); it is sent as it is');
      }
    }
    entry = outbox.after(entry.id);
  }
  return found;
}

function run(config: MeterConfig): void {
  const storage = flashStorage();
  const clock = deviceClock();
  const outbox = new Outbox(storage);
  const topic = readingTopic(config.meterId);
  const status = statusTopic(config.meterId);
  const client = new MqttClient(
    {
      net: deviceNet(),
      clock: clock,
      host: config.broker.host,
      port: config.broker.port,
      clientId: config.meterId,
      username: config.mqtt.username,
      password: config.mqtt.password,
      keepAliveSeconds: KEEP_ALIVE_SECONDS,
      will: { topic: status, payload: stringToBytes('offline'), qos: 1, retain: false },
      log: function (message) {
        log('mqtt: ' + message);
      },
      onConnect: function () {
        log('mqtt: connected to ' + config.broker.host + ':' + config.broker.port + ', ' + client.pendingCount() + ' message(s) waiting');
        client.publish(status, stringToBytes('online'), 0);
      },
      onDisconnect: function (reason) {
        log('mqtt: disconnected: ' + reason);
      },
    },
    outbox,
  );
  const meter = new Meter({
    meterId: config.meterId,
    intervalSeconds: config.intervalSeconds,
    impulsesPerKWh: config.s0.impulsesPerKWh,
    commitEveryWh: config.journal.commitEveryWh,
    clock: clock,
    journal: new EnergyJournal(storage),
    publish: function (reading) {
      client.publish(topic, encodeReading(reading), 1);
    },
    log: log,
  });
  meter.start(readingsInOutbox(outbox, topic));
  new PulseCounter(watchPin, config.s0.importPin, config.s0.debounceMs, function () {
    meter.importPulse();
  }).start();
  new PulseCounter(watchPin, config.s0.exportPin, config.s0.debounceMs, function () {
    meter.exportPulse();
  }).start();

  const wifi = config.wifi;
  if (!wifi) {
    client.start();
    return;
  }
  let mqttStarted = false;
  keepWifiJoined(wifiModule(), {
    ssid: wifi.ssid,
    password: wifi.password,
    retrySeconds: WIFI_RETRY_SECONDS,
    sntpServer: SNTP_SERVER,
    onUp: function () {
      log('wifi: joined ' + wifi.ssid);
      // The client reconnects by itself after a drop; it only has to be started once.
      if (!mqttStarted) client.start();
      mqttStarted = true;
    },
    onDown: function (reason) {
      log('wifi: ' + reason);
    },
  });
}

function boot(): void {
  log('veilgrid meter firmware ' + VERSION);
  let config: MeterConfig;
  try {
    config = parseMeterConfig(flashStorage().read(CONFIG_FILE));
  } catch (e) {
    // Stay up and idle: the technician can write the file at this console and call load().
    log('veilgrid: config ' + ((e as Error).message || e) + ' -- fix the file (JSON in Storage), then reboot or call load(); nothing runs until then');
    return;
  }
  run(config);
}

onBoot(boot);
