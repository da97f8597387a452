// The DSO's P-256 key pair, to which meters seal their readings (sealed-reading.ts): the DSO keeps the
// private half to open them, provisioning writes the public half into each meter's vg.config.
//
// dso-key.json (mode 0600): { format: "veilgrid-dso-key", version: 1, publicKey: hex (65 B, uncompressed),
//   privateKey?: hex (32 B) }. A copy without privateKey (exportDsoPublicKey) is all a field technician
//   needs to provision meters.
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { writePrivateFile } from '../operator/operator-key.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

const FORMAT = 'veilgrid-dso-key';
const VERSION = 1;

export interface DsoKeyFile {
  format: typeof FORMAT;
  version: typeof VERSION;
  publicKey: string;
  privateKey?: string;
}

export interface DsoKey {
  /** 65 bytes, 04 || x || y. */
  publicKey: Uint8Array;
  /** 32 bytes; absent in a public-only file. */
  privateKey?: Uint8Array;
}

export class DsoKeyError extends VeilgridError {
  constructor(message: string) {
    super('DsoKeyError', 'dso-key', message);
  }
}

/** Creates file with a new key pair; refuses to replace an existing one (meters seal to its public key). */
export function createDsoKey(file: string): DsoKey {
  if (fs.existsSync(file))
    throw new DsoKeyError(
      `${file} already exists: refusing to replace the DSO key (every meter seals its readings to it)`,
    );
  const privateKey = p256.utils.randomSecretKey(randomBytes(48));
  const publicKey = p256.getPublicKey(privateKey, false);
  const json: DsoKeyFile = { format: FORMAT, version: VERSION, publicKey: hex(publicKey), privateKey: hex(privateKey) };
  writePrivateFile(file, JSON.stringify(json, null, 2) + '\n');
  return { publicKey, privateKey };
}

/** Writes the public half alone (for provisioning machines). */
export function exportDsoPublicKey(key: DsoKey, file: string): void {
  const json: DsoKeyFile = { format: FORMAT, version: VERSION, publicKey: hex(key.publicKey) };
  writePrivateFile(file, JSON.stringify(json, null, 2) + '\n');
}

/** Reads and checks a DSO key file (with or without the private key). */
export function readDsoKey(file: string): DsoKey {
  let json: any;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new DsoKeyError(`the DSO key file ${file} does not exist (ask the DSO for its public key file)`);
    throw new DsoKeyError(`cannot read the DSO key file ${file}: ${(err as Error).message}`);
  }
  if (!json || json.format !== FORMAT || json.version !== VERSION)
    throw new DsoKeyError(`${file} is not a veilgrid DSO key file (format "${FORMAT}", version ${VERSION})`);
  const publicKey = hexBytes(json.publicKey, 65, `${file}: publicKey`);
  try {
    p256.Point.fromBytes(publicKey).assertValidity();
  } catch {
    throw new DsoKeyError(`${file}: publicKey is not a point on P-256`);
  }
  if (json.privateKey === undefined) return { publicKey };
  const privateKey = hexBytes(json.privateKey, 32, `${file}: privateKey`);
  if (hex(p256.getPublicKey(privateKey, false)) !== json.publicKey)
    throw new DsoKeyError(`${file}: privateKey does not belong to publicKey`);
  return { publicKey, privateKey };
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function hexBytes(value: unknown, length: number, what: string): Uint8Array {
  if (typeof value !== 'string' || value.length !== length * 2 || !/^[0-9a-f]*$/.test(value))
    throw new DsoKeyError(`${what} must be ${length} bytes of lowercase hex`);
  return new Uint8Array(Buffer.from(value, 'hex'));
}
