// Why the DSO refuses a message: one list for the registry (certificates) and the verifier (readings), so
// the logs, /metrics and the tests use the same words.
export const REJECTION = {
  /** Larger than any genuine message may be: dropped unread. */
  oversize: 'oversize',
  /** Not a sealed envelope, or not one for this DSO's key. */
  badEnvelope: 'bad-envelope',
  /** The envelope's MAC fails: changed on the way, or sealed to another key. */
  badMac: 'bad-mac',
  /** Not the format it claims to be (CBOR, COSE, certificate fields, a meter id that does not match). */
  malformed: 'malformed',
  unknownMeter: 'unknown-meter',
  revoked: 'revoked',
  /** Signed by an operator the DSO does not trust (now). */
  foreignOperator: 'foreign-operator',
  badOperatorCertificate: 'bad-operator-certificate',
  badDeviceCertificate: 'bad-device-certificate',
  /** A device certificate for a meter id the DSO knows with other keys. */
  meterConflict: 'meter-conflict',
  /** Signed by a key the DSO has no certificate for. */
  unknownKey: 'unknown-key',
  keyNotValidForInterval: 'key-not-valid-for-interval',
  badSignature: 'bad-signature',
  /** Already accepted (an old rotation, a sequence number taken by other content). */
  replay: 'replay',
  /** Claims more than one message may (MessageBounds in registry.ts). */
  outOfBounds: 'out-of-bounds',
} as const;

export type RejectionReason = (typeof REJECTION)[keyof typeof REJECTION];

/** Every reason, for counters that start at 0. */
export const REJECTION_REASONS: readonly RejectionReason[] = Object.values(REJECTION);
