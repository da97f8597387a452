// A broker's retained messages, as the relay directory store (firmware/src/mixnet/relay-directory-store.ts) sees
// them through its MQTT client: subscribing to a topic brings its retained message, delivered in a later turn
// (drain()), as a broker's answer comes in a later network read. Exact topics only: the store uses no wildcards.
import type { DirectoryMqtt } from '../../firmware/src/mixnet/relay-directory-store.ts';

export class RetainedBroker implements DirectoryMqtt {
  readonly retained = new Map<string, Uint8Array>();
  private readonly handlers = new Map<string, (topic: string, payload: Uint8Array) => void>();
  private readonly queue: Array<[string, Uint8Array]> = [];
  subscribe(filter: string, _qos: 0 | 1, onMessage: (topic: string, payload: Uint8Array) => void): void {
    this.handlers.set(filter, onMessage);
    const kept = this.retained.get(filter);
    if (kept) this.queue.push([filter, kept]);
  }
  unsubscribe(filter: string): void {
    this.handlers.delete(filter);
  }
  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (payload.length === 0) this.retained.delete(topic);
    else this.retained.set(topic, payload);
    if (this.handlers.has(topic)) this.queue.push([topic, payload]);
    return Promise.resolve();
  }
  /** What a reconnect does: every subscription made again, so the retained messages come again. */
  reconnect(): void {
    for (const filter of this.handlers.keys()) {
      const kept = this.retained.get(filter);
      if (kept) this.queue.push([filter, kept]);
    }
  }
  /** Delivers until nothing is left to deliver (each page the store asks for comes in a later turn). */
  drain(): void {
    for (let m = this.queue.shift(); m; m = this.queue.shift()) this.handlers.get(m[0])?.(m[0], m[1]);
  }
  subscriptions(): string[] {
    return [...this.handlers.keys()];
  }
}
