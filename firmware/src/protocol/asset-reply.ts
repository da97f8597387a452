// The DSO's answer to a meter's asset request (protocol/certificate.ts, kind 4), on the meter's reply topic
// (protocol/topics.ts assetReplyTopic), which only that meter reads. It says whether the assets for the
// interval were issued to the trading key the meter named, or why not. It carries no amounts and no key:
// the broker sees it, and amounts next to the chain's issuance events could tie the meter to its key.
//
// Deterministic CBOR map: 1 interval uint | 2 outcome uint (1 issued, 2 refused) | 3 reason text (refused
// only: one of ASSET_REFUSALS).
import { CborError, CborMap, decode, encode, type CborValue } from './cbor.ts';
import { describeValue, uintProblem } from './field-problems.ts';
import { VeilgridError } from './veilgrid-error.ts';

export const OUTCOME_ISSUED = 1;
export const OUTCOME_REFUSED = 2;

/** Why the DSO refuses an asset request: stable codes, explained in docs/asset-issuance.md. */
export const ASSET_REFUSALS = [
  'not-authorized', // the meter is unknown, revoked or banned
  'bad-attestation', // the identity key's attestation of the trading key does not verify
  'above-meter-limit', // more than the meter's connection limits allow in one interval
  'above-feeder-limit', // the feeder's approved requests for the interval would exceed its limit
  'too-late', // the interval's issuance has been sent, or its gate has closed
  'already-requested', // another request for this interval came first
  'too-early', // the interval's requests are not taken yet: ask again when its predecessor runs
];

export interface AssetReply {
  interval: number;
  issued: boolean;
  /** Set when refused: one of ASSET_REFUSALS. */
  reason?: string;
}

export class AssetReplyError extends VeilgridError {
  constructor(message: string) {
    super('AssetReplyError', 'asset-reply', message);
  }
}

export function encodeAssetReply(reply: AssetReply): Uint8Array {
  const problem = uintProblem('interval', reply.interval);
  if (problem) throw new AssetReplyError(problem);
  if (reply.issued) {
    if (reply.reason !== undefined) throw new AssetReplyError('an issued reply has no reason');
    return encode(
      new CborMap([
        [1, reply.interval],
        [2, OUTCOME_ISSUED],
      ]),
    );
  }
  if (ASSET_REFUSALS.indexOf(reply.reason as string) < 0)
    throw new AssetReplyError(
      'a refusal needs a reason from ' + ASSET_REFUSALS.join(', ') + ' (got ' + describeValue(reply.reason) + ')',
    );
  return encode(
    new CborMap([
      [1, reply.interval],
      [2, OUTCOME_REFUSED],
      [3, reply.reason as string],
    ]),
  );
}

export function decodeAssetReply(bytes: Uint8Array): AssetReply {
  let item: CborValue;
  try {
    item = decode(bytes);
  } catch (err) {
    if (err instanceof CborError) throw new AssetReplyError('an asset reply is deterministic CBOR: ' + err.message);
    throw err;
  }
  if (!(item instanceof CborMap))
    throw new AssetReplyError('an asset reply is a CBOR map (got ' + describeValue(item) + ')');
  const interval = item.get(1);
  const outcome = item.get(2);
  const reason = item.get(3);
  const problem = uintProblem('interval', interval);
  if (problem) throw new AssetReplyError(problem);
  if (outcome === OUTCOME_ISSUED && item.entries.length === 2) return { interval: interval as number, issued: true };
  if (outcome === OUTCOME_REFUSED && item.entries.length === 3 && ASSET_REFUSALS.indexOf(reason as string) >= 0) {
    return { interval: interval as number, issued: false, reason: reason as string };
  }
  throw new AssetReplyError(
    'an asset reply is { 1 interval, 2 outcome 1 } or { 1 interval, 2 outcome 2, 3 reason } (got outcome ' +
      describeValue(outcome) +
      ', reason ' +
      describeValue(reason) +
      ')',
  );
}
