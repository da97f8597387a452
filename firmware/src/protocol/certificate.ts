// The three certificates of the trust chain, operator -> device -> reading key (docs/reading-keys.md), the
// asset request that certifies a trading key in the same way, and the DSO's signed head of the relay
// directory, as deterministic CBOR payloads inside COSE_Sign1 messages (protocol/cose.ts). Written once for
// the meter (whose identity key attests key certificates and asset requests in the secure element) and the
// host tools (operator init, provisioning, the DSO's verifier, asset issuance and relay directory).
//
// Every payload is a CBOR map with small integer keys; key 0 is the certificate kind, so a signature
// over one kind can never be read as another. All keys listed are required and no others are allowed.
//
//   kind 1, OperatorCertificate (self-signed by the operator key)
//     0 kind 1 | 1 operatorId text | 2 publicKey bstr 65 | 3 notBefore uint | 4 notAfter uint
//   kind 2, DeviceCertificate (signed by the operator key)
//     0 kind 2 | 1 operatorId text | 2 meterId text | 3 feeder text | 4 identityKey bstr 65
//     5 mixKey bstr 65 | 6 limits map { 1 maxImportW uint, 2 maxExportW uint } | 7 issuedAt uint
//   kind 3, KeyCertificate (attested by the meter's identity key: protocol/key-attestation.ts)
//     0 kind 3 | 1 meterId text | 2 publicKey bstr 65 | 3 validFromInterval uint
//     4 validToInterval uint | 5 rotation uint
//   kind 4, AssetRequest (attested by the meter's identity key over the trading key, like kind 3)
//     0 kind 4 | 1 meterId text | 2 tradingKey bstr 65 | 3 slot uint | 4 interval uint
//     5 productionWh uint | 6 consumptionWh uint | 7 padding bstr of zeros
//   padding makes every asset request ASSET_REQUEST_BYTES long, whatever its amounts, slot and meter id:
//   CBOR writes numbers in 1 to 9 bytes, so without it the sealed request's size would tell the broker
//   whether the meter trades.
//
//   kind 5, RelayDirectory (signed ES256 by the DSO's key: the head of the mixnet's relay directory)
//     0 kind 5 | 1 epoch uint | 2 relayCount uint | 3 pageCount uint | 4 firstPageHash bstr 32
//     5 issuedAt uint | 6 exit bstr 72, optional
//
// A relay directory head names the pages that list every relay (protocol/relay-directory.ts) by the
// hash of the first, each page carrying the hash of the next. exit is the mixnet's exit (the bridge) as a
// relay record: relay id (8) || mix key x || y (64). It is the one optional field: the DSO publishes the
// directory before its operator has given the exit's key, and a directory without it cannot be sent through.
//
// An asset request asks the DSO for energy assets on a fresh trading key for one delivery interval:
// productionWh to sell, consumptionWh to buy (both 0 when the meter does not trade: every meter asks every
// interval, so silence leaks nothing). slot is the trading-ring slot holding the key (protocol/slot-map.ts),
// which the attestation covers. It travels sealed to the DSO (protocol/sealed-reading.ts), never in the
// clear: it links the meter to its trading key.
//
// text ids (operatorId, meterId, feeder): 1..64 chars of A-Z a-z 0-9 . _ - (protocol/topics.ts).
// bstr 65: a P-256 public key, uncompressed 04 || x || y. uint: an integer 0..2^53-1; times
// (notBefore, notAfter, issuedAt) are Unix seconds, intervals are interval indexes as in a Reading,
// and a key certificate covers intervals validFromInterval..validToInterval inclusive. rotation is the
// SE's monotonic rotation counter when the key was made.
//
// Signed form: COSE_Sign1 (tag 18), protected header { 1: alg, 4: kid } where kid = kidOf(signer's public
// key), empty unprotected header, payload = the certificate bytes above. Operator and device certificates
// are ES256 (alg -7) by the operator's key. A key certificate is ALG_ATECC608_ATTESTED (protocol/cose.ts):
// the identity key never signs a digest it is handed, so its signature is over the chip's attestation
// message for the certified key, with SHA-256 of the Sig_structure as the nonce.

import { CborError, CborMap, decode, encode, type CborValue } from './cbor.ts';
import {
  ALG_ATECC608_ATTESTED,
  CoseError,
  HEADER_KID,
  decodeSign1,
  encodeSign1,
  es256ProtectedHeader,
  sign1ToBeSigned,
  signSign1,
  signerProtectedHeader,
  type SignDigest,
} from './cose.ts';
import { copyBytes } from './crypto/bytes.ts';
import { isUncompressedPoint, uncompressedPoint } from './crypto/p256-point.ts';
import type { Sha256 } from './crypto/sha256.ts';
import { describeValue, uintProblem } from './field-problems.ts';
import { TRADING_RING } from './slot-map.ts';
import { meterIdProblem } from './topics.ts';
import { VeilgridError } from './veilgrid-error.ts';

export const CERT_KIND_OPERATOR = 1;
export const CERT_KIND_DEVICE = 2;
export const CERT_KIND_KEY = 3;
export const CERT_KIND_ASSET_REQUEST = 4;
export const CERT_KIND_RELAY_DIRECTORY = 5;
/** The length of every asset request payload (padding field included). */
export const ASSET_REQUEST_BYTES = 200;
export const KID_BYTES = 8;

export interface OperatorCertificate {
  operatorId: string;
  /** 65 bytes, uncompressed. */
  publicKey: Uint8Array;
  notBefore: number;
  notAfter: number;
}

export interface DeviceLimits {
  maxImportW: number;
  maxExportW: number;
}

export interface DeviceCertificate {
  operatorId: string;
  meterId: string;
  feeder: string;
  /** Slot 0 of the meter's SE, 65 bytes uncompressed. */
  identityKey: Uint8Array;
  /** Slot 3 of the meter's SE (mix relay ECDH key), 65 bytes uncompressed. */
  mixKey: Uint8Array;
  limits: DeviceLimits;
  issuedAt: number;
}

export interface KeyCertificate {
  meterId: string;
  /** The reading key, 65 bytes uncompressed. */
  publicKey: Uint8Array;
  validFromInterval: number;
  validToInterval: number;
  rotation: number;
}

export interface AssetRequest {
  meterId: string;
  /** The interval's trading key, 65 bytes uncompressed. */
  tradingKey: Uint8Array;
  /** The trading-ring slot that holds it. */
  slot: number;
  /** The delivery interval the assets are for. */
  interval: number;
  productionWh: number;
  consumptionWh: number;
}

export interface RelayDirectoryHead {
  /** Increases with every new directory; a meter never goes back to an older one. */
  epoch: number;
  relayCount: number;
  pageCount: number;
  /** SHA-256 of page 0. */
  firstPageHash: Uint8Array;
  issuedAt: number;
  /** The exit's relay record, relay id (8) || mix key x || y (64); absent until the DSO is given the exit's key. */
  exit?: Uint8Array;
}

export class CertificateFormatError extends VeilgridError {
  /** Every problem found, one sentence each. */
  declare readonly problems: string[];
  constructor(problems: string[]) {
    const message = 'invalid certificate: ' + problems.join('; ');
    super('CertificateFormatError', 'certificate-format', message);
    this.problems = problems;
  }
}

/** What a signed certificate holds once its COSE_Sign1 form is checked (signature not yet verified). */
export interface OpenedCertificate {
  /** The kid in the protected header: kidOf(the signer's public key). */
  kid: Uint8Array;
  /** The certificate bytes: decode with the decoder of the kind expected at this step of the chain. */
  payload: Uint8Array;
  /** The bytes the signer hashed (Sig_structure as received): verify signature over SHA-256 of these. */
  toBeSigned: Uint8Array;
  /** 64 bytes r || s. */
  signature: Uint8Array;
}

/** Each kind's name with its article, as error messages say it. */
const KIND_NAMES = [
  '',
  'an operator certificate',
  'a device certificate',
  'a key certificate',
  'an asset request',
  'a relay directory head',
];

// One field of a payload: its CBOR key, its name, and how to check it.
type FieldType = 'id' | 'key' | 'uint' | 'limits' | 'digest' | 'padding' | 'record';
interface FieldSpec {
  key: number;
  name: string;
  type: FieldType;
  optional?: boolean;
}

const OPERATOR_FIELDS: FieldSpec[] = [
  { key: 1, name: 'operatorId', type: 'id' },
  { key: 2, name: 'publicKey', type: 'key' },
  { key: 3, name: 'notBefore', type: 'uint' },
  { key: 4, name: 'notAfter', type: 'uint' },
];
const DEVICE_FIELDS: FieldSpec[] = [
  { key: 1, name: 'operatorId', type: 'id' },
  { key: 2, name: 'meterId', type: 'id' },
  { key: 3, name: 'feeder', type: 'id' },
  { key: 4, name: 'identityKey', type: 'key' },
  { key: 5, name: 'mixKey', type: 'key' },
  { key: 6, name: 'limits', type: 'limits' },
  { key: 7, name: 'issuedAt', type: 'uint' },
];
const KEY_FIELDS: FieldSpec[] = [
  { key: 1, name: 'meterId', type: 'id' },
  { key: 2, name: 'publicKey', type: 'key' },
  { key: 3, name: 'validFromInterval', type: 'uint' },
  { key: 4, name: 'validToInterval', type: 'uint' },
  { key: 5, name: 'rotation', type: 'uint' },
];
const ASSET_REQUEST_FIELDS: FieldSpec[] = [
  { key: 1, name: 'meterId', type: 'id' },
  { key: 2, name: 'tradingKey', type: 'key' },
  { key: 3, name: 'slot', type: 'uint' },
  { key: 4, name: 'interval', type: 'uint' },
  { key: 5, name: 'productionWh', type: 'uint' },
  { key: 6, name: 'consumptionWh', type: 'uint' },
  { key: 7, name: 'padding', type: 'padding' },
];
const RELAY_DIRECTORY_FIELDS: FieldSpec[] = [
  { key: 1, name: 'epoch', type: 'uint' },
  { key: 2, name: 'relayCount', type: 'uint' },
  { key: 3, name: 'pageCount', type: 'uint' },
  { key: 4, name: 'firstPageHash', type: 'digest' },
  { key: 5, name: 'issuedAt', type: 'uint' },
  { key: 6, name: 'exit', type: 'record', optional: true },
];
/** A relay record: relay id (8) || mix key x || y (64), as in protocol/relay-directory.ts. */
const RELAY_RECORD_BYTES = 72;
const LIMIT_KEYS = ['', 'maxImportW', 'maxExportW'];

/** The meter id rule (protocol/topics.ts) applied to another id field, with that field's name. */
function idProblem(name: string, value: unknown): string | undefined {
  const problem = meterIdProblem(value);
  // meterIdProblem's sentences all start with "meterId"; name the field actually checked.
  return problem === undefined ? undefined : name + problem.substring('meterId'.length);
}

function fieldProblems(spec: FieldSpec, value: unknown, problems: string[]): void {
  if (spec.type === 'id') {
    const p = idProblem(spec.name, value);
    if (p) problems.push(p);
  } else if (spec.type === 'key') {
    if (!(value instanceof Uint8Array) || !isUncompressedPoint(value)) {
      problems.push(
        spec.name +
          ' must be a 65-byte uncompressed P-256 public key 04||x||y (got ' +
          describeValue(value) +
          (value instanceof Uint8Array && value.length === 65 ? ' starting 0x' + value[0].toString(16) : '') +
          ')',
      );
    }
  } else if (spec.type === 'uint') {
    const p = uintProblem(spec.name, value);
    if (p) problems.push(p);
  } else if (spec.type === 'padding') {
    let zeros = value instanceof Uint8Array;
    for (let i = 0; zeros && i < (value as Uint8Array).length; i++) zeros = (value as Uint8Array)[i] === 0;
    if (!zeros) problems.push(spec.name + ' must be a byte string of zeros (got ' + describeValue(value) + ')');
  } else if (spec.type === 'digest') {
    if (!(value instanceof Uint8Array) || value.length !== 32)
      problems.push(spec.name + ' must be a 32-byte SHA-256 digest (got ' + describeValue(value) + ')');
  } else if (spec.type === 'record') {
    if (!(value instanceof Uint8Array) || value.length !== RELAY_RECORD_BYTES)
      problems.push(
        spec.name +
          ' must be a ' +
          RELAY_RECORD_BYTES +
          '-byte relay record, relay id || x || y (got ' +
          describeValue(value) +
          ')',
      );
  } else {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
      problems.push(spec.name + ' must be a map { maxImportW, maxExportW } (got ' + describeValue(value) + ')');
      return;
    }
    const limits = value as { [field: string]: unknown };
    for (let k = 1; k < LIMIT_KEYS.length; k++) {
      const p = uintProblem(spec.name + '.' + LIMIT_KEYS[k] + ' (W)', limits[LIMIT_KEYS[k]]);
      if (p) problems.push(p);
    }
  }
}

/** Everything wrong with fields (by name) for a certificate kind, one sentence per problem. */
function certificateProblems(kind: number, specs: FieldSpec[], value: unknown): string[] {
  if (value === null || typeof value !== 'object')
    return [KIND_NAMES[kind] + ' must be an object (got ' + describeValue(value) + ')'];
  const fields = value as { [field: string]: unknown };
  const problems: string[] = [];
  for (let i = 0; i < specs.length; i++) {
    const v = fields[specs[i].name];
    if (v === undefined) {
      if (!specs[i].optional) problems.push(specs[i].name + ' (key ' + specs[i].key + ') is missing');
    } else fieldProblems(specs[i], v, problems);
  }
  if (problems.length > 0) return problems;
  if (kind === CERT_KIND_OPERATOR && (fields.notBefore as number) >= (fields.notAfter as number)) {
    problems.push('notBefore ' + fields.notBefore + ' must be before notAfter ' + fields.notAfter);
  }
  if (kind === CERT_KIND_KEY && (fields.validFromInterval as number) > (fields.validToInterval as number)) {
    problems.push(
      'validFromInterval ' + fields.validFromInterval + ' must not be after validToInterval ' + fields.validToInterval,
    );
  }
  if (kind === CERT_KIND_ASSET_REQUEST && TRADING_RING.indexOf(fields.slot as number) < 0) {
    problems.push('slot ' + fields.slot + ' is not a trading-key slot (' + TRADING_RING.join(', ') + ')');
  }
  return problems;
}

function encodeFields(kind: number, specs: FieldSpec[], value: unknown): Uint8Array {
  const problems = certificateProblems(kind, specs, value);
  if (problems.length > 0) throw new CertificateFormatError(problems);
  const fields = value as { [field: string]: CborValue };
  const entries: Array<[CborValue, CborValue]> = [[0, kind]];
  for (let i = 0; i < specs.length; i++) {
    let v = fields[specs[i].name];
    if (v === undefined) continue; // an optional field left out
    if (specs[i].type === 'limits') {
      const limits = v as unknown as DeviceLimits;
      v = new CborMap([
        [1, limits.maxImportW],
        [2, limits.maxExportW],
      ]);
    }
    entries.push([specs[i].key, v]);
  }
  return encode(new CborMap(entries));
}

/** The limits map { 1: maxImportW, 2: maxExportW } as an object, noting unknown or non-map content. */
function limitsFromCbor(value: CborValue, problems: string[]): unknown {
  if (!(value instanceof CborMap)) return value;
  const limits: { [field: string]: CborValue } = {};
  for (let i = 0; i < value.entries.length; i++) {
    const key = value.entries[i][0];
    if (key === 1 || key === 2) limits[LIMIT_KEYS[key]] = value.entries[i][1];
    else problems.push('limits has unknown key ' + describeValue(key) + ' (it has keys 1 maxImportW and 2 maxExportW)');
  }
  return limits;
}

function decodeFields(kind: number, specs: FieldSpec[], bytes: Uint8Array): { [field: string]: unknown } {
  let item: CborValue;
  try {
    item = decode(bytes);
  } catch (err) {
    if (err instanceof CborError) throw new CertificateFormatError(['not deterministic CBOR: ' + err.message]);
    throw err;
  }
  const name = KIND_NAMES[kind];
  if (!(item instanceof CborMap))
    throw new CertificateFormatError([name + ' is a CBOR map with integer keys (got ' + describeValue(item) + ')']);
  const found = item.get(0);
  if (found !== kind) {
    const foundName =
      typeof found === 'number' && found >= 1 && found < KIND_NAMES.length
        ? KIND_NAMES[found]
        : 'kind ' + describeValue(found);
    throw new CertificateFormatError(['expected ' + name + ' (key 0 = ' + kind + ') but this is ' + foundName]);
  }
  const fields: { [field: string]: unknown } = {};
  const problems: string[] = [];
  for (let i = 0; i < item.entries.length; i++) {
    const key = item.entries[i][0];
    if (key === 0) continue;
    let spec: FieldSpec | undefined;
    for (let s = 0; s < specs.length; s++) if (specs[s].key === key) spec = specs[s];
    if (!spec) {
      problems.push('unknown key ' + describeValue(key) + ' (' + name + ' has keys 0..' + specs.length + ')');
      continue;
    }
    fields[spec.name] = spec.type === 'limits' ? limitsFromCbor(item.entries[i][1], problems) : item.entries[i][1];
  }
  const more = certificateProblems(kind, specs, fields);
  for (let i = 0; i < more.length; i++) problems.push(more[i]);
  if (problems.length > 0) throw new CertificateFormatError(problems);
  return fields;
}

/** The operator certificate's payload bytes; throws CertificateFormatError naming every bad field. */
export function encodeOperatorCertificate(cert: OperatorCertificate): Uint8Array {
  return encodeFields(CERT_KIND_OPERATOR, OPERATOR_FIELDS, cert);
}

/** The device certificate's payload bytes; throws CertificateFormatError naming every bad field. */
export function encodeDeviceCertificate(cert: DeviceCertificate): Uint8Array {
  return encodeFields(CERT_KIND_DEVICE, DEVICE_FIELDS, cert);
}

/** The key certificate's payload bytes; throws CertificateFormatError naming every bad field. */
export function encodeKeyCertificate(cert: KeyCertificate): Uint8Array {
  return encodeFields(CERT_KIND_KEY, KEY_FIELDS, cert);
}

/** The asset request's payload bytes, ASSET_REQUEST_BYTES long; throws CertificateFormatError naming every bad field. */
export function encodeAssetRequest(request: AssetRequest): Uint8Array {
  const unpadded = encodeFields(
    CERT_KIND_ASSET_REQUEST,
    ASSET_REQUEST_FIELDS,
    assetRequestFields(request, new Uint8Array(0)),
  ).length;
  // The empty padding field takes 2 bytes (key 7, bstr of 0); a bstr of 24..255 bytes has a 2-byte head.
  let padding = ASSET_REQUEST_BYTES - unpadded;
  if (padding > 23) padding--;
  if (padding < 0 || padding === 23)
    throw new CertificateFormatError([
      'an asset request does not fit in ' + ASSET_REQUEST_BYTES + ' bytes (' + unpadded + ' without padding)',
    ]);
  return encodeFields(
    CERT_KIND_ASSET_REQUEST,
    ASSET_REQUEST_FIELDS,
    assetRequestFields(request, new Uint8Array(padding)),
  );
}

function assetRequestFields(r: AssetRequest, padding: Uint8Array): { [field: string]: unknown } {
  return {
    meterId: r.meterId,
    tradingKey: r.tradingKey,
    slot: r.slot,
    interval: r.interval,
    productionWh: r.productionWh,
    consumptionWh: r.consumptionWh,
    padding: padding,
  };
}

/** The relay directory head's payload bytes; throws CertificateFormatError naming every bad field. */
export function encodeRelayDirectoryHead(head: RelayDirectoryHead): Uint8Array {
  return encodeFields(CERT_KIND_RELAY_DIRECTORY, RELAY_DIRECTORY_FIELDS, head);
}

/** An operator certificate from payload bytes; throws CertificateFormatError (also for another kind). */
export function decodeOperatorCertificate(bytes: Uint8Array): OperatorCertificate {
  const f = decodeFields(CERT_KIND_OPERATOR, OPERATOR_FIELDS, bytes);
  return {
    operatorId: f.operatorId as string,
    publicKey: f.publicKey as Uint8Array,
    notBefore: f.notBefore as number,
    notAfter: f.notAfter as number,
  };
}

/** A device certificate from payload bytes; throws CertificateFormatError (also for another kind). */
export function decodeDeviceCertificate(bytes: Uint8Array): DeviceCertificate {
  const f = decodeFields(CERT_KIND_DEVICE, DEVICE_FIELDS, bytes);
  const limits = f.limits as DeviceLimits;
  return {
    operatorId: f.operatorId as string,
    meterId: f.meterId as string,
    feeder: f.feeder as string,
    identityKey: f.identityKey as Uint8Array,
    mixKey: f.mixKey as Uint8Array,
    limits: { maxImportW: limits.maxImportW, maxExportW: limits.maxExportW },
    issuedAt: f.issuedAt as number,
  };
}

/** A key certificate from payload bytes; throws CertificateFormatError (also for another kind). */
export function decodeKeyCertificate(bytes: Uint8Array): KeyCertificate {
  const f = decodeFields(CERT_KIND_KEY, KEY_FIELDS, bytes);
  return {
    meterId: f.meterId as string,
    publicKey: f.publicKey as Uint8Array,
    validFromInterval: f.validFromInterval as number,
    validToInterval: f.validToInterval as number,
    rotation: f.rotation as number,
  };
}

/** An asset request from payload bytes; throws CertificateFormatError (also for another kind). */
export function decodeAssetRequest(bytes: Uint8Array): AssetRequest {
  const f = decodeFields(CERT_KIND_ASSET_REQUEST, ASSET_REQUEST_FIELDS, bytes);
  if (bytes.length !== ASSET_REQUEST_BYTES)
    throw new CertificateFormatError([
      'an asset request is padded to ' + ASSET_REQUEST_BYTES + ' bytes (got ' + bytes.length + ')',
    ]);
  return {
    meterId: f.meterId as string,
    tradingKey: f.tradingKey as Uint8Array,
    slot: f.slot as number,
    interval: f.interval as number,
    productionWh: f.productionWh as number,
    consumptionWh: f.consumptionWh as number,
  };
}

/** A relay directory head from payload bytes; throws CertificateFormatError (also for another kind). */
export function decodeRelayDirectoryHead(bytes: Uint8Array): RelayDirectoryHead {
  const f = decodeFields(CERT_KIND_RELAY_DIRECTORY, RELAY_DIRECTORY_FIELDS, bytes);
  const head: RelayDirectoryHead = {
    epoch: f.epoch as number,
    relayCount: f.relayCount as number,
    pageCount: f.pageCount as number,
    firstPageHash: f.firstPageHash as Uint8Array,
    issuedAt: f.issuedAt as number,
  };
  if (f.exit !== undefined) head.exit = f.exit as Uint8Array;
  return head;
}

/**
 * The key id of a public key: the first 8 bytes of SHA-256 of its 65-byte uncompressed form (a 64-byte
 * x || y from the SE is prefixed with 04 first, so both forms give the same kid).
 */
export function kidOf(sha256: Sha256, publicKey: Uint8Array): Uint8Array {
  return copyBytes(sha256(uncompressedPoint(publicKey)), 0, KID_BYTES);
}

/**
 * The Sig_structure bytes a signer with signerPublicKey hashes to sign a certificate payload (from one
 * of the encode functions). signedCertificate signs exactly these; openSignedCertificate returns the
 * same bytes as received, so signer and verifier hash the same thing.
 */
export function certificateToBeSigned(sha256: Sha256, signerPublicKey: Uint8Array, payload: Uint8Array): Uint8Array {
  return sign1ToBeSigned(es256ProtectedHeader(kidOf(sha256, signerPublicKey)), payload);
}

/**
 * A certificate payload signed as COSE_Sign1 ES256 by the key whose public half is signerPublicKey.
 * sign(digest32) -> 64-byte r || s: the SE's Sign on the meter, a noble/node key on the host.
 * 2 SHA-256 calls (kid, Sig_structure) and one signature.
 */
export function signedCertificate(
  signer: { sha256: Sha256; sign: SignDigest },
  signerPublicKey: Uint8Array,
  payload: Uint8Array,
): Uint8Array {
  return signSign1(signer.sha256, signer.sign, kidOf(signer.sha256, signerPublicKey), payload);
}

/**
 * A key certificate payload attested by the meter's secure element: attest(nonce32) returns the identity
 * key's 64-byte signature over attestationMessage(nonce, the key's slot, the key) (protocol/key-attestation.ts);
 * on the meter that is SecureElement.attestKey. The nonce is SHA-256 of the Sig_structure, whose
 * protected header names ALG_ATECC608_ATTESTED, so the signature covers every byte a verifier reads.
 */
export function attestedCertificate(
  sha256: Sha256,
  attest: (nonce32: Uint8Array) => Uint8Array,
  signerPublicKey: Uint8Array,
  payload: Uint8Array,
): Uint8Array {
  const protectedHeader = signerProtectedHeader(ALG_ATECC608_ATTESTED, kidOf(sha256, signerPublicKey));
  const signature = attest(sha256(sign1ToBeSigned(protectedHeader, payload)));
  return encodeSign1({
    protectedHeader: protectedHeader,
    unprotectedHeader: new CborMap([]),
    payload: payload,
    signature: signature,
  });
}

/**
 * The parts of a signed certificate, checked for form (COSE profile with alg = expectedAlg, ES256 when not
 * given; kid present and 8 bytes). Throws CertificateFormatError. The caller then verifies signature
 * (over SHA-256(toBeSigned) for ES256, over the attestation message with SHA-256(toBeSigned) as its nonce
 * for ALG_ATECC608_ATTESTED) with the signer's key (found by kid), and decodes payload with the decoder of
 * the kind it expects.
 */
export function openSignedCertificate(bytes: Uint8Array, expectedAlg?: number): OpenedCertificate {
  try {
    const message = decodeSign1(bytes, expectedAlg);
    const kid = message.protectedHeader.get(HEADER_KID);
    if (!(kid instanceof Uint8Array) || kid.length !== KID_BYTES) {
      throw new CertificateFormatError([
        'a signed certificate needs kid (label 4) in its protected header as ' +
          KID_BYTES +
          ' bytes (got ' +
          describeValue(kid) +
          ')',
      ]);
    }
    return {
      kid: kid,
      payload: message.payload,
      toBeSigned: sign1ToBeSigned(message.protectedBytes, message.payload),
      signature: message.signature,
    };
  } catch (err) {
    if (err instanceof CoseError) throw new CertificateFormatError(['not a valid COSE_Sign1: ' + err.message]);
    throw err;
  }
}
