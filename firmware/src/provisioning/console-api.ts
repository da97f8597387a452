// The meter's console entry points, called by the field technician's tool (`veilgrid provision`) and by
// people at the REPL. Each returns a JSON string (the REPL prints it quoted on one line) and never throws;
// what each returns, and the failure form {"code","error"}, are protocol/console-contract.ts.
//
//   vgInfo()        -> MeterInfo
//   vgProvisionSE() -> SeKeys
//   vgRotateKeys()  -> KeyRotation
//
// vgProvisionSE writes our configuration (protocol/se-config-zone.ts) to an unlocked chip and locks it; a
// chip locked with any other configuration is refused (code foreign-se-config). It then makes the
// identity (slot 0) and mix (slot 3) keys and locks the data zone -- or, when the data zone is already
// locked, only reads the public keys back: calling it again returns the same keys. A power cut before
// the data lock leaves keys nobody has seen yet; the next call makes new ones.

import { FIRMWARE_VERSION, BUILD_ID } from '../version.ts';
import { parseMeterConfig } from '../protocol/meter-config.ts';
import { uncompressedPoint } from '../protocol/crypto/p256-point.ts';
import { bytesToHex } from '../protocol/hex.ts';
import { IDENTITY_SLOT, MIX_SLOT } from '../protocol/slot-map.ts';
import { hasProvisioningConfig, provisioningConfig } from '../protocol/se-config-zone.ts';
import type { SecureElement } from '../se/secure-element.ts';
import {
  CONSOLE_FAILURE,
  consoleFailure,
  type KeyRotation,
  type MeterInfo,
  type SeKeys,
  type SeStatus,
} from '../protocol/console-contract.ts';

export interface ConsoleApiDependencies {
  /** The secure element (made on first use: a board without one still answers vgInfo). */
  se: () => SecureElement;
  /** Reads vg.config (for the meter id). */
  readConfig: () => string | undefined;
  /** Forces a reading-key rotation and returns its number; undefined when the meter signs nothing yet. */
  rotateKeys: () => number | undefined;
}

function failureJson(e: unknown): string {
  return consoleFailure(CONSOLE_FAILURE.failed, String((e && (e as Error).message) || e));
}

/** Serial number: config bytes 0-3 and 8-12 (the chip's 9-byte serial), as hex. */
function serialOf(config: Uint8Array): string {
  return bytesToHex(config.subarray(0, 4)) + bytesToHex(config.subarray(8, 13));
}

/** What the secure element says about itself and whether it carries our configuration. */
export function seStatus(se: SecureElement): SeStatus {
  const config = se.readConfigZone();
  const lock = se.lockState();
  return {
    serial: serialOf(config),
    configLocked: lock.config,
    dataLocked: lock.data,
    ours: hasProvisioningConfig(config),
  };
}

/** True when the SE is configured and locked by us, with its keys made: the meter can sign. */
export function seReadyToSign(se: SecureElement): boolean {
  const s = seStatus(se);
  return s.configLocked && s.dataLocked && s.ours;
}

export function consoleInfo(deps: ConsoleApiDependencies): string {
  let meterId: string | null = null;
  try {
    meterId = parseMeterConfig(deps.readConfig()).meterId;
  } catch (_e) {
    meterId = null;
  }
  let se: MeterInfo['se'];
  try {
    se = seStatus(deps.se());
  } catch (e) {
    se = { error: String((e && (e as Error).message) || e) };
  }
  const info: MeterInfo = { firmware: FIRMWARE_VERSION, build: BUILD_ID, meterId: meterId, se: se };
  return JSON.stringify(info);
}

export function consoleProvisionSE(deps: ConsoleApiDependencies): string {
  try {
    const se = deps.se();
    let lock = se.lockState();
    const chipConfig = se.readConfigZone();
    if (lock.config) {
      if (!hasProvisioningConfig(chipConfig)) {
        return consoleFailure(
          CONSOLE_FAILURE.foreignSeConfig,
          "the secure element is locked with a configuration that is not this firmware's: it cannot hold veilgrid keys",
        );
      }
    } else {
      se.writeConfigZone(provisioningConfig(chipConfig));
      se.lockConfig(provisioningConfig(se.readConfigZone()));
      lock = se.lockState();
    }
    let identity: Uint8Array;
    let mix: Uint8Array;
    if (lock.data) {
      identity = se.publicKey(IDENTITY_SLOT);
      mix = se.publicKey(MIX_SLOT);
    } else {
      identity = se.genKey(IDENTITY_SLOT);
      mix = se.genKey(MIX_SLOT);
      se.lockData();
    }
    const keys: SeKeys = {
      serial: serialOf(chipConfig),
      identityKey: bytesToHex(uncompressedPoint(identity)),
      mixKey: bytesToHex(uncompressedPoint(mix)),
    };
    return JSON.stringify(keys);
  } catch (e) {
    return failureJson(e);
  }
}

export function consoleRotateKeys(deps: ConsoleApiDependencies): string {
  try {
    const rotation = deps.rotateKeys();
    if (rotation === undefined) {
      return consoleFailure(
        CONSOLE_FAILURE.notSigning,
        'the meter is not signing readings (no configuration, no dsoPublicKey, or the SE is not provisioned): nothing to rotate',
      );
    }
    const result: KeyRotation = { rotation: rotation };
    return JSON.stringify(result);
  } catch (e) {
    return failureJson(e);
  }
}
