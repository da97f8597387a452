// The broker's one size rule, which both brokers enforce: mosquitto as max_packet_size (mosquitto.ts), the
// embedded broker with its packet-size guard (packet-size-guard.ts).

/**
 * The largest MQTT packet either broker accepts (fixed header, topic and payload). Above the DSO's
 * MAX_MESSAGE_PAYLOAD_BYTES (dso/message-limits.ts) by the longest topic and header, so the broker never
 * drops what the DSO would read.
 */
export const MAX_MQTT_PACKET_BYTES = 2048;
