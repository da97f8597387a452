// What the meter's console entry points return: built by the firmware (provisioning/console-api.ts), read
// by the host tools (provisioning, flashing, the testbed). Each entry point returns one JSON string and
// never throws; a failure is a ConsoleFailure with a code a program can act on and a message for people.

/** The entry points' names: global functions the firmware defines at boot. */
export const CONSOLE_ENTRY_POINTS = { info: 'vgInfo', provisionSE: 'vgProvisionSE', rotateKeys: 'vgRotateKeys' };

/** Why an entry point failed. */
export const CONSOLE_FAILURE = {
  /** The chip's configuration zone is locked with a configuration that is not this firmware's. */
  foreignSeConfig: 'foreign-se-config',
  /** The meter does not sign readings yet (no configuration, no dsoPublicKey, or SE not provisioned). */
  notSigning: 'not-signing',
  /** Anything else went wrong (the SE did not answer, a flash write failed, ...): see the message. */
  failed: 'failed',
};

export interface ConsoleFailure {
  code: string;
  error: string;
}

export interface SeStatus {
  /** 9-byte serial number, hex. */
  serial: string;
  configLocked: boolean;
  dataLocked: boolean;
  /** The configuration zone is this firmware's (protocol/se-config-zone.ts). */
  ours: boolean;
}

/** vgInfo() */
export interface MeterInfo {
  firmware: string;
  /** 16 hex digits, or "dev". */
  build: string;
  /** null before the meter is provisioned (no valid vg.config). */
  meterId: string | null;
  se: SeStatus | { error: string };
}

/** vgProvisionSE() */
export interface SeKeys {
  serial: string;
  /** 65-byte uncompressed public keys, hex. */
  identityKey: string;
  mixKey: string;
}

/** vgRotateKeys() */
export interface KeyRotation {
  rotation: number;
}

/** The JSON text of a failure. */
export function consoleFailure(code: string, message: string): string {
  const failure: ConsoleFailure = { code: code, error: message };
  return JSON.stringify(failure);
}

/** Is a parsed answer a failure? */
export function isConsoleFailure(answer: unknown): answer is ConsoleFailure {
  return answer !== null && typeof answer === 'object' && typeof (answer as ConsoleFailure).error === 'string';
}
