// Sends each closed interval's reading the way the DSO takes it: signed with the current reading key and
// sealed to the DSO in the secure element (signed-reading.ts), then stored in the MQTT outbox, QoS 1,
// together with its note (sealed-reading-note.ts), in one outbox record.
//
// While the outbox is full, publish throws and the meter tries the same reading again every few seconds
// (metering/meter.ts); the sealed envelope is kept until the outbox takes it, so a retry costs no SE
// commands (five per reading).

import type { ReadingKeys } from '../keys/reading-keys.ts';
import type { Reading } from '../protocol/reading.ts';
import type { SealPrimitives } from '../protocol/sealed-reading.ts';
import type { SecureElement } from '../se/secure-element.ts';
import { encodeSealedReadingNote } from './sealed-reading-note.ts';
import { signAndSealReading } from './signed-reading.ts';

/** Where readings go: the MQTT client's QoS 1 publish, which stores them in the outbox or throws. */
export interface ReadingOutbox {
  publish(topic: string, payload: Uint8Array, qos: 1, retain: boolean, note: string): void;
}

export interface ReadingPublisherOptions {
  se: SecureElement;
  keys: ReadingKeys;
  /** 65 bytes 04||x||y. */
  dsoPublicKey: Uint8Array;
  primitives: SealPrimitives;
  outbox: ReadingOutbox;
  /** readingTopic(meterId). */
  topic: string;
}

export class ReadingPublisher {
  private declare readonly o: ReadingPublisherOptions;
  /** The reading sealed last, until the outbox takes it. */
  private declare sealed: { seq: number; envelope: Uint8Array } | null;

  constructor(options: ReadingPublisherOptions) {
    this.o = options;
    this.sealed = null;
  }

  /** Signs, seals and stores the reading; throws (outbox full, SE error) and keeps the envelope for the retry. */
  publish(reading: Reading): void {
    const o = this.o;
    if (!this.sealed || this.sealed.seq !== reading.seq) {
      this.sealed = {
        seq: reading.seq,
        envelope: signAndSealReading(o.se, o.keys, o.dsoPublicKey, reading, o.primitives),
      };
    }
    o.outbox.publish(o.topic, this.sealed.envelope, 1, false, encodeSealedReadingNote(reading.seq, reading.interval));
    this.sealed = null;
  }
}
