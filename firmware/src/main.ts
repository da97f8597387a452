// The meter firmware's entry point: wires the platform to configuration, metering and the energy
// journal, readings and MQTT. Nothing here decides metering policy (metering/meter.ts does); this
// file only builds the parts from the configuration and connects them.
//
// Boot: read vg.config, turn the network console off and lock the console with the configured console
// password (platform/console-lock.ts) before anything else; then parse vg.config (on error: say what is
// wrong on the console and stay idle, no reboot loop)
// -> open the outbox and the journal -> restore registers and start counting S0 pulses -> join
// Wi-Fi if configured -> MQTT with a Last Will on the status topic. The status topic holds one
// retained message, so a subscriber that arrives at any time learns the meter's state: "online"
// (QoS 1, retained) published on every connect, "offline" (the retained Will) published by the
// broker when the connection dies without a DISCONNECT. At every interval boundary the
// meter hands over a Reading, which is published with QoS 1 (stored in the outbox first) before
// the journal records the boundary as done.
//
// Readings leave the meter only signed (reading key in the secure element) and sealed to the DSO
// (readings/reading-publisher.ts), never in the clear. A meter whose SE is not provisioned, or whose
// configuration has no dsoPublicKey, says so on the console at boot and keeps metering and
// journaling, but sends no readings: each one is logged as not sent (its seq number is used, so the
// DSO sees the gap; the energy stays in the register totals, which the first signed reading carries).
// The console entry points vgInfo, vgProvisionSE, vgRotateKeys (provisioning/console-api.ts) exist
// from boot on, also while the configuration is missing: provisioning needs them first.

import {
  CONFIG_DEFAULTS,
  CONFIG_FILE,
  MIXNET_DEFAULTS,
  TRADING_DEFAULTS,
  consolePasswordIn,
  parseMeterConfig,
  type MeterConfig,
} from './protocol/meter-config.ts';
import { EnergyJournal } from './metering/energy-journal.ts';
import { FlashRing } from './persist/flash-ring.ts';
import { NamedRecords } from './persist/named-records.ts';
import { choosePartition, ringAreas, storageCollision } from './persist/partition.ts';
import { EARLIEST_VALID_EPOCH, Meter } from './metering/meter.ts';
import { PulseCounter } from './metering/pulse-counter.ts';
import { MQTT_CLIENT_DEFAULTS, MqttClient } from './mqtt/client.ts';
import { Outbox } from './mqtt/outbox.ts';
import { deviceBusClock, deviceClock } from './platform/device-clock.ts';
import { log } from './platform/console.ts';
import { watchPin } from './platform/gpio.ts';
import { deviceNet } from './platform/net.ts';
import { flashStorage } from './platform/storage.ts';
import { rawFlash, rawFlashPartitions } from './platform/raw-flash.ts';
import { onBoot, seedRandom } from './platform/system.ts';
import { keepWifiJoined, wifiModule } from './platform/wifi.ts';
import { stringToBytes } from './platform/bytes.ts';
import { BUILD_ID, FIRMWARE_VERSION } from './version.ts';
import { keyCertificateTopic, MARKET_INFO_TOPIC, readingTopic, statusTopic } from './protocol/topics.ts';
import { ReadingKeys } from './keys/reading-keys.ts';
import { hexToBytes } from './protocol/hex.ts';
import { secureElementBus } from './platform/i2c.ts';
import { nativeAes128Ctr, nativeSha256 } from './platform/crypto.ts';
import { meterLoginPassword } from './keys/meter-login.ts';
import { defineConsoleFunction } from './platform/console-globals.ts';
import { secureConsole } from './platform/console-lock.ts';
import { CONSOLE_ENTRY_POINTS } from './protocol/console-contract.ts';
import {
  consoleInfo,
  consoleProvisionSE,
  consoleRotateKeys,
  seReadyToSign,
  type ConsoleApiDependencies,
} from './provisioning/console-api.ts';
import { SecureElement } from './se/secure-element.ts';
import { notedReadings } from './readings/sealed-reading-note.ts';
import { ReadingPublisher } from './readings/reading-publisher.ts';
import { TradingKeys } from './keys/trading-keys.ts';
import { Forecast } from './market/forecast.ts';
import { Trader } from './market/trader.ts';
import { MixNode } from './mixnet/mix-node.ts';
import { startRelayDirectoryStore } from './mixnet/relay-directory-store.ts';
import { kidOf } from './protocol/certificate.ts';
import { uncompressedPoint } from './protocol/crypto/p256-point.ts';
import { decodeMarketInfo } from './protocol/market-info.ts';
import { MIX_SLOT } from './protocol/slot-map.ts';

const KEEP_ALIVE_SECONDS = 60;
const WIFI_RETRY_SECONDS = 30;
const SNTP_SERVER = 'pool.ntp.org';

/** Where the running firmware keeps what the console entry points act on. */
interface Running {
  se: SecureElement | null;
  keys: ReadingKeys | null;
  intervalSeconds: number;
}

const running: Running = { se: null, keys: null, intervalSeconds: 0 };

function secureElement(): SecureElement {
  if (!running.se) running.se = new SecureElement(secureElementBus(), { clock: deviceBusClock() });
  return running.se;
}

function installConsoleApi(): void {
  const deps: ConsoleApiDependencies = {
    se: secureElement,
    readConfig: function () {
      return flashStorage().read(CONFIG_FILE);
    },
    rotateKeys: function () {
      const keys = running.keys;
      if (!keys) return undefined;
      const now = deviceClock().now();
      if (now < EARLIEST_VALID_EPOCH)
        throw new Error('the clock is not set yet (no time from SNTP): try again once it is');
      // From the current interval on; the just-closed interval's reading, if still unsigned, keeps the previous key.
      return keys.rotate(Math.floor(now / running.intervalSeconds)).rotation;
    },
  };
  defineConsoleFunction(CONSOLE_ENTRY_POINTS.info, function () {
    return consoleInfo(deps);
  });
  defineConsoleFunction(CONSOLE_ENTRY_POINTS.provisionSE, function () {
    return consoleProvisionSE(deps);
  });
  defineConsoleFunction(CONSOLE_ENTRY_POINTS.rotateKeys, function () {
    return consoleRotateKeys(deps);
  });
}

/** Why this meter cannot sign readings, or '' when it can. */
function signingProblem(config: MeterConfig): string {
  if (!config.dsoPublicKey) return 'vg.config has no dsoPublicKey';
  try {
    if (!seReadyToSign(secureElement()))
      return 'the secure element is not provisioned (call vgProvisionSE() at this console, or run veilgrid provision)';
  } catch (e) {
    return 'the secure element does not answer (' + ((e as Error).message || e) + ')';
  }
  return '';
}

/** The reading keys, restored, once the meter can sign; null (and why, on the console) otherwise. */
function startReadingKeys(config: MeterConfig, client: MqttClient, records: NamedRecords): ReadingKeys | null {
  const problem = signingProblem(config);
  if (problem) {
    log(
      'veilgrid: ' +
        problem +
        ' -- metering and journaling go on, but no reading is sent (never unsigned) until the meter is provisioned',
    );
    return null;
  }
  const keyTopic = keyCertificateTopic(config.meterId);
  const keys = new ReadingKeys({
    se: secureElement(),
    // On raw flash, not in Storage: a record rewritten at every rotation would one day make Storage compact.
    storage: records,
    sha256: nativeSha256,
    meterId: config.meterId,
    intervalSeconds: config.intervalSeconds,
    rotationSeconds: config.keys ? config.keys.rotationSeconds : CONFIG_DEFAULTS.rotationSeconds,
    publishCertificate: function (certificate) {
      client.publish(keyTopic, certificate, 1, true);
    },
    log: log,
  });
  try {
    keys.restore();
  } catch (e) {
    log('veilgrid: reading keys cannot be restored: ' + ((e as Error).message || e) + ' -- no reading is sent');
    return null;
  }
  return keys;
}

/**
 * The mix node (mixnet/mix-node.ts) and the relay directory it reads from Storage, subscribed before the client
 * starts; null when vg.config leaves the mixnet off. It relays nothing while the outbox sends a backlog (more
 * messages than the client keeps in flight): that is when the meter's memory is at its peak (bench/RESULTS.md).
 */
function startMixNode(config: MeterConfig, client: MqttClient, dsoPublicKey: Uint8Array): MixNode | null {
  if (!(config.mixnet || MIXNET_DEFAULTS).enabled) return null;
  const se = secureElement();
  let relayId: Uint8Array;
  try {
    relayId = kidOf(nativeSha256, uncompressedPoint(se.publicKey(MIX_SLOT)));
  } catch (e) {
    log(
      'mix: no mix key from the secure element (' +
        ((e as Error).message || e) +
        ') -- the meter neither sends nor relays',
    );
    return null;
  }
  const node = new MixNode({
    se: se,
    mixSlot: MIX_SLOT,
    relayId: relayId,
    primitives: { sha256: nativeSha256, aes128Ctr: nativeAes128Ctr },
    directory: startRelayDirectoryStore({
      storage: flashStorage(),
      se: se,
      sha256: nativeSha256,
      dsoPublicKey: dsoPublicKey,
      mqtt: client,
      clock: deviceClock(),
      log: log,
    }),
    mqtt: client,
    clock: deviceClock(),
    busy: function () {
      return client.pendingCount() > MQTT_CLIENT_DEFAULTS.maxInFlight;
    },
    log: log,
  });
  node.start();
  return node;
}

/** A mix node without a trader still follows the market's clock: the rounds need it. */
function followMarketClock(client: MqttClient, node: MixNode): void {
  client.subscribe(MARKET_INFO_TOPIC, 0, function (topic, payload) {
    try {
      node.setMarketClock(decodeMarketInfo(payload));
    } catch (e) {
      log('mix: market info not understood: ' + ((e as Error).message || e));
    }
  });
}

/**
 * The trader (market/trader.ts), subscribed before the client starts; null when vg.config turns trading off.
 * With a mix node its offers go through the mixnet.
 */
function startTrader(
  config: MeterConfig,
  client: MqttClient,
  records: NamedRecords,
  dsoPublicKey: Uint8Array,
  mix: MixNode | null,
): Trader | null {
  const t = config.trading || TRADING_DEFAULTS;
  if (!t.enabled) return null;
  const trader = new Trader({
    meterId: config.meterId,
    se: secureElement(),
    keys: new TradingKeys({ se: secureElement(), storage: records, log: log }),
    forecast: new Forecast({ percent: t.forecastPercent, biasWh: t.biasWh }),
    priceMarginPercent: t.priceMarginPercent,
    dsoPublicKey: dsoPublicKey,
    primitives: { sha256: nativeSha256, aes128Ctr: nativeAes128Ctr },
    clock: deviceClock(),
    mqtt: client,
    mix: mix || undefined,
    log: log,
  });
  trader.start();
  return trader;
}

interface Rings {
  journal: FlashRing;
  records: FlashRing;
  outbox: FlashRing;
}

/** The rings of the journal, the key records and the outbox on the board's raw flash partition (persist/partition.ts). */
function openRings(): Rings {
  const flash = rawFlash();
  const partition = choosePartition(rawFlashPartitions(), flash.getFree());
  const page = flash.getPage(partition.addr);
  if (!page) throw new Error('Flash.getPage(' + partition.addr + ') has no page');
  const collision = storageCollision(partition, flashStorage().getStats(), page.length);
  if (collision) log('veilgrid: ' + collision);
  const areas = ringAreas(partition, page.length);
  return {
    journal: new FlashRing(flash, areas.journal),
    records: new FlashRing(flash, areas.records),
    outbox: new FlashRing(flash, areas.outbox),
  };
}

function run(config: MeterConfig): void {
  const clock = deviceClock();
  let rings: Rings;
  try {
    rings = openRings();
  } catch (e) {
    log('veilgrid: ' + ((e as Error).message || e) + ' -- nothing runs: the journal and outbox have nowhere to live');
    return;
  }
  try {
    // Reconnect jitter must differ between meters: seed Math.random from the secure element's RNG.
    const r = secureElement().random();
    seedRandom(((r[0] * 256 + r[1]) * 256 + r[2]) * 256 + r[3]);
  } catch (e) {
    log('veilgrid: cannot seed the random generator from the secure element: ' + ((e as Error).message || e));
  }
  const outbox = new Outbox(rings.outbox);
  const status = statusTopic(config.meterId);
  const client = new MqttClient(
    {
      net: deviceNet(),
      clock: clock,
      host: config.broker.host,
      port: config.broker.port,
      clientId: config.meterId,
      username: config.mqtt.username,
      password:
        config.mqtt.password !== undefined
          ? config.mqtt.password
          : function () {
              return meterLoginPassword(secureElement(), nativeSha256, config.meterId);
            },
      keepAliveSeconds: KEEP_ALIVE_SECONDS,
      will: { topic: status, payload: stringToBytes('offline'), qos: 1, retain: true },
      log: function (message) {
        log('mqtt: ' + message);
      },
      onConnect: function () {
        log(
          'mqtt: connected to ' +
            config.broker.host +
            ':' +
            config.broker.port +
            ', ' +
            client.pendingCount() +
            ' message(s) waiting',
        );
        try {
          // Through the outbox like a reading, so it goes out after the readings still waiting there.
          client.publish(status, stringToBytes('online'), 1, true);
        } catch (e) {
          log('mqtt: cannot queue the online status: ' + (e as Error).message);
        }
      },
      onDisconnect: function (reason) {
        log('mqtt: disconnected: ' + reason);
      },
    },
    outbox,
  );
  // One NamedRecords for the ring: it writes every name's value in each snapshot (reading and trading keys).
  const records = new NamedRecords(rings.records);
  const keys = startReadingKeys(config, client, records);
  running.keys = keys;
  running.intervalSeconds = config.intervalSeconds;
  const dsoPublicKey = config.dsoPublicKey ? (hexToBytes(config.dsoPublicKey) as Uint8Array) : null;
  const publisher =
    keys && dsoPublicKey
      ? new ReadingPublisher({
          se: secureElement(),
          keys: keys,
          dsoPublicKey: dsoPublicKey,
          primitives: { sha256: nativeSha256, aes128Ctr: nativeAes128Ctr },
          outbox: client,
          topic: readingTopic(config.meterId),
        })
      : null;
  const mix = keys && dsoPublicKey ? startMixNode(config, client, dsoPublicKey) : null;
  const trader = keys && dsoPublicKey ? startTrader(config, client, records, dsoPublicKey, mix) : null;
  if (mix && !trader) followMarketClock(client, mix);
  const meter = new Meter({
    meterId: config.meterId,
    intervalSeconds: config.intervalSeconds,
    impulsesPerKWh: config.s0.impulsesPerKWh,
    commitEveryWh: config.journal.commitEveryWh,
    clock: clock,
    journal: new EnergyJournal(rings.journal),
    publish: function (reading) {
      if (trader) trader.observe(reading, config.intervalSeconds);
      if (publisher) publisher.publish(reading);
      else
        log(
          'veilgrid: reading ' +
            reading.seq +
            ' (interval ' +
            reading.interval +
            ') not sent: the meter is not provisioned',
        );
    },
    log: log,
  });
  meter.start(notedReadings(outbox.notes()));
  new PulseCounter(watchPin, config.s0.importPin, config.s0.debounceMs, function (atSeconds) {
    meter.importPulse(atSeconds);
  }).start();
  new PulseCounter(watchPin, config.s0.exportPin, config.s0.debounceMs, function (atSeconds) {
    meter.exportPulse(atSeconds);
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
  // First of all, before the console reads input and before Wi-Fi: network console off, console locked
  // with the configured password (none: an unprovisioned meter, left open for provisioning).
  const configText = flashStorage().read(CONFIG_FILE);
  const consoleProblem = secureConsole(consolePasswordIn(configText));
  log('veilgrid meter firmware ' + FIRMWARE_VERSION + ' (build ' + BUILD_ID + ')');
  if (consoleProblem) log('veilgrid: ' + consoleProblem);
  installConsoleApi();
  let config: MeterConfig;
  try {
    config = parseMeterConfig(configText);
  } catch (e) {
    // Stay up and idle: the technician can write the file at this console and call load().
    log(
      'veilgrid: config ' +
        ((e as Error).message || e) +
        ' -- fix the file (JSON in Storage), then reboot or call load(); nothing runs until then',
    );
    return;
  }
  run(config);
}

onBoot(boot);
