// COSE_Sign1 (RFC 9052 section 4.2) with ES256: how the meter signs readings and certificates and how
// the DSO checks them. One implementation for the firmware (Espruino 2v29) and the host tools.
//
//   COSE_Sign1 = 18([ protected: bstr .cbor header_map, unprotected: header_map, payload: bstr, signature: bstr ])
//   Sig_structure = [ "Signature1", body_protected: bstr, external_aad: bstr, payload: bstr ]   (section 4.4)
//
// The signature is ECDSA P-256 over SHA-256(Sig_structure), as 64 bytes r || s (RFC 9053 section 2.1),
// exactly what the ATECC608's Sign command returns for an external digest. This module never hashes
// for signing itself unless given a SHA-256, and never does EC math: signing is a `sign(digest32)`
// function (the secure element on the meter, a noble key on the host); verification is the host's.
//
// What this profile accepts (decodeSign1 and encodeSign1 enforce the same rules, so we never write
// what we would refuse):
//   - tag 18 is required (RFC 9052 section 2 lets the application decide; an untagged message, or any
//     other tag, is refused, so one byte string has one meaning);
//   - deterministic CBOR throughout (our encoder writes nothing else; it keeps one byte form per message);
//   - the protected header is a non-empty bstr holding a map with alg (1) = the algorithm the caller
//     expects: ES256 (-7) unless it asks for ALG_ATECC608_ATTESTED (key certificates, keys/
//     key-attestation.ts). The algorithm must be signed, or an attacker could swap it;
//   - header labels are integers or text, unique across both headers; kid (4), when present, is a bstr;
//     crit (2) is refused, as this profile understands no critical extension;
//   - the unprotected header is empty: this project's messages put nothing there, and anything in it
//     would be unsigned data an attacker can change without breaking the signature;
//   - the payload is attached (a bstr; nil, i.e. detached, is refused); the signature is 64 bytes.
// The signers in this project put kid (first 8 bytes of SHA-256 of the signer's uncompressed public
// key) into the protected header too, so that it is covered by the signature.

import { CborError, CborMap, Tagged, decode, encode, type CborValue } from './cbor.ts';
import type { Sha256 } from './crypto/sha256.ts';
import { quote } from './field-problems.ts';
import { VeilgridError } from './veilgrid-error.ts';

export const COSE_SIGN1_TAG = 18;
/** Header labels (RFC 9052 section 3.1). */
export const HEADER_ALG = 1;
export const HEADER_CRIT = 2;
export const HEADER_KID = 4;
/** ECDSA w/ SHA-256 on P-256 (RFC 9053 section 2.1). */
export const ALG_ES256 = -7;
/**
 * Private-use algorithm (RFC 9053 section 12: values below -65536): ECDSA P-256 by an ATECC608 key in
 * Sign(internal) mode, over the chip's attestation message for a key it holds, with the Sig_structure's
 * SHA-256 as the nonce. protocol/key-attestation.ts builds the message; the signature is still 64 bytes.
 */
export const ALG_ATECC608_ATTESTED = -65537;
export const ES256_SIGNATURE_BYTES = 64;

export class CoseError extends VeilgridError {
  constructor(message: string) {
    super('CoseError', 'cose', message);
  }
}

/** A COSE_Sign1 message as decodeSign1 returns it. */
export interface DecodedSign1 {
  /** The protected header exactly as received: what the signature covers (use these, never a re-encoding). */
  protectedBytes: Uint8Array;
  protectedHeader: CborMap;
  unprotectedHeader: CborMap;
  payload: Uint8Array;
  /** 64 bytes r || s. */
  signature: Uint8Array;
}

export interface Sign1Parts {
  /** A header map, or its serialized bytes (as received in protectedBytes). */
  protectedHeader: CborMap | Uint8Array;
  unprotectedHeader: CborMap;
  payload: Uint8Array;
  signature: Uint8Array;
}

/** Signs a 32-byte digest with ECDSA P-256: 64 bytes r || s (the SE's Sign command, or a noble key). */
export type SignDigest = (digest32: Uint8Array) => Uint8Array;

function describe(value: CborValue): string {
  if (value instanceof Uint8Array) return 'a ' + value.length + '-byte bstr';
  if (typeof value === 'string') return 'text ' + quote(value.length > 20 ? value.substring(0, 20) + '...' : value);
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Tagged) return 'tag ' + value.tag;
  if (value instanceof CborMap || (value !== null && typeof value === 'object')) return 'a map';
  return String(value);
}

/** A decoded CBOR map as a CborMap (the decoder returns text-keyed maps as plain objects). */
function asHeaderMap(value: CborValue, where: string): CborMap {
  if (value instanceof CborMap) return value;
  if (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    !(value instanceof Uint8Array) &&
    !(value instanceof Tagged)
  ) {
    const object = value as { [key: string]: CborValue };
    const keys = Object.keys(object);
    const entries: Array<[CborValue, CborValue]> = [];
    for (let i = 0; i < keys.length; i++) entries.push([keys[i], object[keys[i]]]);
    return new CborMap(entries);
  }
  throw new CoseError(where + ' must be a map (got ' + describe(value) + ')');
}

/**
 * Checks the two header maps against this profile (see the top of the file); throws CoseError naming
 * the first problem.
 */
function checkHeaders(protectedHeader: CborMap, unprotectedHeader: CborMap, expectedAlg: number): void {
  const seen: { [label: string]: boolean } = {};
  const maps = [protectedHeader, unprotectedHeader];
  const names = ['protected header', 'unprotected header'];
  for (let m = 0; m < 2; m++) {
    const entries = maps[m].entries;
    for (let i = 0; i < entries.length; i++) {
      const label = entries[i][0];
      const value = entries[i][1];
      if (!(typeof label === 'string' || (typeof label === 'number' && label === Math.floor(label)))) {
        throw new CoseError(names[m] + ' has label ' + describe(label) + ': COSE header labels are integers or text');
      }
      const id = typeof label + ':' + label;
      if (seen[id])
        throw new CoseError(
          'header label ' +
            label +
            ' appears in both the protected and the unprotected header (RFC 9052 section 3 forbids it)',
        );
      seen[id] = true;
      if (label === HEADER_ALG && m === 1)
        throw new CoseError(
          'alg (label 1) is in the unprotected header: it must be in the protected header, so the signature covers it',
        );
      if (label === HEADER_CRIT)
        throw new CoseError(
          'crit (label 2) lists critical header parameters, and this ES256 profile understands none: refused',
        );
      if (label === HEADER_KID && !(value instanceof Uint8Array))
        throw new CoseError('kid (label 4) in the ' + names[m] + ' must be a bstr (got ' + describe(value) + ')');
    }
  }
  const alg = protectedHeader.get(HEADER_ALG);
  if (alg === undefined)
    throw new CoseError('protected header has no alg (label 1): ' + algName(expectedAlg) + ' is required');
  if (alg !== expectedAlg)
    throw new CoseError(
      'alg (label 1) is ' + describe(alg) + ', but only ' + algName(expectedAlg) + ' is accepted here',
    );
  if (unprotectedHeader.entries.length !== 0) {
    throw new CoseError(
      'unprotected header holds label ' +
        unprotectedHeader.entries[0][0] +
        ': this profile puts every header in the protected one, so the unprotected header must be empty',
    );
  }
}

function algName(alg: number): string {
  return alg === ALG_ES256
    ? 'ES256 (-7)'
    : alg === ALG_ATECC608_ATTESTED
      ? 'ATECC608-attested ES256 (' + alg + ')'
      : String(alg);
}

/** The serialized protected header: a map's deterministic encoding (the empty map as zero bytes). */
function protectedBytesOf(header: CborMap | Uint8Array): Uint8Array {
  if (header instanceof Uint8Array) return header;
  return header.entries.length === 0 ? new Uint8Array(0) : encode(header);
}

function checkSignature(signature: CborValue): Uint8Array {
  if (!(signature instanceof Uint8Array) || signature.length !== ES256_SIGNATURE_BYTES) {
    throw new CoseError(
      'signature must be a ' + ES256_SIGNATURE_BYTES + '-byte bstr r || s for ES256 (got ' + describe(signature) + ')',
    );
  }
  return signature;
}

/**
 * The Sig_structure bytes for COSE_Sign1 (RFC 9052 section 4.4): what gets hashed with SHA-256 and
 * signed. protectedHeader: a header map, or the serialized bytes exactly as received (when verifying,
 * pass DecodedSign1.protectedBytes). externalAad: application data bound to the signature but not
 * sent; empty when absent.
 */
export function sign1ToBeSigned(
  protectedHeader: CborMap | Uint8Array,
  payload: Uint8Array,
  externalAad?: Uint8Array,
): Uint8Array {
  return encode(['Signature1', protectedBytesOf(protectedHeader), externalAad ?? new Uint8Array(0), payload]);
}

/** The tagged COSE_Sign1 (tag 18) bytes. Throws CoseError if the parts break this profile's rules. */
export function encodeSign1(parts: Sign1Parts): Uint8Array {
  const protectedBytes = protectedBytesOf(parts.protectedHeader);
  let protectedHeader: CborMap;
  if (parts.protectedHeader instanceof Uint8Array) {
    try {
      protectedHeader = asHeaderMap(decode(protectedBytes), 'protected header');
    } catch (err) {
      if (err instanceof CborError)
        throw new CoseError('protected header bytes are not deterministic CBOR: ' + err.message);
      throw err;
    }
  } else {
    protectedHeader = parts.protectedHeader;
  }
  const alg = protectedHeader.get(HEADER_ALG);
  checkHeaders(
    protectedHeader,
    parts.unprotectedHeader,
    alg === ALG_ATECC608_ATTESTED ? ALG_ATECC608_ATTESTED : ALG_ES256,
  );
  if (!(parts.payload instanceof Uint8Array))
    throw new CoseError('payload must be a Uint8Array (detached payloads are not supported)');
  checkSignature(parts.signature);
  return encode(new Tagged(COSE_SIGN1_TAG, [protectedBytes, parts.unprotectedHeader, parts.payload, parts.signature]));
}

/**
 * A COSE_Sign1 message from its bytes (tag 18 required). Strict: throws CoseError naming what is
 * wrong for anything this profile does not accept (see the top of the file), including an alg other
 * than expectedAlg (ES256 when not given). Checks the form only; the caller verifies the signature
 * over sign1ToBeSigned(protectedBytes, payload, externalAad).
 */
export function decodeSign1(bytes: Uint8Array, expectedAlg?: number): DecodedSign1 {
  const alg = expectedAlg === undefined ? ALG_ES256 : expectedAlg;
  let item: CborValue;
  try {
    item = decode(bytes);
  } catch (err) {
    if (err instanceof CborError) throw new CoseError('COSE_Sign1 is not deterministic CBOR: ' + err.message);
    throw err;
  }
  if (!(item instanceof Tagged))
    throw new CoseError('COSE_Sign1 must carry tag 18 (got ' + describe(item) + ' without a tag)');
  if (item.tag !== COSE_SIGN1_TAG) throw new CoseError('tag ' + item.tag + ' is not COSE_Sign1 (tag 18)');
  item = item.value;
  if (!Array.isArray(item) || item.length !== 4) {
    throw new CoseError(
      'COSE_Sign1 must be an array of 4 items [protected, unprotected, payload, signature] (got ' +
        (Array.isArray(item) ? 'an array of ' + item.length : describe(item)) +
        ')',
    );
  }
  const protectedBytes = item[0];
  if (!(protectedBytes instanceof Uint8Array))
    throw new CoseError('protected header must be a bstr wrapping a map (got ' + describe(protectedBytes) + ')');
  if (protectedBytes.length === 0)
    throw new CoseError('protected header is empty: it must hold alg (label 1) = ' + algName(alg));
  let protectedValue: CborValue;
  try {
    protectedValue = decode(protectedBytes);
  } catch (err) {
    if (err instanceof CborError)
      throw new CoseError('protected header bstr is not deterministic CBOR: ' + err.message);
    throw err;
  }
  const protectedHeader = asHeaderMap(protectedValue, 'protected header');
  const unprotectedHeader = asHeaderMap(item[1], 'unprotected header');
  checkHeaders(protectedHeader, unprotectedHeader, alg);
  const payload = item[2];
  if (payload === null) throw new CoseError('payload is nil (detached): detached payloads are not supported');
  if (!(payload instanceof Uint8Array)) throw new CoseError('payload must be a bstr (got ' + describe(payload) + ')');
  return {
    protectedBytes: protectedBytes,
    protectedHeader: protectedHeader,
    unprotectedHeader: unprotectedHeader,
    payload: payload,
    signature: checkSignature(item[3]),
  };
}

/** The protected header this project's signers write: { 1: -7, 4: kid }. */
export function es256ProtectedHeader(kid: Uint8Array): CborMap {
  return signerProtectedHeader(ALG_ES256, kid);
}

/** The protected header { 1: alg, 4: kid }. */
export function signerProtectedHeader(alg: number, kid: Uint8Array): CborMap {
  return new CborMap([
    [HEADER_ALG, alg],
    [HEADER_KID, kid],
  ]);
}

/**
 * Signs payload as a tagged COSE_Sign1 with ES256, kid in the protected header and an empty unprotected
 * header. One SHA-256 call (over the Sig_structure) and one sign() call.
 */
export function signSign1(
  sha256: Sha256,
  sign: SignDigest,
  kid: Uint8Array,
  payload: Uint8Array,
  externalAad?: Uint8Array,
): Uint8Array {
  const protectedHeader = es256ProtectedHeader(kid);
  const signature = sign(sha256(sign1ToBeSigned(protectedHeader, payload, externalAad)));
  return encodeSign1({
    protectedHeader: protectedHeader,
    unprotectedHeader: new CborMap([]),
    payload: payload,
    signature: signature,
  });
}
