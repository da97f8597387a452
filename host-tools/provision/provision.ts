// The field technician's provisioning flow, driving the meter through its console (meter-console.ts):
// firmware check, secure element configured and locked with the identity and mix keys made inside it,
// device certificate issued with the operator key, vg.config written, the meter's broker login (its
// chip's keys) recorded, meter registered with the DSO. The CLI (provision-command.ts) and the testbed
// call the same function.
//
// Order, so that a failure leaves nothing half-registered: everything that can fail without changing
// anything is checked first (operator passphrase, firmware, meter id, SE), then the broker files are
// written, the meter is registered with the DSO, and its vg.config is written last: the meter restarts
// into it and publishes at once, so the DSO must know it by then. If a later step fails, the earlier ones
// are put back as they were (a new registration is removed; a re-provisioning keeps its new registration,
// the old one being gone). The SE lock is the exception: it is one-way by design, harmless on its own (no
// certificate names the keys until registration) and repeating it is a no-op.
//
// Re-running with the same options changes nothing: the same keys come back from the SE, the broker keeps
// the meter's login (its chip's keys) and login counter, vg.config is rewritten (and the meter
// restarted) only when it differs, and the registry keeps the device certificate it already holds.
import fs from 'node:fs';
import { p256 } from '@noble/curves/nist.js';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import {
  CONFIG_DEFAULTS,
  CONFIG_FILE,
  consolePasswordIn,
  parseMeterConfig,
  type MeterConfig,
} from '../../firmware/src/protocol/meter-config.ts';
import {
  decodeDeviceCertificate,
  openSignedCertificate,
  type DeviceLimits,
} from '../../firmware/src/protocol/certificate.ts';
import {
  CONSOLE_ENTRY_POINTS,
  CONSOLE_FAILURE,
  isConsoleFailure,
  type ConsoleFailure,
  type KeyRotation,
  type MeterInfo,
  type SeKeys,
} from '../../firmware/src/protocol/console-contract.ts';
import { meterUserProblem } from '../broker/acl.ts';
import { BrokerCredentials } from '../broker/credentials.ts';
import { MeterRegistry, RegistryError } from '../dso/registry.ts';
import {
  issueDeviceCertificate,
  OperatorKeyError,
  readOperatorCertificate,
  unlockOperatorKey,
  type OperatorKey,
} from '../operator/operator-key.ts';
import { ConsolePasswords, generateConsolePassword, lockedConsoleAdvice } from './console-passwords.ts';
import { MeterConsoleError, type MeterConsole } from '../../boards/console/meter-console.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export const DEFAULT_LIMITS: DeviceLimits = { maxImportW: 17_250, maxExportW: 4_600 };
export const DEFAULT_IMPULSES_PER_KWH = 1000;

export interface ProvisionOptions {
  meterId: string;
  feeder: string;
  limits?: DeviceLimits;
  /** Folder with operator-key.json and operator-cert.cbor (`veilgrid operator init`). */
  operatorDir: string;
  /** Unlocks the operator key; not needed when operatorKey is given. */
  passphrase?: string;
  /** An operator key unlocked already (the testbed provisions many meters with one unlock). */
  operatorKey?: OperatorKey;
  /** The DSO registry: a SQLite file, or an open registry. */
  dsoDb: string | MeterRegistry;
  /** Folder for the mosquitto password and ACL files (broker/credentials.ts). */
  brokerDir: string;
  /** Where the meter connects. */
  broker: { host: string; port: number };
  /** The DSO's public key (65 bytes): readings are sealed to it. */
  dsoPublicKey: Uint8Array;
  /** Force a reading-key rotation (vgRotateKeys) once the meter runs its new configuration. */
  rotate?: boolean;
  /** Accept a new identity for a meter id the DSO knows with other keys (a replaced board), or re-activate a revoked one. */
  replace?: boolean;
  intervalSeconds?: number;
  rotationSeconds?: number;
  impulsesPerKWh?: number;
  /** Offers through the mixnet (vg.config mixnet.enabled); undefined keeps the meter's choice. */
  mixnet?: boolean;
  wifi?: { ssid: string; password: string };
  /** One line per step (default: none). */
  progress?: (line: string) => void;
  nowMs?: number;
}

export interface ProvisionResult {
  meterId: string;
  serial: string;
  identityKey: string;
  mixKey: string;
  registration: 'registered' | 'unchanged' | 'reprovisioned';
  configChanged: boolean;
  rotation?: number;
  deviceCertificate: Uint8Array;
}

/** A provisioning failure the technician can act on; nothing was left half-done. */
export class ProvisionError extends VeilgridError {
  constructor(message: string, code = 'provision', name = 'ProvisionError') {
    super(name, code, message);
  }
}

/** Real-time bound on the firmware answering again after load(). */
const RESTART_TIMEOUT_MS = 20_000;

export const FIRMWARE_TOO_OLD = 'firmware too old: flash it first (veilgrid flash)';

/** An entry point answered with a failure (protocol/console-contract.ts); `code` says which. */
export class EntryPointFailure extends ProvisionError {
  constructor(
    readonly entryPoint: string,
    readonly failure: ConsoleFailure,
  ) {
    super(`${entryPoint}() on the meter: ${failure.error}`, failure.code, 'EntryPointFailure');
  }
}

/** Calls a console entry point that returns a JSON string; a failure it answers becomes an EntryPointFailure. */
async function callEntryPoint<T>(meter: MeterConsole, name: string): Promise<T> {
  const result = await meter.evaluate(`${name}()`);
  if ('error' in result) throw new ProvisionError(`${name}() failed on the meter: ${result.error}`);
  if (typeof result.value !== 'string')
    throw new ProvisionError(
      `${name}() returned ${JSON.stringify(result.value)} instead of JSON text: ${FIRMWARE_TOO_OLD}`,
    );
  const parsed: unknown = JSON.parse(result.value);
  if (isConsoleFailure(parsed)) throw new EntryPointFailure(name, parsed);
  return parsed as T;
}

/** True when the meter's firmware has the provisioning entry points. */
async function hasEntryPoints(meter: MeterConsole, timeoutMs?: number): Promise<boolean> {
  const names = [CONSOLE_ENTRY_POINTS.info, CONSOLE_ENTRY_POINTS.provisionSE, CONSOLE_ENTRY_POINTS.rotateKeys];
  const result = await meter.evaluate(`[${names.map((n) => `typeof ${n}`).join(', ')}].join()`, timeoutMs);
  return 'value' in result && result.value === 'function,function,function';
}

async function readConfigText(meter: MeterConsole): Promise<string | undefined> {
  const result = await meter.evaluate(`require("Storage").read(${JSON.stringify(CONFIG_FILE)})`);
  if ('error' in result) throw new ProvisionError(`cannot read ${CONFIG_FILE} on the meter: ${result.error}`);
  return typeof result.value === 'string' ? result.value : undefined;
}

/** Writes (or with undefined, erases) vg.config and restarts the firmware with load(); waits until it answers again. */
async function writeConfigAndRestart(meter: MeterConsole, text: string | undefined): Promise<void> {
  const write =
    text === undefined
      ? `require("Storage").erase(${JSON.stringify(CONFIG_FILE)})`
      : `require("Storage").write(${JSON.stringify(CONFIG_FILE)},${JSON.stringify(text)})`;
  const written = await meter.evaluate(write);
  if ('error' in written) throw new ProvisionError(`writing ${CONFIG_FILE} on the meter failed: ${written.error}`);
  if (text !== undefined && written.value !== true)
    throw new ProvisionError(
      `writing ${CONFIG_FILE} on the meter failed (Storage.write returned ${JSON.stringify(written.value)}): is its Storage full?`,
    );
  // The firmware locks its console at boot with the password in the file it boots with.
  meter.setConsolePassword(consolePasswordIn(text));
  const loaded = await meter.evaluate('load()');
  if ('error' in loaded) throw new ProvisionError(`restarting the meter (load()) failed: ${loaded.error}`);
  // A line sent while the device restarts may be lost, so each poll has a short bound of its own.
  const deadline = Date.now() + RESTART_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      if (await hasEntryPoints(meter, 2000)) return;
    } catch (err) {
      if (!(err instanceof MeterConsoleError && err.timedOut)) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new ProvisionError(
    `the meter did not come back within ${RESTART_TIMEOUT_MS / 1000} s after load(): check its console output`,
  );
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function publicKeyBytes(text: unknown, what: string): Uint8Array {
  if (typeof text !== 'string' || !/^04[0-9a-fA-F]{128}$/.test(text))
    throw new ProvisionError(`the meter returned a malformed ${what}: ${JSON.stringify(text)}`);
  const bytes = new Uint8Array(Buffer.from(text, 'hex'));
  try {
    p256.Point.fromBytes(bytes).assertValidity();
  } catch {
    throw new ProvisionError(`the meter's ${what} is not a point on P-256`);
  }
  return bytes;
}

function openRegistry(dsoDb: string | MeterRegistry, mustExist = false): { registry: MeterRegistry; close(): void } {
  if (typeof dsoDb !== 'string') return { registry: dsoDb, close() {} };
  if (mustExist && !fs.existsSync(dsoDb)) throw new ProvisionError(`there is no DSO registry at ${dsoDb}`);
  try {
    const registry = new MeterRegistry(dsoDb);
    return { registry, close: () => registry.close() };
  } catch (err) {
    throw new ProvisionError(`the DSO registry ${dsoDb} is unreachable: ${(err as Error).message}`);
  }
}

export async function provisionMeter(options: ProvisionOptions, meter: MeterConsole): Promise<ProvisionResult> {
  const progress = options.progress ?? (() => {});
  const problem = meterUserProblem(options.meterId);
  if (problem) throw new ProvisionError(problem);
  if (options.feeder.length === 0) throw new ProvisionError('--feeder must name the feeder the meter is on');
  const limits = options.limits ?? DEFAULT_LIMITS;

  // 1. Local checks that change nothing.
  progress('unlocking the operator key');
  let operator = options.operatorKey;
  if (!operator) {
    if (options.passphrase === undefined) throw new ProvisionError('no operator passphrase given');
    try {
      operator = await unlockOperatorKey(options.operatorDir, options.passphrase);
    } catch (err) {
      if (err instanceof OperatorKeyError) throw new ProvisionError(`operator key: ${err.message}`);
      throw err;
    }
  }
  const operatorCertificate = readOperatorCertificate(options.operatorDir);

  // 2. The meter: firmware, identity, secure element. Its console is locked once it was provisioned.
  const consolePasswords = new ConsolePasswords(options.operatorDir);
  const storedConsolePassword = consolePasswords.get(options.meterId);
  meter.setConsolePassword(storedConsolePassword);
  progress(`checking the firmware on ${meter.address}`);
  let entryPoints: boolean;
  try {
    entryPoints = await hasEntryPoints(meter);
  } catch (err) {
    if (err instanceof MeterConsoleError && err.locked)
      throw new ProvisionError(lockedConsoleAdvice(err.locked, options.meterId, consolePasswords.file));
    throw err;
  }
  if (!entryPoints) throw new ProvisionError(FIRMWARE_TOO_OLD);
  const info = await callEntryPoint<MeterInfo>(meter, CONSOLE_ENTRY_POINTS.info);
  progress(
    `firmware ${info.firmware} (build ${info.build})${info.meterId ? `, provisioned as ${info.meterId}` : ', not provisioned'}`,
  );
  if (info.meterId !== null && info.meterId !== options.meterId) {
    throw new ProvisionError(
      `this meter is provisioned as "${info.meterId}", not "${options.meterId}": provision it under its own id, or revoke "${info.meterId}" (veilgrid provision --revoke) and erase its configuration first (require("Storage").erase("${CONFIG_FILE}") at its console)`,
    );
  }
  if ('error' in info.se) throw new ProvisionError(`the meter cannot talk to its secure element: ${info.se.error}`);
  if (info.se.configLocked && !info.se.ours)
    throw new ProvisionError(
      `the secure element (serial ${info.se.serial}) is locked with a foreign configuration: it cannot hold veilgrid keys; replace it`,
    );

  progress('configuring the secure element and generating the identity and mix keys in it');
  let keys: SeKeys;
  try {
    keys = await callEntryPoint<SeKeys>(meter, CONSOLE_ENTRY_POINTS.provisionSE);
  } catch (err) {
    if (err instanceof EntryPointFailure && err.failure.code === CONSOLE_FAILURE.foreignSeConfig) {
      throw new ProvisionError(
        'the secure element is locked with a foreign configuration: it cannot hold veilgrid keys; replace it',
      );
    }
    throw err;
  }
  const identityKey = publicKeyBytes(keys.identityKey, 'identity key');
  const mixKey = publicKeyBytes(keys.mixKey, 'mix key');
  progress(
    `secure element ${keys.serial}: identity key ${keys.identityKey.slice(2, 18)}…, mix key ${keys.mixKey.slice(2, 18)}…`,
  );

  // 3. Configuration, broker credentials and the DSO registration, each undone if a later step fails.
  const credentials = new BrokerCredentials(options.brokerDir);
  const previousText = await readConfigText(meter);
  let previous: MeterConfig | undefined;
  try {
    previous = parseMeterConfig(previousText);
  } catch {
    previous = undefined;
  }
  // The console password: the stored one (it opened the console), else the one the meter has, else new.
  const consolePassword = storedConsolePassword ?? previous?.consolePassword ?? generateConsolePassword();
  const pins = loadBoardDefinition('esp32-meter').pins;
  const config: MeterConfig = {
    meterId: options.meterId,
    broker: options.broker,
    // No password: the meter logs in with its secure element (keys/meter-login.ts).
    mqtt: { username: options.meterId },
    intervalSeconds: options.intervalSeconds ?? previous?.intervalSeconds ?? CONFIG_DEFAULTS.intervalSeconds,
    s0: previous?.s0 ?? {
      importPin: pins.s0Import,
      exportPin: pins.s0Export,
      impulsesPerKWh: DEFAULT_IMPULSES_PER_KWH,
      debounceMs: CONFIG_DEFAULTS.debounceMs,
    },
    journal: previous?.journal ?? { commitEveryWh: CONFIG_DEFAULTS.commitEveryWh },
    dsoPublicKey: hex(options.dsoPublicKey),
    consolePassword,
  };
  if (options.impulsesPerKWh !== undefined) config.s0 = { ...config.s0, impulsesPerKWh: options.impulsesPerKWh };
  const rotationSeconds = options.rotationSeconds ?? previous?.keys?.rotationSeconds;
  if (rotationSeconds !== undefined) config.keys = { rotationSeconds };
  const mixnet = options.mixnet ?? previous?.mixnet?.enabled;
  if (mixnet !== undefined) config.mixnet = { enabled: mixnet };
  const wifi = options.wifi ?? previous?.wifi;
  if (wifi) config.wifi = wifi;
  const configText = JSON.stringify(config);
  try {
    parseMeterConfig(configText);
  } catch (err) {
    throw new ProvisionError(`the configuration would be refused by the meter: ${(err as Error).message}`);
  }

  const undo: Array<{ what: string; run: () => Promise<void> | void }> = [];
  let result: ProvisionResult;
  let registration: { outcome: ProvisionResult['registration']; certificate: Uint8Array };
  try {
    progress(`letting ${options.meterId} log in to the broker with its secure element (${options.brokerDir})`);
    const snapshot = credentials.snapshot();
    undo.push({ what: 'broker credentials', run: () => credentials.restore(snapshot) });
    if (credentials.addMeterLogin(options.meterId, identityKey, mixKey)) {
      undo.push({
        what: 'the meter login',
        run: () => {
          credentials.withMeterLogins((logins) => logins.remove(options.meterId));
        },
      });
    }
    // A static password from before this meter logged in with its chip: its old vg.config holds it.
    credentials.removePassword(options.meterId);

    // The DSO registration, before the meter runs with its new configuration: the key certificate and
    // readings it publishes at once must find it registered (the DSO drops what an unknown meter sends).
    progress('registering the meter with the DSO');
    const { registry, close } = openRegistry(options.dsoDb);
    try {
      registry.trustOperator(operatorCertificate, options.nowMs);
      const existing = registry.meter(options.meterId);
      let certificate: Uint8Array;
      if (
        existing &&
        existing.status === 'active' &&
        sameDevice(existing.deviceCertificate, operator, options.feeder, identityKey, mixKey, limits)
      ) {
        certificate = existing.deviceCertificate;
      } else {
        if (existing && !options.replace) {
          const why =
            existing.status === 'revoked'
              ? 'was revoked'
              : 'is registered with other keys, feeder or limits (another board, or a re-issued certificate)';
          throw new ProvisionError(
            `meter "${options.meterId}" ${why} at the DSO: pass --replace to register this board under that id anyway`,
          );
        }
        certificate = issueDeviceCertificate(operator, {
          meterId: options.meterId,
          feeder: options.feeder,
          identityKey,
          mixKey,
          limits,
          issuedAt: Math.floor((options.nowMs ?? Date.now()) / 1000),
        });
      }
      const { outcome } = registry.registerMeter(certificate, { reprovision: options.replace, nowMs: options.nowMs });
      progress(`DSO registration: ${outcome}`);
      if (outcome === 'registered')
        undo.push({ what: 'the DSO registration', run: () => removeRegistration(options.dsoDb, options.meterId) });
      registration = { outcome, certificate };
    } catch (err) {
      if (err instanceof RegistryError)
        throw new ProvisionError(`the DSO refused the meter (${err.reason}): ${err.message}`);
      throw err;
    } finally {
      close();
    }

    // Stored before the meter can lock with it, and kept whatever fails later: a stored password the meter
    // does not use yet harms nothing, one the meter uses and nobody holds locks the operator out.
    consolePasswords.set(options.meterId, consolePassword);
    const configChanged = configText !== previousText;
    if (configChanged) {
      progress(`writing ${CONFIG_FILE} and restarting the meter`);
      undo.push({ what: `the meter's ${CONFIG_FILE}`, run: () => writeConfigAndRestart(meter, previousText) });
      await writeConfigAndRestart(meter, configText);
      const after = await callEntryPoint<MeterInfo>(meter, CONSOLE_ENTRY_POINTS.info);
      if (after.meterId !== options.meterId)
        throw new ProvisionError(
          `the meter restarted but reports meter id ${JSON.stringify(after.meterId)}, not "${options.meterId}": check its console output`,
        );
    } else {
      progress(`${CONFIG_FILE} is up to date`);
    }

    result = {
      meterId: options.meterId,
      serial: keys.serial,
      identityKey: keys.identityKey,
      mixKey: keys.mixKey,
      registration: registration.outcome,
      configChanged,
      deviceCertificate: registration.certificate,
    };
  } catch (err) {
    for (const step of undo.reverse()) {
      progress(`undoing: ${step.what}`);
      try {
        await step.run();
      } catch (undoErr) {
        progress(`could not undo ${step.what}: ${(undoErr as Error).message}`);
      }
    }
    throw err;
  }

  // 4. Re-keying is not part of the registration: a failure here leaves the meter provisioned.
  if (options.rotate) {
    progress('rotating the reading key');
    try {
      result.rotation = (await callEntryPoint<KeyRotation>(meter, CONSOLE_ENTRY_POINTS.rotateKeys)).rotation;
    } catch (err) {
      throw new ProvisionError(
        `the meter is provisioned and registered, but rotating its reading key failed: ${(err as Error).message}`,
      );
    }
    progress(`reading key rotation ${result.rotation}`);
  }
  return result;
}

function removeRegistration(dsoDb: string | MeterRegistry, meterId: string): void {
  const { registry, close } = openRegistry(dsoDb);
  try {
    registry.removeMeter(meterId);
  } finally {
    close();
  }
}

/** Does the registered certificate say what a new one would (so re-running keeps it)? */
function sameDevice(
  certBytes: Uint8Array,
  operator: OperatorKey,
  feeder: string,
  identityKey: Uint8Array,
  mixKey: Uint8Array,
  limits: DeviceLimits,
): boolean {
  const opened = openSignedCertificate(certBytes);
  const cert = decodeDeviceCertificate(opened.payload);
  return (
    hex(opened.kid) === hex(operator.kid) &&
    cert.operatorId === operator.operatorId &&
    cert.feeder === feeder &&
    hex(cert.identityKey) === hex(identityKey) &&
    hex(cert.mixKey) === hex(mixKey) &&
    cert.limits.maxImportW === limits.maxImportW &&
    cert.limits.maxExportW === limits.maxExportW
  );
}

export interface RevokeOptions {
  meterId: string;
  dsoDb: string | MeterRegistry;
  brokerDir: string;
  reason?: string;
  progress?: (line: string) => void;
  nowMs?: number;
}

/** Revokes the meter at the DSO (its readings are refused from now on), then removes its broker user. */
export function revokeMeter(options: RevokeOptions): { wasRegistered: boolean; removedBrokerUser: boolean } {
  const progress = options.progress ?? (() => {});
  // Revoking a service's name would remove that service's broker login.
  const problem = meterUserProblem(options.meterId);
  if (problem) throw new ProvisionError(problem);
  const { registry, close } = openRegistry(options.dsoDb, true);
  let wasRegistered: boolean;
  try {
    progress(`revoking ${options.meterId} at the DSO`);
    wasRegistered = registry.meter(options.meterId) !== undefined;
    if (wasRegistered)
      registry.revoke(options.meterId, options.reason ?? 'revoked by veilgrid provision --revoke', options.nowMs);
    else progress(`${options.meterId} is not registered at the DSO`);
  } finally {
    close();
  }
  progress(`removing the broker credentials of ${options.meterId}`);
  const removedBrokerUser = new BrokerCredentials(options.brokerDir).removeUser(options.meterId);
  return { wasRegistered, removedBrokerUser };
}
