// The bridge's mix key: the mixnet's exit (docs/bridge.md, "The mixnet's exit") peels the last layer of every
// onion packet with it. The DSO puts its public half in the relay directory's head (`veilgrid dso serve
// --exit-key`), so meters can build packets to it; the private half never leaves the bridge's folder.
//
// exit-key.json (mode 0600): { format: "veilgrid-bridge-exit-key", version: 1, publicKey: hex (64 B, x || y),
//   privateKey: hex (32 B) }. Made on first use; never replaced (every directory names its public key).
import { createECDH } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { kidOf } from '../../firmware/src/protocol/certificate.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';
import { nodeSha256 } from '../crypto/node-primitives.ts';
import { writePrivateFile } from '../operator/operator-key.ts';

export const EXIT_KEY_FILE = 'exit-key.json';
const FORMAT = 'veilgrid-bridge-exit-key';
const VERSION = 1;

export interface ExitKey {
  /** 64 bytes, x || y: what `veilgrid dso serve --exit-key` takes (as 128 hex digits). */
  publicKey: Uint8Array;
  /** 32 bytes. */
  privateKey: Uint8Array;
  /** kidOf(publicKey), 8 bytes: the exit's relay id in the directory. */
  relayId: Uint8Array;
}

export class ExitKeyFileError extends VeilgridError {
  constructor(message: string) {
    super('ExitKeyFileError', 'exit-key-file', message);
  }
}

/** The exit key in file, made (0600, its folder 0700) when the file does not exist yet. */
export function ensureExitKey(file: string): ExitKey {
  if (fs.existsSync(file)) return readExitKey(file);
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const generated = ecdh.getPrivateKey(); // without leading zero bytes: 31 bytes about once in 256
  const privateKey = new Uint8Array(32);
  privateKey.set(generated, 32 - generated.length);
  const key = exitKeyOf(privateKey);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const json = { format: FORMAT, version: VERSION, publicKey: hex(key.publicKey), privateKey: hex(key.privateKey) };
  writePrivateFile(file, JSON.stringify(json, null, 2) + '\n');
  return key;
}

/** Reads and checks an exit key file. */
export function readExitKey(file: string): ExitKey {
  let json: { format?: unknown; version?: unknown; publicKey?: unknown; privateKey?: unknown };
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ExitKeyFileError(
      `cannot read the bridge's exit key file ${file}: ${(err as Error).message} (move it away to make a new key; the DSO must then be given the new public key)`,
    );
  }
  if (!json || json.format !== FORMAT || json.version !== VERSION)
    throw new ExitKeyFileError(
      `${file} is not a veilgrid bridge exit key file (format "${FORMAT}", version ${VERSION})`,
    );
  if (typeof json.privateKey !== 'string' || !/^[0-9a-f]{64}$/.test(json.privateKey))
    throw new ExitKeyFileError(`${file}: privateKey must be 32 bytes of lowercase hex`);
  let key: ExitKey;
  try {
    key = exitKeyOf(new Uint8Array(Buffer.from(json.privateKey, 'hex')));
  } catch {
    throw new ExitKeyFileError(`${file}: privateKey is not a P-256 private key`);
  }
  if (hex(key.publicKey) !== json.publicKey)
    throw new ExitKeyFileError(`${file}: privateKey does not belong to publicKey`);
  return key;
}

/** The public key as `veilgrid dso serve --exit-key` takes it: 128 hex digits, x || y. */
export function exitKeyHex(key: Pick<ExitKey, 'publicKey'>): string {
  return hex(key.publicKey);
}

function exitKeyOf(privateKey: Uint8Array): ExitKey {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(privateKey);
  const publicKey = new Uint8Array(ecdh.getPublicKey().subarray(1));
  return { publicKey, privateKey, relayId: kidOf(nodeSha256, publicKey) };
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
