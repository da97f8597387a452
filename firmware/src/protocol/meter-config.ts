// The meter's configuration: JSON text in the Storage file vg.config, written at provisioning (or by
// the testbed) and read at every boot. Pure and device-safe: host tools import it to write configs,
// so there is one definition of the format and of what a valid value is.

import { quote } from './field-problems.ts';
import { meterIdProblem } from './topics.ts';
import { VeilgridError } from './veilgrid-error.ts';

/** Storage file that holds the configuration (JSON text). */
export const CONFIG_FILE = 'vg.config';

export interface MeterConfig {
  /** Appears in MQTT topics and as a database key: see meterIdProblem in protocol/topics.ts. */
  meterId: string;
  broker: { host: string; port: number };
  /**
   * The meter's broker user (its meter id). Without a password the meter logs in with a login its secure
   * element makes for each connection (keys/meter-login.ts): what provisioning sets up. A static password
   * is for brokers without the login check, and anyone who reads it off the LAN can use it.
   */
  mqtt: { username: string; password?: string };
  /** Length of a reading interval; interval index = floor(epoch seconds / intervalSeconds). */
  intervalSeconds: number;
  s0: { importPin: number; exportPin: number; impulsesPerKWh: number; debounceMs: number };
  /** The journal commits at every interval boundary and whenever a register gained commitEveryWh. */
  journal: { commitEveryWh: number };
  /** Absent: the network is already up (the emulator, or a board configured by other means). */
  wifi?: { ssid: string; password: string };
  /**
   * The DSO's P-256 public key, hex of the 65-byte uncompressed point (130 hex digits, "04..."): readings
   * are sealed to it. Absent: the meter meters and journals but sends no readings (it never sends one
   * unsigned or unsealed) and says so on the console.
   */
  dsoPublicKey?: string;
  /** Reading-key rotation period (keys/reading-keys.ts); absent: CONFIG_DEFAULTS.rotationSeconds (a day). */
  keys?: { rotationSeconds: number };
  /**
   * Trading (docs/trading.md): absent, every knob takes its TRADING_DEFAULTS value. A meter trades once
   * it is provisioned and the market info arrives; enabled false keeps it out of the market altogether.
   */
  trading?: TradingConfig;
  /**
   * The mixnet (docs/mixnet.md): enabled, offers travel through two other meters to the bridge and the meter
   * relays others' packets; absent, MIXNET_DEFAULTS. With it enabled and no usable relay directory the meter
   * sends no offer at all, never the direct way.
   */
  mixnet?: MixnetConfig;
  /**
   * The console password (platform/console-lock.ts): at every boot the meter locks its console with it.
   * Absent (an unprovisioned meter): the console stays open, so provisioning can reach it.
   */
  consolePassword?: string;
}

export interface TradingConfig {
  enabled: boolean;
  /** Share of the forecast surplus or deficit to trade, percent (market/forecast.ts). */
  forecastPercent: number;
  /** Wh added to every forecast: positive leans to selling, negative to buying. */
  biasWh: number;
  /** Share of the DSO's price spread kept as margin in the limit price, percent (market/offer-plan.ts). */
  priceMarginPercent: number;
}

export interface MixnetConfig {
  enabled: boolean;
}

/** On: offers go through the mixnet, never on the meter's own topic (off only where a grid has no mixnet). */
export const MIXNET_DEFAULTS: MixnetConfig = { enabled: true };

/** The trading knobs when vg.config leaves them out. */
export const TRADING_DEFAULTS: TradingConfig = {
  enabled: true,
  forecastPercent: 80,
  biasWh: 0,
  priceMarginPercent: 10,
};

/** Values used when an optional field is absent. */
export const CONFIG_DEFAULTS = {
  brokerPort: 1883,
  intervalSeconds: 900,
  debounceMs: 10,
  commitEveryWh: 10,
  rotationSeconds: 86400,
};

/** Hex digits of a 65-byte uncompressed P-256 public key. */
export const DSO_PUBLIC_KEY_HEX_CHARS = 130;

/** Why text cannot be the DSO public key, or undefined when it can (form only: the meter has no EC math). */
export function dsoPublicKeyProblem(text: unknown): string | undefined {
  const expected =
    'dsoPublicKey must be ' + DSO_PUBLIC_KEY_HEX_CHARS + ' hex digits starting 04 (the uncompressed P-256 point)';
  if (typeof text !== 'string') return expected + got(text);
  if (text.length !== DSO_PUBLIC_KEY_HEX_CHARS || text.substring(0, 2) !== '04')
    return expected + ' (got ' + text.length + ' chars starting ' + quote(text.substring(0, 2)) + ')';
  for (let i = 0; i < text.length; i++) {
    if ('0123456789abcdefABCDEF'.indexOf(text.charAt(i)) < 0)
      return expected + ' (character ' + i + ' is not a hex digit)';
  }
  return undefined;
}

/**
 * Espruino types a console password into an input line it stops filling at 20 characters
 * (src/jsinteractive.c jsiHandleConsoleChar), so a longer one could never be entered: the console would
 * stay locked for good. E.setPassword itself takes any length.
 */
export const CONSOLE_PASSWORD_MAX_CHARS = 20;
/** Shorter ones are refused: Espruino does not limit the number of attempts. */
export const CONSOLE_PASSWORD_MIN_CHARS = 12;

/**
 * Why value cannot be the console password, or undefined when it can. Printable ASCII without space
 * (0x21-0x7E): every other byte means something to a terminal or to the console's line editor. The
 * message never contains the value.
 */
export function consolePasswordProblem(value: unknown): string | undefined {
  const expected =
    'consolePassword must be ' +
    CONSOLE_PASSWORD_MIN_CHARS +
    '-' +
    CONSOLE_PASSWORD_MAX_CHARS +
    ' printable ASCII characters without spaces';
  if (typeof value !== 'string') return expected + ' (got a ' + (value === null ? 'null' : typeof value) + ')';
  if (value.length < CONSOLE_PASSWORD_MIN_CHARS || value.length > CONSOLE_PASSWORD_MAX_CHARS)
    return expected + ' (got ' + value.length + ' characters)';
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x21 || code > 0x7e) return expected + ' (character ' + i + ' is not one)';
  }
  return undefined;
}

/**
 * The console password the configuration text names, if it names a valid one; undefined otherwise
 * (no file, not JSON, no or an invalid consolePassword). Looks at nothing else, so a configuration
 * that is wrong elsewhere still locks the console.
 */
export function consolePasswordIn(text: string | undefined): string | undefined {
  if (!text) return undefined;
  let raw: any;
  try {
    raw = JSON.parse(text);
  } catch (_e) {
    return undefined;
  }
  if (raw === null || typeof raw !== 'object') return undefined;
  const value = raw.consolePassword;
  return consolePasswordProblem(value) === undefined ? (value as string) : undefined;
}

/** A configuration that cannot be used; `problems` names every wrong field and what was expected. */
export class ConfigError extends VeilgridError {
  declare readonly problems: string[];
  constructor(problems: string[]) {
    const message = CONFIG_FILE + ': ' + problems.join('; ');
    super('ConfigError', 'config', message);
    this.problems = problems;
  }
}

/** Collects problems while reading fields, so one pass reports all of them. */
class FieldReader {
  declare problems: string[];
  constructor() {
    this.problems = [];
  }

  object(parent: any, key: string, path: string, optional: boolean): any {
    const value = parent[key];
    if (value === undefined && optional) return undefined;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.problems.push(path + ' must be an object' + got(value));
      return undefined;
    }
    return value;
  }

  string(parent: any, key: string, path: string, allowEmpty: boolean): string {
    const value = parent[key];
    if (typeof value !== 'string' || (!allowEmpty && value.length === 0)) {
      // Never echo a secret back onto the console.
      const shown = path.indexOf('password') >= 0 && value !== undefined ? ' (got a ' + typeof value + ')' : got(value);
      this.problems.push(path + ' must be ' + (allowEmpty ? 'a string' : 'a non-empty string') + shown);
      return '';
    }
    return value;
  }

  integer(parent: any, key: string, path: string, min: number, max: number, fallback?: number): number {
    const value = parent[key];
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value !== 'number' || !isFinite(value) || Math.floor(value) !== value || value < min || value > max) {
      this.problems.push(path + ' must be a whole number from ' + min + ' to ' + max + got(value));
      return 0;
    }
    return value;
  }

  onlyKnown(obj: any, known: string[], prefix: string): void {
    for (const key in obj) {
      if (known.indexOf(key) < 0)
        this.problems.push('unknown field ' + prefix + key + ' (known: ' + known.join(', ') + ')');
    }
  }
}

function got(value: any): string {
  if (value === undefined) return ' (missing)';
  const text = typeof value === 'string' ? quote(value) : JSON.stringify(value);
  return ' (got ' + (text.length > 40 ? text.substring(0, 40) + '...' : text) + ')';
}

/**
 * Parses and checks the configuration text. Throws ConfigError naming every wrong field (wrong
 * type, out of range, missing, unknown) or saying that the file is missing or not JSON.
 */
export function parseMeterConfig(text: string | undefined): MeterConfig {
  if (text === undefined || text.length === 0) {
    throw new ConfigError([
      'the file is missing or empty: write the meter configuration (JSON) to Storage file ' + CONFIG_FILE,
    ]);
  }
  let raw: any;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([
      'is not valid JSON (' + (e && (e as Error).message ? (e as Error).message : String(e)) + ')',
    ]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(['must hold a JSON object' + got(raw)]);
  }
  const r = new FieldReader();
  r.onlyKnown(
    raw,
    [
      'meterId',
      'broker',
      'mqtt',
      'intervalSeconds',
      's0',
      'journal',
      'wifi',
      'dsoPublicKey',
      'keys',
      'trading',
      'mixnet',
      'consolePassword',
    ],
    '',
  );

  const meterId = raw.meterId;
  if (typeof meterId !== 'string')
    r.problems.push('meterId must be a string of 1-64 chars from A-Z a-z 0-9 . _ -' + got(meterId));
  else if (meterIdProblem(meterId)) r.problems.push(meterIdProblem(meterId) as string);

  const broker = r.object(raw, 'broker', 'broker', false) || {};
  r.onlyKnown(broker, ['host', 'port'], 'broker.');
  const host = r.string(broker, 'host', 'broker.host', false);
  const port = r.integer(broker, 'port', 'broker.port', 1, 65535, CONFIG_DEFAULTS.brokerPort);

  const mqtt = r.object(raw, 'mqtt', 'mqtt', false) || {};
  r.onlyKnown(mqtt, ['username', 'password'], 'mqtt.');
  const username = r.string(mqtt, 'username', 'mqtt.username', false);
  const password = mqtt.password === undefined ? undefined : r.string(mqtt, 'password', 'mqtt.password', true);

  const intervalSeconds = r.integer(
    raw,
    'intervalSeconds',
    'intervalSeconds',
    1,
    86400,
    CONFIG_DEFAULTS.intervalSeconds,
  );

  const s0 = r.object(raw, 's0', 's0', false) || {};
  r.onlyKnown(s0, ['importPin', 'exportPin', 'impulsesPerKWh', 'debounceMs'], 's0.');
  const importPin = r.integer(s0, 'importPin', 's0.importPin', 0, 48);
  const exportPin = r.integer(s0, 'exportPin', 's0.exportPin', 0, 48);
  if (s0.importPin !== undefined && s0.importPin === s0.exportPin) {
    r.problems.push('s0.importPin and s0.exportPin must be different pins (both are ' + importPin + ')');
  }
  const impulsesPerKWh = r.integer(s0, 'impulsesPerKWh', 's0.impulsesPerKWh', 1, 100000);
  const debounceMs = r.integer(s0, 'debounceMs', 's0.debounceMs', 0, 1000, CONFIG_DEFAULTS.debounceMs);

  const journal = r.object(raw, 'journal', 'journal', true) || {};
  r.onlyKnown(journal, ['commitEveryWh'], 'journal.');
  const commitEveryWh = r.integer(
    journal,
    'commitEveryWh',
    'journal.commitEveryWh',
    1,
    100000,
    CONFIG_DEFAULTS.commitEveryWh,
  );

  const wifiRaw = r.object(raw, 'wifi', 'wifi', true);
  let wifi: MeterConfig['wifi'];
  if (wifiRaw) {
    r.onlyKnown(wifiRaw, ['ssid', 'password'], 'wifi.');
    wifi = {
      ssid: r.string(wifiRaw, 'ssid', 'wifi.ssid', false),
      password: r.string(wifiRaw, 'password', 'wifi.password', true),
    };
  }

  const dsoPublicKey = raw.dsoPublicKey;
  if (dsoPublicKey !== undefined && dsoPublicKeyProblem(dsoPublicKey))
    r.problems.push(dsoPublicKeyProblem(dsoPublicKey) as string);

  const keysRaw = r.object(raw, 'keys', 'keys', true);
  let keys: MeterConfig['keys'];
  if (keysRaw) {
    r.onlyKnown(keysRaw, ['rotationSeconds'], 'keys.');
    keys = {
      rotationSeconds: r.integer(
        keysRaw,
        'rotationSeconds',
        'keys.rotationSeconds',
        60,
        31536000,
        CONFIG_DEFAULTS.rotationSeconds,
      ),
    };
  }

  const tradingRaw = r.object(raw, 'trading', 'trading', true);
  let trading: TradingConfig | undefined;
  if (tradingRaw) {
    r.onlyKnown(tradingRaw, ['enabled', 'forecastPercent', 'biasWh', 'priceMarginPercent'], 'trading.');
    const enabled = tradingRaw.enabled;
    if (enabled !== undefined && typeof enabled !== 'boolean')
      r.problems.push('trading.enabled must be true or false' + got(enabled));
    const d = TRADING_DEFAULTS;
    trading = {
      enabled: enabled === undefined ? d.enabled : enabled === true,
      forecastPercent: r.integer(tradingRaw, 'forecastPercent', 'trading.forecastPercent', 0, 1000, d.forecastPercent),
      biasWh: r.integer(tradingRaw, 'biasWh', 'trading.biasWh', -1000000, 1000000, d.biasWh),
      priceMarginPercent: r.integer(
        tradingRaw,
        'priceMarginPercent',
        'trading.priceMarginPercent',
        0,
        50,
        d.priceMarginPercent,
      ),
    };
  }

  const mixnetRaw = r.object(raw, 'mixnet', 'mixnet', true);
  let mixnet: MixnetConfig | undefined;
  if (mixnetRaw) {
    r.onlyKnown(mixnetRaw, ['enabled'], 'mixnet.');
    const enabled = mixnetRaw.enabled;
    if (enabled !== undefined && typeof enabled !== 'boolean')
      r.problems.push('mixnet.enabled must be true or false' + got(enabled));
    mixnet = { enabled: enabled === undefined ? MIXNET_DEFAULTS.enabled : enabled === true };
  }

  const consolePassword = raw.consolePassword;
  if (consolePassword !== undefined && consolePasswordProblem(consolePassword))
    r.problems.push(consolePasswordProblem(consolePassword) as string);

  if (r.problems.length > 0) throw new ConfigError(r.problems);
  const config: MeterConfig = {
    meterId: meterId as string,
    broker: { host: host, port: port },
    mqtt: password === undefined ? { username: username } : { username: username, password: password },
    intervalSeconds: intervalSeconds,
    s0: { importPin: importPin, exportPin: exportPin, impulsesPerKWh: impulsesPerKWh, debounceMs: debounceMs },
    journal: { commitEveryWh: commitEveryWh },
  };
  if (wifi) config.wifi = wifi;
  if (keys) config.keys = keys;
  if (trading) config.trading = trading;
  if (mixnet) config.mixnet = mixnet;
  if (dsoPublicKey !== undefined) config.dsoPublicKey = (dsoPublicKey as string).toLowerCase();
  if (consolePassword !== undefined) config.consolePassword = consolePassword as string;
  return config;
}
