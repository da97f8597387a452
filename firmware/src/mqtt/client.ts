// MQTT 3.1.1 client for Espruino's `net` sockets, written to avoid what Espruino's own MQTT
// module lacks (EspruinoDocs modules/MQTT.js: no Will, the clean-session flag always set, QoS 1 without an
// inflight store or retransmission, no timeout when a PINGRESP is missing):
// - Last Will, and a clean-session flag that is honoured (default: persistent session);
// - QoS 1 publishing through the persistent Outbox: a message is in flash before it is sent,
//   leaves flash only on PUBACK, is resent with DUP after a reconnect or when its PUBACK is late,
//   and messages go out in the order they were published;
// - keep-alive PINGREQ with a PINGRESP timeout: a half-open connection is declared dead;
// - CONNACK timeout, and a clear reason for every disconnect (refused credentials included);
// - reconnect with exponential backoff and jitter (the random source is passed in);
// - a stream decoder that copes with any fragmentation and rejects malformed packets.
import type { Clock } from '../platform/clock.ts';
import {
  connackReason,
  encodePacket,
  MqttStreamDecoder,
  type MqttPacket,
  type PublishPacket,
  type QoS,
  type Will,
} from './packets.ts';
import type { Outbox, OutboxEntry } from './outbox.ts';

/** The parts of Espruino's `net` module and its sockets the client uses. */
export interface MqttSocket {
  write(data: string): boolean;
  end(): void;
  on(event: string, cb: (arg?: any) => void): void;
}
export interface MqttNet {
  connect(options: { host: string; port: number }, onConnect: () => void): MqttSocket;
}

export interface MqttClientOptions {
  net: MqttNet;
  clock: Clock;
  host: string;
  port: number;
  clientId: string;
  username?: string;
  /**
   * 8-bit string (MQTT passwords are binary), or a function called for each CONNECT that returns one
   * (a meter's login is new for every connection: keys/meter-login.ts). If it throws, that attempt
   * fails like a lost connection and the next one calls it again.
   */
  password?: string | (() => string);
  keepAliveSeconds: number;
  will?: Will;
  /** Default false: the broker keeps our subscriptions and queued QoS 1 messages across reconnects. */
  cleanSession?: boolean;
  /** Uniform in [0, 1): the jitter source. Default Math.random (main.ts seeds it from the secure element). */
  random?: () => number;
  /** Time allowed from opening the TCP connection to CONNACK (default 10 s). */
  connackTimeoutMs?: number;
  /** Time allowed for PINGRESP after PINGREQ (default half the keep-alive, at most 10 s). */
  pingTimeoutMs?: number;
  /** A QoS 1 message not acknowledged within this time is sent again with DUP (default 20 s). */
  ackTimeoutMs?: number;
  /** First reconnect delay; doubles per failed attempt up to maxBackoffMs (defaults 1 s, 60 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** QoS 1 messages sent but not yet acknowledged at any time (default 8). */
  maxInFlight?: number;
  /** Largest incoming packet accepted (default 16 KB). */
  maxPacketBytes?: number;
  onConnect?: () => void;
  onDisconnect?: (reason: string, code: MqttDisconnectCode) => void;
  /** Diagnostics besides disconnects: each scheduled reconnect, a refused subscription, a handler that threw. */
  log?: (message: string) => void;
}

export type MessageHandler = (topic: string, payload: Uint8Array, packet: PublishPacket) => void;

/**
 * A QoS 1 message sent and not yet acknowledged. Its topic and payload stay in the outbox's flash and are
 * read again to resend it: eight payloads held in RAM took about 250 JsVars on the real interpreter.
 */
interface InFlight {
  /** Its outbox entry's id. */
  id: number;
  packetId: number;
  /** Sent at least once (on this or an earlier connection, or before a reboot). */
  sent: boolean;
  /** To be sent (again) on this connection: after a reconnect or a late PUBACK (see pump). */
  due: boolean;
}

interface Subscription {
  filter: string;
  qos: QoS;
  handler: MessageHandler;
}

/** MQTT topic filter matching (section 4.7): "+" one level, "#" the rest. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return !(i === 0 && t[0].charAt(0) === '$');
    if (i >= t.length) return false;
    if (f[i] === '+') {
      if (i === 0 && t[0].charAt(0) === '$') return false;
      continue;
    }
    if (f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Why the connection was lost (or never made): passed to onDisconnect with the sentence for people. */
export const MQTT_DISCONNECT = {
  /** stop() by the application. */
  stopped: 'stopped',
  /** No TCP connection, or it closed before CONNACK. */
  unreachable: 'unreachable',
  /** The connection closed after CONNACK. */
  closed: 'closed',
  noConnack: 'no-connack',
  /** CONNACK with a refusal (bad login, identifier rejected, ...). */
  refused: 'refused',
  /** The password function threw (the secure element did not make the login). */
  login: 'login',
  /** The broker sent what MQTT does not allow. */
  protocolError: 'protocol-error',
  writeFailed: 'write-failed',
  pingTimeout: 'ping-timeout',
} as const;

export type MqttDisconnectCode = (typeof MQTT_DISCONNECT)[keyof typeof MQTT_DISCONNECT];

/** What each option left out of MqttClientOptions means (a 0 given is a 0, not the default). */
export const MQTT_CLIENT_DEFAULTS = {
  connackTimeoutMs: 10000,
  /** Half the keep-alive, at most this. */
  maxPingTimeoutMs: 10000,
  ackTimeoutMs: 20000,
  minBackoffMs: 1000,
  maxBackoffMs: 60000,
  maxInFlight: 8,
  maxPacketBytes: 16384,
};

/** The options with every default filled in, once. */
interface ResolvedTimings {
  connackTimeoutMs: number;
  pingTimeoutMs: number;
  ackTimeoutMs: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  maxInFlight: number;
  maxPacketBytes: number;
}

function resolveTimings(o: MqttClientOptions): ResolvedTimings {
  const d = MQTT_CLIENT_DEFAULTS;
  const t: ResolvedTimings = {
    connackTimeoutMs: o.connackTimeoutMs ?? d.connackTimeoutMs,
    pingTimeoutMs: o.pingTimeoutMs ?? Math.min(d.maxPingTimeoutMs, o.keepAliveSeconds * 500),
    ackTimeoutMs: o.ackTimeoutMs ?? d.ackTimeoutMs,
    minBackoffMs: o.minBackoffMs ?? d.minBackoffMs,
    maxBackoffMs: o.maxBackoffMs ?? d.maxBackoffMs,
    maxInFlight: o.maxInFlight ?? d.maxInFlight,
    maxPacketBytes: o.maxPacketBytes ?? d.maxPacketBytes,
  };
  const positive = ['connackTimeoutMs', 'ackTimeoutMs', 'maxInFlight', 'maxPacketBytes'] as const;
  for (let i = 0; i < positive.length; i++) {
    if (!(t[positive[i]] > 0)) throw new Error('MQTT ' + positive[i] + ' must be above 0, got ' + t[positive[i]]);
  }
  if (!(t.minBackoffMs >= 0 && t.maxBackoffMs >= t.minBackoffMs)) {
    throw new Error(
      'MQTT backoff must be 0 <= minBackoffMs <= maxBackoffMs, got ' + t.minBackoffMs + ' and ' + t.maxBackoffMs,
    );
  }
  return t;
}

const STOPPED = 0;
const WAITING = 1;
const CONNECTING = 2;
const CONNECTED = 3;

export class MqttClient {
  onConnect: (() => void) | undefined;
  onDisconnect: ((reason: string, code: MqttDisconnectCode) => void) | undefined;
  private readonly o: MqttClientOptions;
  private readonly t: ResolvedTimings;
  private readonly outbox: Outbox;
  private readonly random: () => number;
  private state: number;
  private socket: MqttSocket | undefined;
  private decoder: MqttStreamDecoder;
  private attempts: number;
  private lastSocketError: string;
  private timers: { [name: string]: number | undefined };
  private pingOutstanding: boolean;
  private inFlight: InFlight[];
  /** id of the newest outbox entry taken into the in-flight window. */
  private cursor: number;
  private nextPacketId: number;
  private subscriptions: Subscription[];

  constructor(options: MqttClientOptions, outbox: Outbox) {
    if (!(options.keepAliveSeconds >= 0 && options.keepAliveSeconds <= 65535)) {
      throw new Error('MQTT keepAliveSeconds must be 0..65535, got ' + options.keepAliveSeconds);
    }
    this.o = options;
    this.t = resolveTimings(options);
    this.outbox = outbox;
    this.random = options.random ?? Math.random;
    this.onConnect = options.onConnect;
    this.onDisconnect = options.onDisconnect;
    this.state = STOPPED;
    this.socket = undefined;
    this.decoder = new MqttStreamDecoder(this.t.maxPacketBytes);
    this.attempts = 0;
    this.lastSocketError = '';
    this.timers = {};
    this.pingOutstanding = false;
    this.inFlight = [];
    this.cursor = 0;
    this.nextPacketId = 1;
    this.subscriptions = [];
  }

  /** Connects, and keeps reconnecting until stop(). */
  start(): void {
    if (this.state !== STOPPED) return;
    this.attempts = 0;
    this.connect();
  }

  /** Disconnects cleanly (DISCONNECT: the broker discards the Will) and stops reconnecting. */
  stop(): void {
    if (this.state === STOPPED) return;
    const wasConnected = this.state === CONNECTED;
    if (wasConnected) this.send({ kind: 'disconnect' });
    this.closeSocket();
    this.state = STOPPED;
    this.clearTimer('reconnect');
    if (wasConnected) this.notifyDisconnect(MQTT_DISCONNECT.stopped, 'stopped by the application');
  }

  isConnected(): boolean {
    return this.state === CONNECTED;
  }

  /** QoS 1 messages stored and not yet acknowledged by the broker. */
  pendingCount(): number {
    return this.outbox.size();
  }

  /**
   * QoS 1: stored in the outbox first (throws OutboxFullError if there is no room: nothing is
   * lost silently), then sent in order when connected. QoS 0: sent now if connected, else dropped;
   * returns whether it was handed to the socket. `retain` (default false) asks the broker to keep
   * the message for later subscribers; a QoS 1 message keeps it in the outbox and when resent.
   * `note` (QoS 1 only) is stored with the message in the same outbox record (Outbox.notes()).
   */
  publish(topic: string, payload: Uint8Array, qos: QoS, retain?: boolean, note?: string): boolean {
    const keep = retain === true;
    if (qos === 1) {
      // Refuse a topic that can never be sent before it is stored (it would block the outbox).
      encodePacket({
        kind: 'publish',
        topic: topic,
        payload: new Uint8Array(0),
        qos: 1,
        dup: false,
        retain: keep,
        packetId: 1,
      });
      this.outbox.append(topic, payload, keep, note);
      this.pump();
      return true;
    }
    if (qos !== 0) throw new Error('publish QoS must be 0 or 1, got ' + qos);
    if (this.state !== CONNECTED) return false;
    return this.send({ kind: 'publish', topic: topic, payload: payload, qos: 0, dup: false, retain: keep });
  }

  /** Subscribes now if connected, and again after every reconnect. */
  subscribe(filter: string, qos: QoS, onMessage: MessageHandler): void {
    this.subscriptions.push({ filter: filter, qos: qos, handler: onMessage });
    if (this.state === CONNECTED) this.sendSubscribe([this.subscriptions[this.subscriptions.length - 1]]);
  }

  /** Drops every subscription to filter: UNSUBSCRIBE now if connected, and no longer renewed after a reconnect. */
  unsubscribe(filter: string): void {
    const kept: Subscription[] = [];
    for (let i = 0; i < this.subscriptions.length; i++)
      if (this.subscriptions[i].filter !== filter) kept.push(this.subscriptions[i]);
    if (kept.length === this.subscriptions.length) return;
    // A new list, not a splice: onPublish may be walking the old one (a handler that unsubscribes).
    this.subscriptions = kept;
    if (this.state === CONNECTED)
      this.send({ kind: 'unsubscribe', packetId: this.allocatePacketId(), filters: [filter] });
  }

  // ---- connection lifecycle ----

  private connect(): void {
    this.state = CONNECTING;
    this.attempts++;
    this.decoder = new MqttStreamDecoder(this.t.maxPacketBytes);
    this.lastSocketError = '';
    this.pingOutstanding = false;
    let socket: MqttSocket;
    try {
      socket = this.o.net.connect({ host: this.o.host, port: this.o.port }, () => {
        if (this.socket === socket) this.onTcpConnect();
      });
    } catch (err) {
      this.connectionLost(MQTT_DISCONNECT.unreachable, 'cannot connect to ' + this.where() + ': ' + errorText(err));
      return;
    }
    this.socket = socket;
    socket.on('data', (data: string) => {
      if (this.socket === socket) this.onData(data);
    });
    socket.on('error', (err: { code: number; message: string }) => {
      if (this.socket === socket) this.lastSocketError = err.message + ' (' + err.code + ')';
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      const error = this.lastSocketError;
      if (this.state === CONNECTED)
        this.connectionLost(
          MQTT_DISCONNECT.closed,
          'connection to ' + this.where() + ' closed' + (error ? ': ' + error : ''),
        );
      else
        this.connectionLost(
          MQTT_DISCONNECT.unreachable,
          'could not connect to ' + this.where() + ': ' + (error || 'connection closed before CONNACK'),
        );
    });
    this.setTimer('connack', this.t.connackTimeoutMs, () => {
      this.connectionLost(
        MQTT_DISCONNECT.noConnack,
        'no CONNACK from ' + this.where() + ' within ' + this.t.connackTimeoutMs + ' ms',
      );
    });
  }

  private onTcpConnect(): void {
    const connect: MqttPacket = {
      kind: 'connect',
      clientId: this.o.clientId,
      cleanSession: !!this.o.cleanSession,
      keepAliveSeconds: this.o.keepAliveSeconds,
    };
    if (this.o.username !== undefined) connect.username = this.o.username;
    const password = this.o.password;
    if (typeof password === 'function') {
      try {
        connect.password = password();
      } catch (e) {
        this.connectionLost(MQTT_DISCONNECT.login, 'cannot make the broker login: ' + ((e as Error).message || e));
        return;
      }
    } else if (password !== undefined) {
      connect.password = password;
    }
    if (this.o.will) connect.will = this.o.will;
    this.send(connect);
  }

  private onConnack(returnCode: number): void {
    this.clearTimer('connack');
    if (returnCode !== 0) {
      this.connectionLost(
        MQTT_DISCONNECT.refused,
        'broker ' +
          this.where() +
          ' refused the connection: ' +
          connackReason(returnCode) +
          ' (CONNACK ' +
          returnCode +
          ')',
      );
      return;
    }
    this.state = CONNECTED;
    this.attempts = 0;
    this.schedulePing();
    if (this.subscriptions.length > 0) this.sendSubscribe(this.subscriptions);
    // Everything unacknowledged goes out again, oldest first, then the rest of the outbox.
    for (let i = 0; i < this.inFlight.length; i++) this.inFlight[i].due = true;
    this.pump();
    if (this.state === CONNECTED && this.onConnect) this.onConnect();
  }

  /** Ends the current connection or attempt, reports why, and schedules the next attempt. */
  private connectionLost(code: MqttDisconnectCode, reason: string): void {
    if (this.state === STOPPED || this.state === WAITING) return;
    this.closeSocket();
    this.state = WAITING;
    this.notifyDisconnect(code, reason);
    if (this.state !== WAITING) return; // the callback stopped or restarted us
    const base = Math.min(this.t.maxBackoffMs, this.t.minBackoffMs * Math.pow(2, Math.min(this.attempts, 30) - 1));
    // "Equal jitter": half the delay fixed, half random, so meters that lost the same broker spread out.
    const delay = Math.round(base / 2 + this.random() * (base / 2));
    if (this.o.log)
      this.o.log('reconnecting to ' + this.where() + ' in ' + delay + ' ms (attempt ' + (this.attempts + 1) + ')');
    this.setTimer('reconnect', delay, () => this.connect());
  }

  private closeSocket(): void {
    this.clearTimer('connack');
    this.clearTimer('ping');
    this.clearTimer('pingTimeout');
    this.clearTimer('ack');
    this.clearTimer('send');
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      try {
        socket.end();
      } catch (_err) {
        // The socket is already gone; nothing more to release.
      }
    }
  }

  private notifyDisconnect(code: MqttDisconnectCode, reason: string): void {
    if (this.onDisconnect) this.onDisconnect(reason, code);
  }

  private where(): string {
    return this.o.host + ':' + this.o.port;
  }

  // ---- incoming ----

  private onData(data: string): void {
    let packets: MqttPacket[];
    try {
      packets = this.decoder.push(data);
    } catch (err) {
      this.connectionLost(MQTT_DISCONNECT.protocolError, 'protocol error from ' + this.where() + ': ' + errorText(err));
      return;
    }
    for (let i = 0; i < packets.length && this.socket; i++) this.handle(packets[i]);
  }

  private handle(p: MqttPacket): void {
    if (this.state !== CONNECTED && p.kind !== 'connack') {
      this.connectionLost(
        MQTT_DISCONNECT.protocolError,
        'protocol error from ' + this.where() + ': ' + p.kind + ' before CONNACK',
      );
      return;
    }
    switch (p.kind) {
      case 'connack':
        if (this.state === CONNECTED)
          this.connectionLost(
            MQTT_DISCONNECT.protocolError,
            'protocol error from ' + this.where() + ': a second CONNACK',
          );
        else this.onConnack(p.returnCode);
        return;
      case 'puback':
        this.onPuback(p.packetId);
        return;
      case 'pingresp':
        this.pingOutstanding = false;
        this.clearTimer('pingTimeout');
        return;
      case 'publish':
        this.onPublish(p);
        return;
      case 'suback':
        for (let i = 0; i < p.returnCodes.length; i++) {
          if (p.returnCodes[i] === 128 && this.o.log)
            this.o.log('broker refused a subscription (SUBACK ' + p.packetId + ', filter ' + (i + 1) + ')');
        }
        return;
      case 'unsuback':
        return;
      default:
        this.connectionLost(
          MQTT_DISCONNECT.protocolError,
          'protocol error from ' + this.where() + ': a broker must not send ' + p.kind,
        );
    }
  }

  private onPublish(p: PublishPacket): void {
    const subscriptions = this.subscriptions;
    for (let i = 0; i < subscriptions.length; i++) {
      const s = subscriptions[i];
      if (!topicMatches(s.filter, p.topic)) continue;
      try {
        s.handler(p.topic, p.payload, p);
      } catch (err) {
        if (this.o.log) this.o.log('handler for "' + s.filter + '" threw: ' + errorText(err));
      }
    }
    if (p.qos === 1 && p.packetId !== undefined) this.send({ kind: 'puback', packetId: p.packetId });
  }

  private onPuback(packetId: number): void {
    let index = -1;
    for (let i = 0; i < this.inFlight.length; i++) if (this.inFlight[i].packetId === packetId) index = i;
    if (index < 0) return; // a late PUBACK for a message already acknowledged
    const entry = this.inFlight[index];
    this.inFlight.splice(index, 1);
    this.outbox.ack(entry.id);
    this.clearTimer('ack');
    this.pump();
    if (this.inFlight.length > 0) this.armAckTimer();
  }

  // ---- outgoing ----

  /** Writes one packet; a failing write drops the connection. Returns whether it was written. */
  private send(p: MqttPacket): boolean {
    const socket = this.socket;
    if (!socket) return false;
    let bytes: string;
    try {
      bytes = encodePacket(p);
    } catch (err) {
      if (p.kind === 'publish' && p.qos === 0) throw err; // the caller's mistake: tell the caller
      this.connectionLost(MQTT_DISCONNECT.writeFailed, 'cannot encode ' + p.kind + ': ' + errorText(err));
      return false;
    }
    try {
      socket.write(bytes);
    } catch (err) {
      this.connectionLost(MQTT_DISCONNECT.writeFailed, 'write to ' + this.where() + ' failed: ' + errorText(err));
      return false;
    }
    return true;
  }

  /**
   * Sends the next message that waits: an in-flight one due on this connection (oldest first), else the next
   * outbox entry if the window has room. Each call sends one; what is left goes out one message per task
   * (a timer of 0 ms), because a socket write waits in JsVars until Espruino's idle loop sends it (the
   * socket's send buffer, libs/network/socketserver.c clientRequestWrite): resending the eight in flight
   * after a reconnect in one task held about 2.3 KB there, in the backlog, when memory is at its peak.
   */
  private pump(): void {
    if (this.state !== CONNECTED) return;
    let entry: InFlight | undefined;
    for (let i = 0; i < this.inFlight.length && !entry; i++) if (this.inFlight[i].due) entry = this.inFlight[i];
    let stored: OutboxEntry | undefined;
    if (!entry) {
      if (this.inFlight.length >= this.t.maxInFlight) return;
      stored = this.cursor === 0 ? this.outbox.first() : this.outbox.after(this.cursor);
      if (!stored) return;
      this.cursor = stored.id;
      entry = {
        id: stored.id,
        packetId: this.allocatePacketId(),
        sent: this.outbox.isRecovered(stored.id),
        due: true,
      };
      this.inFlight.push(entry);
    }
    this.sendEntry(entry, stored);
    if (this.state === CONNECTED && this.timers.send === undefined) this.setTimer('send', 0, () => this.pump());
  }

  /** Sends an in-flight message: `stored` is its outbox entry, read again from the outbox when not given. */
  private sendEntry(entry: InFlight, stored?: OutboxEntry): void {
    entry.due = false;
    // An in-flight message is unacknowledged, so the outbox still holds it.
    const m = stored || this.outbox.get(entry.id);
    if (!m) return;
    const dup = entry.sent;
    entry.sent = true;
    this.send({
      kind: 'publish',
      topic: m.topic,
      payload: m.payload,
      qos: 1,
      dup: dup,
      retain: m.retain,
      packetId: entry.packetId,
    });
    this.armAckTimer();
  }

  private armAckTimer(): void {
    if (this.timers.ack !== undefined) return;
    this.setTimer('ack', this.t.ackTimeoutMs, () => {
      if (this.state !== CONNECTED) return;
      for (let i = 0; i < this.inFlight.length; i++) this.inFlight[i].due = true;
      this.pump();
    });
  }

  private allocatePacketId(): number {
    for (;;) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      let used = false;
      for (let i = 0; i < this.inFlight.length; i++) if (this.inFlight[i].packetId === id) used = true;
      if (!used) return id;
    }
  }

  private sendSubscribe(subs: Subscription[]): void {
    const list: { filter: string; qos: QoS }[] = [];
    for (let i = 0; i < subs.length; i++) list.push({ filter: subs[i].filter, qos: subs[i].qos });
    this.send({ kind: 'subscribe', packetId: this.allocatePacketId(), subscriptions: list });
  }

  // ---- keep-alive ----

  private schedulePing(): void {
    if (this.o.keepAliveSeconds === 0) return;
    // Well inside the keep-alive, so the broker never sees us silent for a whole period.
    this.setTimer('ping', Math.max(500, this.o.keepAliveSeconds * 750), () => {
      if (this.state !== CONNECTED) return;
      this.pingOutstanding = true;
      this.send({ kind: 'pingreq' });
      const timeout = this.t.pingTimeoutMs;
      this.setTimer('pingTimeout', timeout, () => {
        if (this.pingOutstanding)
          this.connectionLost(
            MQTT_DISCONNECT.pingTimeout,
            'no PINGRESP from ' + this.where() + ' within ' + timeout + ' ms: connection is dead',
          );
      });
      this.schedulePing();
    });
  }

  // ---- timers ----

  private setTimer(name: string, ms: number, cb: () => void): void {
    this.clearTimer(name);
    this.timers[name] = this.o.clock.setTimeout(() => {
      this.timers[name] = undefined;
      cb();
    }, ms);
  }

  private clearTimer(name: string): void {
    const handle = this.timers[name];
    if (handle !== undefined) this.o.clock.clearTimeout(handle);
    this.timers[name] = undefined;
  }
}

function errorText(err: unknown): string {
  return err && typeof err === 'object' && 'message' in err
    ? String((err as { message: unknown }).message)
    : String(err);
}
