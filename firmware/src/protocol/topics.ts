// MQTT topic names for meter and market traffic, and the meter id rule they depend on. Shared by the
// firmware and the host tools (DSO, bridge, broker ACLs, testbed), so all sides spell topics the same way.
//
// A meter publishes under veilgrid/meters/<id>/…; the DSO answers it under veilgrid/meters/<id>/replies/…,
// which only that meter reads; the bridge broadcasts under veilgrid/market/…, which every meter reads.

import { quote } from './field-problems.ts';

const METER_TOPIC_PREFIX = 'veilgrid/meters/';
const READINGS_SUFFIX = '/readings';
const STATUS_SUFFIX = '/status';
const KEYS_SUFFIX = '/keys';
const ASSET_REQUESTS_SUFFIX = '/assets';
const OFFERS_SUFFIX = '/offers';
const ASSET_REPLIES_SUFFIX = '/replies/assets';

/** What the collector subscribes to: the readings of every meter. */
export const READING_TOPIC_FILTER = 'veilgrid/meters/+/readings';

/** What the DSO subscribes to for reading-key certificates. */
export const KEY_CERTIFICATE_TOPIC_FILTER = 'veilgrid/meters/+/keys';

/** What the DSO subscribes to for asset requests. */
export const ASSET_REQUEST_TOPIC_FILTER = 'veilgrid/meters/+/assets';

/** What the bridge subscribes to for offers (until the mixnet carries them). */
export const OFFER_TOPIC_FILTER = 'veilgrid/meters/+/offers';

/** The bridge's broadcast of each interval's clearing result and the meters' fills: every meter reads it. */
export const CLEARING_TOPIC = 'veilgrid/market/clearing';

/** The market's deployment, clock and the DSO's prices (protocol/market-info.ts), retained, from the bridge. */
export const MARKET_INFO_TOPIC = 'veilgrid/market/info';

/** "veilgrid/mix/<relay id, 16 hex digits>": a relay's inbox. Any meter may publish into it; only its relay reads it. */
export function relayInboxTopic(relayIdHex: string): string {
  return 'veilgrid/mix/' + relayIdHex;
}

/**
 * The exit's inbox: the bridge's. A second relay whose peeled packet names the exit's relay id (the directory
 * head's exit record) publishes here; a fixed name, so the brokers' rules need not know the bridge's mix key.
 */
export const MIX_EXIT_TOPIC = 'veilgrid/mix/exit';

/** The DSO's signed head of the mixnet's relay directory (certificate.ts kind 5), retained. */
export const RELAY_DIRECTORY_HEAD_TOPIC = 'veilgrid/directory/head';

/** "veilgrid/directory/pages/<i>": page i of the relay directory (protocol/relay-directory.ts), retained. */
export function relayDirectoryPageTopic(index: number): string {
  return 'veilgrid/directory/pages/' + index;
}

/** The bridge's receipts: the digests of offers accepted on chain, and refusals with their reason. */
export const RECEIPT_TOPIC = 'veilgrid/market/receipts';

export const METER_ID_MAX_LENGTH = 64;

function isMeterIdChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) || // 0-9
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x61 && c <= 0x7a) || // a-z
    c === 0x2d || // -
    c === 0x2e || // .
    c === 0x5f // _
  );
}

/**
 * Why id cannot be a meter id, or undefined when it can. A meter id is 1..64 ASCII characters from
 * A-Z a-z 0-9 . _ - : it is one MQTT topic level (so no "/", "+", "#") and a database key.
 */
export function meterIdProblem(id: unknown): string | undefined {
  if (typeof id !== 'string') return 'meterId must be a string (got ' + typeof id + ')';
  if (id.length === 0 || id.length > METER_ID_MAX_LENGTH) {
    return 'meterId must be 1 to ' + METER_ID_MAX_LENGTH + ' characters long (got ' + id.length + ')';
  }
  for (let i = 0; i < id.length; i++) {
    if (!isMeterIdChar(id.charCodeAt(i))) {
      return 'meterId may contain only A-Z a-z 0-9 . _ - (character ' + i + ' of ' + quote(id) + ' is not one)';
    }
  }
  return undefined;
}

function checkedMeterId(meterId: string): string {
  const problem = meterIdProblem(meterId);
  if (problem) throw new Error(problem);
  return meterId;
}

function meterTopic(meterId: string, suffix: string): string {
  return METER_TOPIC_PREFIX + checkedMeterId(meterId) + suffix;
}

/** The meter id in "veilgrid/meters/<id><suffix>", or undefined if topic is not such a topic. */
function meterIdFromTopic(topic: string, suffix: string): string | undefined {
  if (topic.indexOf(METER_TOPIC_PREFIX) !== 0) return undefined;
  if (topic.length <= METER_TOPIC_PREFIX.length + suffix.length) return undefined;
  if (topic.substring(topic.length - suffix.length) !== suffix) return undefined;
  const id = topic.substring(METER_TOPIC_PREFIX.length, topic.length - suffix.length);
  return meterIdProblem(id) ? undefined : id;
}

/** "veilgrid/meters/<id>/readings": where a meter publishes its interval readings (QoS 1). */
export function readingTopic(meterId: string): string {
  return meterTopic(meterId, READINGS_SUFFIX);
}

/** "veilgrid/meters/<id>/status": the meter's online/offline status (its Last Will goes here). */
export function statusTopic(meterId: string): string {
  return meterTopic(meterId, STATUS_SUFFIX);
}

/** The meter id in a reading topic, or undefined if topic is not a valid reading topic. */
export function meterIdFromReadingTopic(topic: string): string | undefined {
  return meterIdFromTopic(topic, READINGS_SUFFIX);
}

/** "veilgrid/meters/<id>/keys": the meter's reading-key certificates (QoS 1, retained), each before its key's first use. */
export function keyCertificateTopic(meterId: string): string {
  return meterTopic(meterId, KEYS_SUFFIX);
}

/** The meter id in a key certificate topic, or undefined if topic is not one. */
export function meterIdFromKeyCertificateTopic(topic: string): string | undefined {
  return meterIdFromTopic(topic, KEYS_SUFFIX);
}

/** "veilgrid/meters/<id>/assets": the meter's asset request for an interval, sealed to the DSO (QoS 1). */
export function assetRequestTopic(meterId: string): string {
  return meterTopic(meterId, ASSET_REQUESTS_SUFFIX);
}

export function meterIdFromAssetRequestTopic(topic: string): string | undefined {
  return meterIdFromTopic(topic, ASSET_REQUESTS_SUFFIX);
}

/** "veilgrid/meters/<id>/replies/assets": the DSO's answer to the meter's asset requests; only that meter reads it. */
export function assetReplyTopic(meterId: string): string {
  return meterTopic(meterId, ASSET_REPLIES_SUFFIX);
}

/** "veilgrid/meters/<id>/offers": where a meter publishes its signed offers for the bridge (QoS 1) until the mixnet carries them. */
export function offerTopic(meterId: string): string {
  return meterTopic(meterId, OFFERS_SUFFIX);
}

export function meterIdFromOfferTopic(topic: string): string | undefined {
  return meterIdFromTopic(topic, OFFERS_SUFFIX);
}
