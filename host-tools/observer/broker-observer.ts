// A passive observer at the broker (issue 11 item 6): what a broker operator sees of every PUBLISH the broker
// accepts (who published, on which topic, how many bytes, when, and a hash of the bytes, to recognise them
// elsewhere) and of every SUBSCRIBE (who reads which topic), recorded as plain data for the linker
// (offer-linker.ts). It only listens to aedes's events: the broker's behaviour is unchanged.
import { createHash } from 'node:crypto';
import type { Aedes } from 'aedes';

export interface PublishRecord {
  /** Wall-clock ms when the broker accepted the message. */
  timeMs: number;
  /** The grid's virtual clock then (ms), when the observer was given one: the meters' schedule runs on it. */
  simMs?: number;
  clientId: string;
  topic: string;
  bytes: number;
  /** payloadHash of the message's bytes. */
  payloadHash: string;
}

export interface SubscribeRecord {
  timeMs: number;
  clientId: string;
  topic: string;
}

export interface BrokerTrace {
  publishes: PublishRecord[];
  subscriptions: SubscribeRecord[];
}

export interface BrokerObserver {
  readonly trace: BrokerTrace;
  /** Starts listening to a broker (again after a restart: a new aedes instance). */
  attach(aedes: Aedes): void;
  /** Stops listening to every broker attached. */
  detach(): void;
}

/** A short name for a message's bytes (SHA-256, 64 bits): the same bytes seen in two places get the same name. */
export function payloadHash(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

/** `simNowMs`: the virtual clock the meters run on, recorded beside the wall clock. */
export function createBrokerObserver(simNowMs?: () => number): BrokerObserver {
  const trace: BrokerTrace = { publishes: [], subscriptions: [] };
  const detachers: Array<() => void> = [];
  return {
    trace,
    attach(aedes) {
      const onPublish = (packet: { topic: string; payload: Buffer | string }, client: { id: string } | null) => {
        // Publishes with no client are the broker's own ($SYS, wills): not a client's traffic.
        if (!client) return;
        trace.publishes.push({
          timeMs: Date.now(),
          ...(simNowMs ? { simMs: simNowMs() } : {}),
          clientId: client.id,
          topic: packet.topic,
          bytes: Buffer.byteLength(packet.payload),
          payloadHash: payloadHash(packet.payload),
        });
      };
      const onSubscribe = (subscriptions: Array<{ topic: string }>, client: { id: string }) => {
        const timeMs = Date.now();
        for (const s of subscriptions) trace.subscriptions.push({ timeMs, clientId: client.id, topic: s.topic });
      };
      aedes.on('publish', onPublish);
      aedes.on('subscribe', onSubscribe);
      detachers.push(() => {
        aedes.removeListener('publish', onPublish);
        aedes.removeListener('subscribe', onSubscribe);
      });
    },
    detach() {
      for (const d of detachers.splice(0)) d();
    },
  };
}
