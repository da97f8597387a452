// The operator's signing key (P-256), kept on disk encrypted with a passphrase, and its self-signed
// OperatorCertificate. The operator key signs every meter's DeviceCertificate at provisioning, so it is
// the root of the DSO's trust in a meter: it never leaves this file unencrypted.
//
// operator-key.json (mode 0600):
//   { format: "veilgrid-operator-key", version: 1, operatorId, publicKey (hex, 65 B uncompressed), kid (hex, 8 B),
//     createdAt (ISO time), kdf: { name: "scrypt", N, r, p, salt (hex, 16 B) },
//     cipher: { name: "aes-256-gcm", nonce (hex, 12 B) }, ciphertext (hex, the 32-byte private key), tag (hex, 16 B) }
// The AES key is scrypt(passphrase, salt, N, r, p) (32 bytes). Every field except ciphertext and tag is
// bound to the ciphertext as GCM additional data, so changing any of them (say, swapping in another public
// key or lowering N) makes unlocking fail exactly as a wrong passphrase does.
// operator-cert.cbor: the OperatorCertificate (COSE_Sign1, ES256), public, for the DSO's trust list.
import {
  createCipheriv,
  createDecipheriv,
  randomBytes,
  scrypt as scryptCallback,
  type ScryptOptions,
} from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import {
  CertificateFormatError,
  decodeOperatorCertificate,
  encodeDeviceCertificate,
  encodeOperatorCertificate,
  kidOf,
  openSignedCertificate,
  signedCertificate,
  type DeviceCertificate,
  type OperatorCertificate,
} from '../../firmware/src/protocol/certificate.ts';
import { nodeSha256 } from '../crypto/node-primitives.ts';
import { VeilgridError } from '../../firmware/src/protocol/veilgrid-error.ts';

export const OPERATOR_KEY_FILE = 'operator-key.json';
export const OPERATOR_CERT_FILE = 'operator-cert.cbor';

const FORMAT = 'veilgrid-operator-key';
const VERSION = 1;
/** scrypt cost: 2^15 is the floor (OWASP's recommendation for scrypt with r=8, p=1); files may record more. */
export const MIN_SCRYPT_N = 2 ** 15;
/** Refuse files asking for more than this: an altered file must not make unlocking take minutes or GBs. */
const MAX_SCRYPT_N = 2 ** 20;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
export const MIN_PASSPHRASE_LENGTH = 8;

export interface OperatorKeyFile {
  format: typeof FORMAT;
  version: typeof VERSION;
  operatorId: string;
  publicKey: string;
  kid: string;
  createdAt: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: { name: 'aes-256-gcm'; nonce: string };
  ciphertext: string;
  tag: string;
}

/** An unlocked operator key. */
export interface OperatorKey {
  operatorId: string;
  /** 65 bytes, uncompressed (04 || x || y). */
  publicKey: Uint8Array;
  /** First 8 bytes of SHA-256 of publicKey: the COSE kid of everything this key signs. */
  kid: Uint8Array;
  /** ES256 over a 32-byte digest: 64 bytes r || s. */
  signDigest(digest: Uint8Array): Uint8Array;
}

export class OperatorKeyError extends VeilgridError {
  constructor(message: string) {
    super('OperatorKeyError', 'operator-key', message);
  }
}

export const WRONG_PASSPHRASE = 'wrong passphrase (or the key file was altered)';

function scrypt(passphrase: string, salt: Uint8Array, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 256 * params.N * params.r + 1024 * 1024,
  };
  return new Promise((resolve, reject) =>
    scryptCallback(passphrase.normalize('NFC'), salt, 32, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** The additional authenticated data: every header field, in a fixed order, as a JSON array. */
function headerAad(file: OperatorKeyFile): Buffer {
  const { format, version, operatorId, publicKey, kid, createdAt, kdf, cipher } = file;
  return Buffer.from(
    JSON.stringify([
      format,
      version,
      operatorId,
      publicKey,
      kid,
      createdAt,
      kdf.name,
      kdf.N,
      kdf.r,
      kdf.p,
      kdf.salt,
      cipher.name,
      cipher.nonce,
    ]),
    'utf8',
  );
}

export function passphraseProblem(passphrase: string): string | undefined {
  if (passphrase.length < MIN_PASSPHRASE_LENGTH)
    return `the passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters long`;
  return undefined;
}

/** Encrypts a fresh or given P-256 private key under passphrase; returns the file's contents. */
export async function sealOperatorKey(options: {
  operatorId: string;
  privateKey: Uint8Array;
  kid: Uint8Array;
  passphrase: string;
  scryptN?: number;
  createdAt?: Date;
}): Promise<OperatorKeyFile> {
  const problem = passphraseProblem(options.passphrase);
  if (problem) throw new OperatorKeyError(problem);
  const N = options.scryptN ?? MIN_SCRYPT_N;
  if (N < MIN_SCRYPT_N || N > MAX_SCRYPT_N || (N & (N - 1)) !== 0)
    throw new OperatorKeyError(`scrypt N must be a power of two from 2^15 to 2^20 (got ${N})`);
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const file: OperatorKeyFile = {
    format: FORMAT,
    version: VERSION,
    operatorId: options.operatorId,
    publicKey: Buffer.from(p256.getPublicKey(options.privateKey, false)).toString('hex'),
    kid: Buffer.from(options.kid).toString('hex'),
    createdAt: (options.createdAt ?? new Date()).toISOString(),
    kdf: { name: 'scrypt', N, r: SCRYPT_R, p: SCRYPT_P, salt: salt.toString('hex') },
    cipher: { name: 'aes-256-gcm', nonce: nonce.toString('hex') },
    ciphertext: '',
    tag: '',
  };
  const key = await scrypt(options.passphrase, salt, file.kdf);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(headerAad(file));
  file.ciphertext = Buffer.concat([cipher.update(options.privateKey), cipher.final()]).toString('hex');
  file.tag = cipher.getAuthTag().toString('hex');
  key.fill(0);
  return file;
}

function hexField(value: unknown, name: string, bytes: number): Buffer {
  if (typeof value !== 'string' || value.length !== bytes * 2 || !/^[0-9a-f]*$/.test(value)) {
    throw new OperatorKeyError(`operator key file: ${name} must be ${bytes} bytes of lowercase hex`);
  }
  return Buffer.from(value, 'hex');
}

/** Checks the file's shape (not its secrets): a clear error for a file that is not an operator key. */
export function parseOperatorKeyFile(text: string): OperatorKeyFile {
  let json: any;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new OperatorKeyError(`operator key file is not JSON: ${(err as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || json.format !== FORMAT)
    throw new OperatorKeyError(`not a veilgrid operator key file (format must be "${FORMAT}")`);
  if (json.version !== VERSION)
    throw new OperatorKeyError(
      `operator key file version ${JSON.stringify(json.version)} is not supported (this tool reads version ${VERSION})`,
    );
  if (typeof json.operatorId !== 'string' || json.operatorId.length === 0)
    throw new OperatorKeyError('operator key file: operatorId is missing');
  if (typeof json.createdAt !== 'string') throw new OperatorKeyError('operator key file: createdAt is missing');
  hexField(json.publicKey, 'publicKey', 65);
  hexField(json.kid, 'kid', 8);
  const kdf = json.kdf;
  if (!kdf || kdf.name !== 'scrypt') throw new OperatorKeyError('operator key file: kdf.name must be "scrypt"');
  for (const k of ['N', 'r', 'p'] as const) {
    if (!Number.isInteger(kdf[k]) || kdf[k] < 1)
      throw new OperatorKeyError(`operator key file: kdf.${k} must be a positive integer`);
  }
  if (kdf.N < MIN_SCRYPT_N || kdf.N > MAX_SCRYPT_N || (kdf.N & (kdf.N - 1)) !== 0)
    throw new OperatorKeyError(`operator key file: kdf.N ${kdf.N} is outside 2^15..2^20 or not a power of two`);
  if (kdf.r > 32 || kdf.p > 16) throw new OperatorKeyError('operator key file: kdf.r or kdf.p is implausibly large');
  hexField(kdf.salt, 'kdf.salt', 16);
  if (!json.cipher || json.cipher.name !== 'aes-256-gcm')
    throw new OperatorKeyError('operator key file: cipher.name must be "aes-256-gcm"');
  hexField(json.cipher.nonce, 'cipher.nonce', 12);
  hexField(json.ciphertext, 'ciphertext', 32);
  hexField(json.tag, 'tag', 16);
  return json as OperatorKeyFile;
}

/** Decrypts the private key; throws OperatorKeyError(WRONG_PASSPHRASE) when the passphrase or any field is wrong. */
export async function unsealOperatorKey(file: OperatorKeyFile, passphrase: string): Promise<OperatorKey> {
  const key = await scrypt(passphrase, Buffer.from(file.kdf.salt, 'hex'), file.kdf);
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(file.cipher.nonce, 'hex'));
  decipher.setAAD(headerAad(file));
  decipher.setAuthTag(Buffer.from(file.tag, 'hex'));
  let privateKey: Uint8Array;
  try {
    privateKey = new Uint8Array(
      Buffer.concat([decipher.update(Buffer.from(file.ciphertext, 'hex')), decipher.final()]),
    );
  } catch {
    throw new OperatorKeyError(WRONG_PASSPHRASE);
  } finally {
    key.fill(0);
  }
  const publicKey = p256.getPublicKey(privateKey, false);
  // The tag already covers publicKey, so this only fails if the file was written by a broken tool.
  if (Buffer.from(publicKey).toString('hex') !== file.publicKey)
    throw new OperatorKeyError('operator key file: the private key does not match publicKey');
  return {
    operatorId: file.operatorId,
    publicKey,
    kid: Buffer.from(file.kid, 'hex'),
    signDigest: (digest) => p256.sign(digest, privateKey, { prehash: false }),
  };
}

/** A new P-256 private key from node:crypto's CSPRNG (48 bytes reduced mod n, so no bias). */
export function generatePrivateKey(): Uint8Array {
  return p256.utils.randomSecretKey(randomBytes(48));
}

/** Writes a file readable only by its owner, replacing an existing one atomically (rename). */
export function writePrivateFile(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true }); // left over from a crash: 'wx' below must create the file itself
  fs.writeFileSync(tmp, data, { mode: 0o600, flag: 'wx' });
  fs.chmodSync(tmp, 0o600); // the umask may have cleared bits, never added them; be explicit anyway
  fs.renameSync(tmp, file);
}

export function readOperatorKeyFile(dir: string): OperatorKeyFile {
  const file = path.join(dir, OPERATOR_KEY_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new OperatorKeyError(
        `no operator key in ${dir} (${OPERATOR_KEY_FILE} is missing): run 'veilgrid operator init --dir ${dir}' first`,
      );
    throw new OperatorKeyError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return parseOperatorKeyFile(text);
}

/** Reads and unlocks DIR/operator-key.json. */
export async function unlockOperatorKey(dir: string, passphrase: string): Promise<OperatorKey> {
  return unsealOperatorKey(readOperatorKeyFile(dir), passphrase);
}

export const DEFAULT_VALIDITY_DAYS = 3650;

export interface InitOperatorOptions {
  dir: string;
  passphrase: string;
  /** Default: "operator-" and the first 4 bytes of the kid in hex. */
  operatorId?: string;
  /** Replace an existing key in dir (the old key is gone: meters it certified stay trusted only while the DSO trusts its certificate). */
  force?: boolean;
  validityDays?: number;
  nowMs?: number;
  scryptN?: number;
}

export interface OperatorSummary {
  operatorId: string;
  /** hex, 65 bytes uncompressed */
  publicKey: string;
  /** hex, 8 bytes */
  kid: string;
  createdAt: string;
  /** Unix seconds, from the certificate. */
  notBefore: number;
  notAfter: number;
  keyFile: string;
  certificateFile: string;
}

/** Creates dir/operator-key.json (0600) and dir/operator-cert.cbor; refuses to replace a key unless force. */
export async function initOperator(options: InitOperatorOptions): Promise<OperatorSummary> {
  const keyFile = path.join(options.dir, OPERATOR_KEY_FILE);
  const certificateFile = path.join(options.dir, OPERATOR_CERT_FILE);
  if (fs.existsSync(keyFile) && !options.force) {
    throw new OperatorKeyError(
      `${keyFile} already exists: refusing to replace the operator key (every meter it certified depends on it); pass --force to replace it anyway`,
    );
  }
  const problem = passphraseProblem(options.passphrase);
  if (problem) throw new OperatorKeyError(problem);
  fs.mkdirSync(options.dir, { recursive: true, mode: 0o700 });

  const privateKey = generatePrivateKey();
  const publicKey = p256.getPublicKey(privateKey, false);
  const kid = kidOf(nodeSha256, publicKey);
  const operatorId = options.operatorId ?? `operator-${Buffer.from(kid).toString('hex').slice(0, 8)}`;
  const nowMs = options.nowMs ?? Date.now();
  const notBefore = Math.floor(nowMs / 1000);
  const validityDays = options.validityDays ?? DEFAULT_VALIDITY_DAYS;
  let payload: Uint8Array;
  try {
    payload = encodeOperatorCertificate({
      operatorId,
      publicKey,
      notBefore,
      notAfter: notBefore + Math.round(validityDays * 86400),
    });
  } catch (err) {
    if (err instanceof CertificateFormatError) throw new OperatorKeyError(err.message);
    throw err;
  }
  const certificate = signedCertificate(
    { sha256: nodeSha256, sign: (digest) => p256.sign(digest, privateKey, { prehash: false }) },
    publicKey,
    payload,
  );
  const file = await sealOperatorKey({
    operatorId,
    privateKey,
    kid,
    passphrase: options.passphrase,
    scryptN: options.scryptN,
    createdAt: new Date(nowMs),
  });
  privateKey.fill(0);
  // Key first: a crash in between leaves a key without certificate, which 'show' reports, never a
  // certificate for a key that does not exist.
  writePrivateFile(keyFile, JSON.stringify(file, null, 2) + '\n');
  fs.writeFileSync(certificateFile + '.tmp', certificate, { mode: 0o644 });
  fs.renameSync(certificateFile + '.tmp', certificateFile);
  return showOperator(options.dir);
}

/** The operator's certificate (COSE_Sign1 bytes) from dir/operator-cert.cbor. */
export function readOperatorCertificate(dir: string): Uint8Array {
  const file = path.join(dir, OPERATOR_CERT_FILE);
  try {
    return new Uint8Array(fs.readFileSync(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new OperatorKeyError(
        `${file} is missing: run 'veilgrid operator init --dir ${dir}' (with --force to make a new key)`,
      );
    throw new OperatorKeyError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/** What dir holds, without the passphrase: ids, public key, validity. Checks key file and certificate agree. */
export function showOperator(dir: string): OperatorSummary {
  const file = readOperatorKeyFile(dir);
  const bytes = readOperatorCertificate(dir);
  let cert: OperatorCertificate;
  try {
    cert = decodeOperatorCertificate(openSignedCertificate(bytes).payload);
  } catch (err) {
    if (err instanceof CertificateFormatError)
      throw new OperatorKeyError(`${path.join(dir, OPERATOR_CERT_FILE)}: ${err.message}`);
    throw err;
  }
  if (Buffer.from(cert.publicKey).toString('hex') !== file.publicKey || cert.operatorId !== file.operatorId) {
    throw new OperatorKeyError(
      `${OPERATOR_CERT_FILE} does not belong to ${OPERATOR_KEY_FILE} in ${dir} (different key or operator id): run 'veilgrid operator init --force' to make a new pair`,
    );
  }
  return {
    operatorId: file.operatorId,
    publicKey: file.publicKey,
    kid: file.kid,
    createdAt: file.createdAt,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    keyFile: path.join(dir, OPERATOR_KEY_FILE),
    certificateFile: path.join(dir, OPERATOR_CERT_FILE),
  };
}

/** A DeviceCertificate for a meter, signed by the unlocked operator key (COSE_Sign1 bytes). */
export function issueDeviceCertificate(operator: OperatorKey, cert: Omit<DeviceCertificate, 'operatorId'>): Uint8Array {
  const payload = encodeDeviceCertificate({ ...cert, operatorId: operator.operatorId });
  return signedCertificate({ sha256: nodeSha256, sign: operator.signDigest }, operator.publicKey, payload);
}
