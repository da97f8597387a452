// How a service takes QoS 1 messages it must not lose (the DSO's readings, the bridge's offers): handle (store)
// first, acknowledge after. MQTT.js sends PUBACK only when handleMessage's callback is called without error, so
// a message whose handling throws is not acknowledged and the broker delivers it again; a crash in between
// loses nothing either. Also logs the client's connection trouble, one JSON line per event.
import type { IPublishPacket, MqttClient } from 'mqtt';

export type ServiceLog = (level: 'info' | 'warn' | 'error', event: string, fields?: Record<string, unknown>) => void;

export function acknowledgeAfterHandling(
  client: MqttClient,
  brokerUrl: string,
  emit: ServiceLog,
  handle: (topic: string, payload: Buffer) => void,
  afterEach: () => void,
): void {
  client.handleMessage = (packet: IPublishPacket, callback: (error?: Error) => void) => {
    const payload =
      typeof packet.payload === 'string' ? Buffer.from(packet.payload, 'latin1') : (packet.payload as Buffer);
    try {
      handle(packet.topic, payload);
    } catch (err) {
      emit('error', 'store_failed', {
        topic: packet.topic,
        reason: (err as Error).message,
        note: 'not acknowledged: the broker will deliver it again',
      });
      callback(err as Error);
      return;
    }
    afterEach();
    callback();
  };
  client.on('offline', () => emit('warn', 'broker_offline', { brokerUrl, note: 'reconnecting every second' }));
  client.on('reconnect', () => emit('info', 'broker_reconnecting', { brokerUrl }));
  client.on('error', (err) => emit('error', 'mqtt_error', { brokerUrl, reason: err.message }));
}
