// MQTT 3.1.1 packets (OASIS standard, 29 Oct 2014): encoding to and decoding from the 8-bit
// strings that Espruino's sockets carry (one char per byte, 0..255).
//
// Payloads are binary and appear as Uint8Array in the API. Strings (topics, filters, client id,
// user name) are sent ASCII-only: an ESP32 Espruino string is 8-bit with no notion of UTF-8,
// so a non-ASCII char would mean different bytes on the device and on the host. ASCII is the
// same in UTF-8 and in 8-bit strings, so encoding refuses anything else with a clear error.
// Received strings are kept byte-for-byte as 8-bit strings (what Espruino itself produces);
// for ASCII topics that is the same string the sender used.
//
// Only what a QoS 0/1 client needs is supported: PUBREC/PUBREL/PUBCOMP (QoS 2) are rejected
// as unsupported, as is a QoS 2 PUBLISH (we never subscribe with QoS 2, so a broker must not
// send one).

import { appendBytes, bytesToByteString, byteStringToBytes } from '../protocol/byte-string.ts';
import { VeilgridError } from '../protocol/veilgrid-error.ts';

export type QoS = 0 | 1;

export interface Will {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
}

export interface ConnectPacket {
  kind: 'connect';
  clientId: string;
  cleanSession: boolean;
  keepAliveSeconds: number;
  username?: string;
  /** Binary data in MQTT; here an 8-bit string (each char one byte). */
  password?: string;
  will?: Will;
}
export interface ConnackPacket {
  kind: 'connack';
  sessionPresent: boolean;
  returnCode: number;
}
export interface PublishPacket {
  kind: 'publish';
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  dup: boolean;
  retain: boolean;
  /** Present exactly when qos is 1. */
  packetId?: number;
}
export interface PubackPacket {
  kind: 'puback';
  packetId: number;
}
export interface Subscription {
  filter: string;
  qos: QoS;
}
export interface SubscribePacket {
  kind: 'subscribe';
  packetId: number;
  subscriptions: Subscription[];
}
export interface SubackPacket {
  kind: 'suback';
  packetId: number;
  /** 0, 1, 2 (granted QoS) or 0x80 (failure), one per requested filter. */
  returnCodes: number[];
}
export interface UnsubscribePacket {
  kind: 'unsubscribe';
  packetId: number;
  filters: string[];
}
export interface UnsubackPacket {
  kind: 'unsuback';
  packetId: number;
}
export interface PingreqPacket {
  kind: 'pingreq';
}
export interface PingrespPacket {
  kind: 'pingresp';
}
export interface DisconnectPacket {
  kind: 'disconnect';
}

export type MqttPacket =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket;

/** Why a packet could not be encoded or decoded; the connection carrying it must be dropped. */
export class MqttPacketError extends VeilgridError {
  constructor(message: string) {
    super('MqttPacketError', 'mqtt-packet', message);
  }
}

/** CONNACK return codes (MQTT 3.1.1 section 3.2.2.3) as text for error messages. */
export function connackReason(returnCode: number): string {
  if (returnCode === 0) return 'connection accepted';
  if (returnCode === 1) return 'unacceptable protocol version';
  if (returnCode === 2) return 'client identifier rejected';
  if (returnCode === 3) return 'server unavailable';
  if (returnCode === 4) return 'bad user name or password';
  if (returnCode === 5) return 'not authorized';
  return 'unknown return code ' + returnCode;
}

const TYPE_CONNECT = 1;
const TYPE_CONNACK = 2;
const TYPE_PUBLISH = 3;
const TYPE_PUBACK = 4;
const TYPE_SUBSCRIBE = 8;
const TYPE_SUBACK = 9;
const TYPE_UNSUBSCRIBE = 10;
const TYPE_UNSUBACK = 11;
const TYPE_PINGREQ = 12;
const TYPE_PINGRESP = 13;
const TYPE_DISCONNECT = 14;

const MAX_REMAINING_LENGTH = 268435455;

// ---- encoding ----

function u16(n: number): string {
  return String.fromCharCode((n >> 8) & 255, n & 255);
}

function checkPacketId(id: number | undefined, what: string): number {
  if (typeof id !== 'number' || id < 1 || id > 65535 || id % 1 !== 0) {
    throw new MqttPacketError(what + ' needs a packet id 1..65535, got ' + id);
  }
  return id;
}

/** An MQTT UTF-8 string restricted to ASCII 1..127, with its 2-byte length. */
function asciiString(s: string, what: string): string {
  if (typeof s !== 'string') throw new MqttPacketError(what + ' must be a string');
  if (s.length > 65535) throw new MqttPacketError(what + ' is ' + s.length + ' bytes, more than 65535');
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c > 127) {
      throw new MqttPacketError(
        what +
          ' "' +
          s +
          '" has char code ' +
          c +
          ' at index ' +
          i +
          ': only ASCII 1..127 is allowed (device strings are 8-bit)',
      );
    }
  }
  return u16(s.length) + s;
}

function binaryField(data: string, what: string): string {
  if (data.length > 65535) throw new MqttPacketError(what + ' is ' + data.length + ' bytes, more than 65535');
  try {
    byteStringToBytes(data);
  } catch (err) {
    throw new MqttPacketError((err as Error).message);
  }
  return u16(data.length) + data;
}

function checkTopicName(topic: string, what: string): void {
  if (topic.length === 0) throw new MqttPacketError(what + ' must not be empty');
  if (topic.indexOf('+') >= 0 || topic.indexOf('#') >= 0) {
    throw new MqttPacketError(what + ' "' + topic + '" must not contain the wildcards + or #');
  }
}

function checkQos(qos: number, what: string): QoS {
  if (qos !== 0 && qos !== 1)
    throw new MqttPacketError(what + ' must be 0 or 1, got ' + qos + ' (QoS 2 is not supported)');
  return qos;
}

function remainingLength(n: number): string {
  if (n > MAX_REMAINING_LENGTH)
    throw new MqttPacketError('packet body of ' + n + ' bytes exceeds the MQTT maximum of 268435455');
  let s = '';
  do {
    let digit = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) digit = digit | 128;
    s += String.fromCharCode(digit);
  } while (n > 0);
  return s;
}

function frame(firstByte: number, body: string): string {
  return String.fromCharCode(firstByte) + remainingLength(body.length) + body;
}

function encodeConnect(p: ConnectPacket): string {
  if (p.keepAliveSeconds < 0 || p.keepAliveSeconds > 65535 || p.keepAliveSeconds % 1 !== 0) {
    throw new MqttPacketError('keep-alive must be 0..65535 seconds, got ' + p.keepAliveSeconds);
  }
  if (p.clientId.length === 0 && !p.cleanSession) {
    throw new MqttPacketError('an empty client id needs cleanSession (MQTT 3.1.1 section 3.1.3.1)');
  }
  if (p.password !== undefined && p.username === undefined) {
    throw new MqttPacketError('a password needs a user name in MQTT 3.1.1');
  }
  let flags = p.cleanSession ? 2 : 0;
  let payload = asciiString(p.clientId, 'client id');
  if (p.will) {
    checkTopicName(p.will.topic, 'will topic');
    flags |= 4 | (checkQos(p.will.qos, 'will QoS') << 3) | (p.will.retain ? 32 : 0);
    payload += asciiString(p.will.topic, 'will topic') + binaryField(bytesToByteString(p.will.payload), 'will payload');
  }
  if (p.username !== undefined) {
    flags |= 128;
    payload += asciiString(p.username, 'user name');
  }
  if (p.password !== undefined) {
    flags |= 64;
    payload += binaryField(p.password, 'password');
  }
  const header = asciiString('MQTT', 'protocol name') + String.fromCharCode(4, flags) + u16(p.keepAliveSeconds);
  return frame(TYPE_CONNECT << 4, header + payload);
}

function encodePublish(p: PublishPacket): string {
  checkTopicName(p.topic, 'topic');
  const qos = checkQos(p.qos, 'publish QoS');
  if (qos === 0 && p.dup) throw new MqttPacketError('a QoS 0 PUBLISH must not have DUP set');
  let head = asciiString(p.topic, 'topic');
  if (qos === 1) head += u16(checkPacketId(p.packetId, 'a QoS 1 PUBLISH'));
  const first = (TYPE_PUBLISH << 4) | (p.dup ? 8 : 0) | (qos << 1) | (p.retain ? 1 : 0);
  // The payload is appended last, to the packet's one string: no copy of it is ever made (appendBytes).
  return appendBytes(String.fromCharCode(first) + remainingLength(head.length + p.payload.length) + head, p.payload);
}

function encodeSubscribe(p: SubscribePacket): string {
  if (p.subscriptions.length === 0) throw new MqttPacketError('SUBSCRIBE needs at least one topic filter');
  let body = u16(checkPacketId(p.packetId, 'SUBSCRIBE'));
  for (let i = 0; i < p.subscriptions.length; i++) {
    const s = p.subscriptions[i];
    if (s.filter.length === 0) throw new MqttPacketError('topic filter must not be empty');
    body += asciiString(s.filter, 'topic filter') + String.fromCharCode(checkQos(s.qos, 'subscription QoS'));
  }
  return frame((TYPE_SUBSCRIBE << 4) | 2, body);
}

function encodeUnsubscribe(p: UnsubscribePacket): string {
  if (p.filters.length === 0) throw new MqttPacketError('UNSUBSCRIBE needs at least one topic filter');
  let body = u16(checkPacketId(p.packetId, 'UNSUBSCRIBE'));
  for (let i = 0; i < p.filters.length; i++) body += asciiString(p.filters[i], 'topic filter');
  return frame((TYPE_UNSUBSCRIBE << 4) | 2, body);
}

function encodeSuback(p: SubackPacket): string {
  let body = u16(checkPacketId(p.packetId, 'SUBACK'));
  for (let i = 0; i < p.returnCodes.length; i++) {
    const c = p.returnCodes[i];
    if (c !== 0 && c !== 1 && c !== 2 && c !== 128)
      throw new MqttPacketError('SUBACK return code ' + c + ' is not 0, 1, 2 or 0x80');
    body += String.fromCharCode(c);
  }
  return frame(TYPE_SUBACK << 4, body);
}

/** The bytes of one packet, as an 8-bit string ready for socket.write. */
export function encodePacket(p: MqttPacket): string {
  switch (p.kind) {
    case 'connect':
      return encodeConnect(p);
    case 'connack':
      if (p.returnCode < 0 || p.returnCode > 255) throw new MqttPacketError('CONNACK return code must be a byte');
      return frame(TYPE_CONNACK << 4, String.fromCharCode(p.sessionPresent ? 1 : 0, p.returnCode));
    case 'publish':
      return encodePublish(p);
    case 'puback':
      return frame(TYPE_PUBACK << 4, u16(checkPacketId(p.packetId, 'PUBACK')));
    case 'subscribe':
      return encodeSubscribe(p);
    case 'suback':
      return encodeSuback(p);
    case 'unsubscribe':
      return encodeUnsubscribe(p);
    case 'unsuback':
      return frame(TYPE_UNSUBACK << 4, u16(checkPacketId(p.packetId, 'UNSUBACK')));
    case 'pingreq':
      return frame(TYPE_PINGREQ << 4, '');
    case 'pingresp':
      return frame(TYPE_PINGRESP << 4, '');
    case 'disconnect':
      return frame(TYPE_DISCONNECT << 4, '');
  }
  throw new MqttPacketError('unknown packet kind ' + (p as { kind: string }).kind);
}

// ---- decoding ----

/** Reads fields of one packet body; every read is bounds-checked against the body's end. */
class BodyReader {
  pos: number;
  constructor(
    readonly s: string,
    start: number,
    readonly end: number,
    readonly packetName: string,
  ) {
    this.pos = start;
  }

  fail(what: string): never {
    throw new MqttPacketError('malformed ' + this.packetName + ': ' + what);
  }

  need(n: number, what: string): void {
    if (this.pos + n > this.end) this.fail(what + ' runs past the end of the packet');
  }

  byte(what: string): number {
    this.need(1, what);
    return this.s.charCodeAt(this.pos++);
  }

  u16(what: string): number {
    this.need(2, what);
    const v = (this.s.charCodeAt(this.pos) << 8) | this.s.charCodeAt(this.pos + 1);
    this.pos += 2;
    return v;
  }

  packetId(): number {
    const id = this.u16('packet id');
    if (id === 0) this.fail('packet id 0 is not allowed');
    return id;
  }

  /** A length-prefixed field as an 8-bit string. */
  field(what: string): string {
    const n = this.u16(what + ' length');
    this.need(n, what);
    const v = this.s.substring(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  text(what: string): string {
    const v = this.field(what);
    if (v.indexOf(String.fromCharCode(0)) >= 0) this.fail(what + ' contains the null character U+0000');
    return v;
  }

  rest(): string {
    const v = this.s.substring(this.pos, this.end);
    this.pos = this.end;
    return v;
  }

  done(): void {
    if (this.pos !== this.end) this.fail(this.end - this.pos + ' unexpected bytes at the end');
  }
}

function expectFlags(type: number, flags: number, name: string): void {
  const required = type === TYPE_SUBSCRIBE || type === TYPE_UNSUBSCRIBE ? 2 : 0;
  if (flags !== required) {
    throw new MqttPacketError('malformed ' + name + ': fixed-header flags are ' + flags + ', must be ' + required);
  }
}

const PACKET_NAMES = [
  'reserved type 0',
  'CONNECT',
  'CONNACK',
  'PUBLISH',
  'PUBACK',
  'PUBREC',
  'PUBREL',
  'PUBCOMP',
  'SUBSCRIBE',
  'SUBACK',
  'UNSUBSCRIBE',
  'UNSUBACK',
  'PINGREQ',
  'PINGRESP',
  'DISCONNECT',
  'reserved type 15',
];

/** Rejects a first byte that no valid (supported) packet starts with. */
function checkFirstByte(first: number): void {
  const type = first >> 4;
  const flags = first & 15;
  const name = PACKET_NAMES[type];
  if (type === 0 || type === 15)
    throw new MqttPacketError('malformed packet: ' + name + ' (first byte 0x' + first.toString(16) + ')');
  if (type >= 5 && type <= 7) throw new MqttPacketError('unsupported ' + name + ': this client does not do QoS 2');
  if (type === TYPE_PUBLISH) {
    const qos = (flags >> 1) & 3;
    if (qos === 3) throw new MqttPacketError('malformed PUBLISH: QoS bits are 3');
    if (qos === 2)
      throw new MqttPacketError('unsupported PUBLISH with QoS 2: this client subscribes with QoS 0/1 only');
    if (qos === 0 && flags & 8) throw new MqttPacketError('malformed PUBLISH: DUP set on a QoS 0 message');
    return;
  }
  expectFlags(type, flags, name);
}

function decodeConnect(r: BodyReader): ConnectPacket {
  const protocol = r.field('protocol name');
  if (protocol !== 'MQTT') r.fail('protocol name "' + protocol + '" is not "MQTT"');
  const level = r.byte('protocol level');
  if (level !== 4) r.fail('protocol level ' + level + ' is not 4 (MQTT 3.1.1)');
  const flags = r.byte('connect flags');
  if (flags & 1) r.fail('reserved connect flag is set');
  const hasWill = (flags & 4) !== 0;
  const willQos = (flags >> 3) & 3;
  const willRetain = (flags & 32) !== 0;
  if (!hasWill && (willQos !== 0 || willRetain)) r.fail('will QoS/retain set without a will');
  if (willQos > 1) r.fail('will QoS ' + willQos + ' is not supported');
  if (flags & 64 && !(flags & 128)) r.fail('password flag set without user name flag');
  const p: ConnectPacket = {
    kind: 'connect',
    clientId: '',
    cleanSession: (flags & 2) !== 0,
    keepAliveSeconds: r.u16('keep-alive'),
  };
  p.clientId = r.text('client id');
  if (hasWill) {
    const topic = r.text('will topic');
    const payload = byteStringToBytes(r.field('will message'));
    p.will = { topic: topic, payload: payload, qos: willQos as QoS, retain: willRetain };
  }
  if (flags & 128) p.username = r.text('user name');
  if (flags & 64) p.password = r.field('password');
  r.done();
  return p;
}

function decodePublish(r: BodyReader, flags: number): PublishPacket {
  const qos = ((flags >> 1) & 3) as QoS;
  const topic = r.text('topic');
  if (topic.length === 0) r.fail('empty topic name');
  if (topic.indexOf('+') >= 0 || topic.indexOf('#') >= 0) r.fail('topic "' + topic + '" contains a wildcard');
  const p: PublishPacket = {
    kind: 'publish',
    topic: topic,
    payload: new Uint8Array(0),
    qos: qos,
    dup: (flags & 8) !== 0,
    retain: (flags & 1) !== 0,
  };
  if (qos === 1) p.packetId = r.packetId();
  p.payload = byteStringToBytes(r.rest());
  return p;
}

function decodeSubscribe(r: BodyReader): SubscribePacket {
  const p: SubscribePacket = { kind: 'subscribe', packetId: r.packetId(), subscriptions: [] };
  while (r.pos < r.end) {
    const filter = r.text('topic filter');
    const qos = r.byte('requested QoS');
    if (qos > 2) r.fail('requested QoS byte is ' + qos);
    if (qos === 2) r.fail('requested QoS 2 is not supported');
    p.subscriptions.push({ filter: filter, qos: qos as QoS });
  }
  if (p.subscriptions.length === 0) r.fail('no topic filter');
  return p;
}

function decodeUnsubscribe(r: BodyReader): UnsubscribePacket {
  const p: UnsubscribePacket = { kind: 'unsubscribe', packetId: r.packetId(), filters: [] };
  while (r.pos < r.end) p.filters.push(r.text('topic filter'));
  if (p.filters.length === 0) r.fail('no topic filter');
  return p;
}

function decodeSuback(r: BodyReader): SubackPacket {
  const p: SubackPacket = { kind: 'suback', packetId: r.packetId(), returnCodes: [] };
  while (r.pos < r.end) {
    const c = r.byte('return code');
    if (c !== 0 && c !== 1 && c !== 2 && c !== 128) r.fail('return code ' + c + ' is not 0, 1, 2 or 0x80');
    p.returnCodes.push(c);
  }
  if (p.returnCodes.length === 0) r.fail('no return code');
  return p;
}

function decodeBody(first: number, s: string, start: number, end: number): MqttPacket {
  const type = first >> 4;
  const r = new BodyReader(s, start, end, PACKET_NAMES[type]);
  let p: MqttPacket;
  switch (type) {
    case TYPE_CONNECT:
      return decodeConnect(r);
    case TYPE_CONNACK: {
      const ackFlags = r.byte('acknowledge flags');
      if (ackFlags > 1) r.fail('reserved acknowledge flags are set');
      p = { kind: 'connack', sessionPresent: ackFlags === 1, returnCode: r.byte('return code') };
      break;
    }
    case TYPE_PUBLISH:
      return decodePublish(r, first & 15);
    case TYPE_PUBACK:
      p = { kind: 'puback', packetId: r.packetId() };
      break;
    case TYPE_SUBSCRIBE:
      return decodeSubscribe(r);
    case TYPE_SUBACK:
      return decodeSuback(r);
    case TYPE_UNSUBSCRIBE:
      return decodeUnsubscribe(r);
    case TYPE_UNSUBACK:
      p = { kind: 'unsuback', packetId: r.packetId() };
      break;
    case TYPE_PINGREQ:
      p = { kind: 'pingreq' };
      break;
    case TYPE_PINGRESP:
      p = { kind: 'pingresp' };
      break;
    default:
      p = { kind: 'disconnect' };
  }
  r.done();
  return p;
}

/**
 * Splits a byte stream into packets. Feed it whatever the socket delivers, however fragmented;
 * it returns the packets completed so far and keeps the rest. A malformed packet throws
 * MqttPacketError (and so does every later push): the connection must then be closed.
 */
export class MqttStreamDecoder {
  private buffer: string;
  private failure: MqttPacketError | undefined;
  /** Largest packet (header included) accepted; a bigger announced length is rejected at once. */
  readonly maxPacketBytes: number;

  constructor(maxPacketBytes?: number) {
    this.buffer = '';
    this.failure = undefined;
    this.maxPacketBytes = maxPacketBytes ?? 16384;
  }

  /** Bytes received but not yet part of a complete packet. */
  pendingBytes(): number {
    return this.buffer.length;
  }

  push(chunk: string): MqttPacket[] {
    if (this.failure) throw this.failure;
    this.buffer += chunk;
    const packets: MqttPacket[] = [];
    try {
      let p = this.next();
      while (p) {
        packets.push(p);
        p = this.next();
      }
    } catch (err) {
      this.failure = err instanceof MqttPacketError ? err : new MqttPacketError(String(err));
      this.buffer = '';
      throw this.failure;
    }
    return packets;
  }

  private next(): MqttPacket | undefined {
    const s = this.buffer;
    if (s.length === 0) return undefined;
    const first = s.charCodeAt(0);
    checkFirstByte(first);
    let length = 0;
    let multiplier = 1;
    let i = 1;
    for (;;) {
      if (i > 4)
        throw new MqttPacketError(
          'malformed ' + PACKET_NAMES[first >> 4] + ': remaining length takes more than 4 bytes',
        );
      if (i >= s.length) return undefined;
      const digit = s.charCodeAt(i);
      length += (digit & 127) * multiplier;
      multiplier *= 128;
      i++;
      if ((digit & 128) === 0) break;
    }
    if (i + length > this.maxPacketBytes) {
      throw new MqttPacketError(
        PACKET_NAMES[first >> 4] +
          ' of ' +
          (i + length) +
          ' bytes exceeds the limit of ' +
          this.maxPacketBytes +
          ' bytes',
      );
    }
    if (s.length < i + length) return undefined;
    const packet = decodeBody(first, s, i, i + length);
    this.buffer = s.substring(i + length);
    return packet;
  }
}
