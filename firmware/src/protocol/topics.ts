// MQTT topic names for meter traffic, and the meter id rule they depend on. Shared by the firmware and
// the host tools (collector, testbed), so both sides spell topics the same way.

import { quote } from './field-problems.ts';

const METER_TOPIC_PREFIX = 'veilgrid/meters/';
const READINGS_SUFFIX = '/readings';
const STATUS_SUFFIX = '/status';
const KEYS_SUFFIX = '/keys';

/** What the collector subscribes to: the readings of every meter. */
export const READING_TOPIC_FILTER = 'veilgrid/meters/+/readings';

/** What the DSO subscribes to for reading-key certificates. */
export const KEY_CERTIFICATE_TOPIC_FILTER = 'veilgrid/meters/+/keys';

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

/** "veilgrid/meters/<id>/readings": where a meter publishes its interval readings (QoS 1). */
export function readingTopic(meterId: string): string {
  return METER_TOPIC_PREFIX + checkedMeterId(meterId) + READINGS_SUFFIX;
}

/** "veilgrid/meters/<id>/status": the meter's online/offline status (its Last Will goes here). */
export function statusTopic(meterId: string): string {
  return METER_TOPIC_PREFIX + checkedMeterId(meterId) + STATUS_SUFFIX;
}

/** The meter id in a reading topic, or undefined if topic is not a valid reading topic. */
export function meterIdFromReadingTopic(topic: string): string | undefined {
  if (topic.indexOf(METER_TOPIC_PREFIX) !== 0) return undefined;
  if (topic.length <= METER_TOPIC_PREFIX.length + READINGS_SUFFIX.length) return undefined;
  if (topic.substring(topic.length - READINGS_SUFFIX.length) !== READINGS_SUFFIX) return undefined;
  const id = topic.substring(METER_TOPIC_PREFIX.length, topic.length - READINGS_SUFFIX.length);
  return meterIdProblem(id) ? undefined : id;
}

/** "veilgrid/meters/<id>/keys": the meter's reading-key certificates (QoS 1, retained), each before its key's first use. */
export function keyCertificateTopic(meterId: string): string {
  return METER_TOPIC_PREFIX + checkedMeterId(meterId) + KEYS_SUFFIX;
}

/** The meter id in a key certificate topic, or undefined if topic is not one. */
export function meterIdFromKeyCertificateTopic(topic: string): string | undefined {
  if (topic.indexOf(METER_TOPIC_PREFIX) !== 0) return undefined;
  if (topic.length <= METER_TOPIC_PREFIX.length + KEYS_SUFFIX.length) return undefined;
  if (topic.substring(topic.length - KEYS_SUFFIX.length) !== KEYS_SUFFIX) return undefined;
  const id = topic.substring(METER_TOPIC_PREFIX.length, topic.length - KEYS_SUFFIX.length);
  return meterIdProblem(id) ? undefined : id;
}
