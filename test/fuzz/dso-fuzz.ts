// The fuzz run behind test/fuzz/dso-decode.test.ts (small) and bench/fuzz-dso.ts (large): mutated sealed
// readings (the envelope's bytes, or the signed reading inside re-sealed to the DSO, as anyone can),
// mutated key certificates, mutated broker logins and mutated MQTT packets, fed to what the DSO, the
// brokers and meters decode with: verifySignedReading, acceptKeyCertificate, the reading/key topic parsers,
// MeterLogins.check, the firmware's MqttStreamDecoder (in random fragments) and the brokers' packet-size
// scanner. Outcome per input:
// refused with a reason, or accepted. It counts exceptions that escape (anything but the decoders'
// documented errors), accepted forgeries (an accepted message whose bytes are not the genuine ones),
// and the slowest single input, so a hang or a super-linear decode shows as a figure.
import { createECDH } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { encodeLoginPassword, loginNonce } from '../../firmware/src/protocol/broker-login.ts';
import { attestationMessage } from '../../firmware/src/protocol/key-attestation.ts';
import { MIX_SLOT } from '../../firmware/src/protocol/slot-map.ts';
import { encodeReading } from '../../firmware/src/protocol/reading.ts';
import { sealEnvelope } from '../../firmware/src/protocol/sealed-reading.ts';
import {
  meterIdFromKeyCertificateTopic,
  meterIdFromReadingTopic,
  readingTopic,
} from '../../firmware/src/protocol/topics.ts';
import { MqttPacketError, MqttStreamDecoder, encodePacket, type MqttPacket } from '../../firmware/src/mqtt/packets.ts';
import { bytesToByteString, byteStringToBytes } from '../../firmware/src/protocol/byte-string.ts';
import { MeterLogins } from '../../host-tools/broker/meter-logins.ts';
import { MqttPacketSizeScanner } from '../../host-tools/broker/packet-size-guard.ts';
import { nodeCryptoPrimitives, nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';
import { MAX_MQTT_PACKET_BYTES } from '../../host-tools/broker/max-packet-size.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { acceptKeyCertificate, verifySignedReading } from '../../host-tools/dso/verifier.ts';
import { makeMeter, makeOperator, makeReadingKey, reading, signReadingBytes } from '../unit/verifier-fixtures.ts';

export interface FuzzFigures {
  inputs: number;
  readings: { inputs: number; refused: number; accepted: number };
  keyCertificates: { inputs: number; refused: number; accepted: number };
  logins: { inputs: number; refused: number; accepted: number };
  mqttPackets: { inputs: number; refused: number; decoded: number };
  escapedExceptions: number;
  acceptedForgeries: number;
  slowestInputMs: number;
  seconds: number;
  firstProblems: string[];
}

/** xorshift32: the same inputs for the same seed, so a failure can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/** One to three random edits: bit flips, byte sets, insertions, deletions, truncation, duplication, extension. */
function mutate(bytes: Uint8Array, random: () => number): Uint8Array {
  let out = Array.from(bytes);
  const edits = 1 + Math.floor(random() * 3);
  const at = () => Math.floor(random() * (out.length + 1));
  const byte = () => Math.floor(random() * 256);
  for (let e = 0; e < edits; e++) {
    const kind = Math.floor(random() * 7);
    if (kind === 0 && out.length) {
      const i = at() % out.length;
      out[i] ^= 1 << Math.floor(random() * 8);
    } else if (kind === 1 && out.length) out[at() % out.length] = byte();
    else if (kind === 2) out.splice(at(), 0, ...Array.from({ length: 1 + Math.floor(random() * 8) }, byte));
    else if (kind === 3 && out.length) out.splice(at() % out.length, 1 + Math.floor(random() * 8));
    else if (kind === 4) out = out.slice(0, at());
    else if (kind === 5 && out.length) {
      const i = at() % out.length;
      out.splice(i, 0, ...out.slice(i, i + 1 + Math.floor(random() * 16)));
    } else out.push(...Array.from({ length: 1 + Math.floor(random() * 32) }, byte));
  }
  return new Uint8Array(out);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function runDsoFuzz(count: number, seed = 1): FuzzFigures {
  const started = performance.now();
  const random = prng(seed);
  const figures: FuzzFigures = {
    inputs: 0,
    readings: { inputs: 0, refused: 0, accepted: 0 },
    keyCertificates: { inputs: 0, refused: 0, accepted: 0 },
    logins: { inputs: 0, refused: 0, accepted: 0 },
    mqttPackets: { inputs: 0, refused: 0, decoded: 0 },
    escapedExceptions: 0,
    acceptedForgeries: 0,
    slowestInputMs: 0,
    seconds: 0,
    firstProblems: [],
  };
  const problem = (what: string) => {
    if (figures.firstProblems.length < 10) figures.firstProblems.push(what);
  };

  const registry = new MeterRegistry(':memory:');
  const operator = makeOperator();
  registry.trustOperator(operator.certificate);
  const meterId = 'meter-fuzz';
  const meter = makeMeter(operator, meterId);
  registry.registerMeter(meter.deviceCertificate);
  const key = makeReadingKey(meter, 1, 100, 100_000);
  registry.addKeyCertificate(meterId, key.certificate);
  const nextKey = makeReadingKey(meter, 2, 100_001, 200_000);
  const dsoPrivateKey = p256.utils.randomSecretKey();
  // One ephemeral key for all sealing here (the DSO still does its ECDH per message): fuzzing needs speed, not fresh keys.
  const ephemeral = createECDH('prime256v1');
  ephemeral.generateKeys();
  const ephemeralPublic = new Uint8Array(ephemeral.getPublicKey());
  const shared = new Uint8Array(ephemeral.computeSecret(Buffer.from(p256.getPublicKey(dsoPrivateKey, false))));
  const seal = (plaintext: Uint8Array) => sealEnvelope(nodeCryptoPrimitives, shared, ephemeralPublic, plaintext);

  // Genuine material to mutate: signed readings (never submitted, so each is new to the registry).
  const genuineSigned = Array.from({ length: 16 }, (_, i) =>
    signReadingBytes(key, encodeReading(reading(meterId, 1000 + i, 200 + i))),
  );
  const genuineEnvelopes = genuineSigned.map(seal);
  const packets: MqttPacket[] = [
    {
      kind: 'publish',
      topic: readingTopic(meterId),
      payload: genuineEnvelopes[0],
      qos: 1,
      dup: false,
      retain: false,
      packetId: 7,
    },
    {
      kind: 'publish',
      topic: 'veilgrid/meters/meter-fuzz/keys',
      payload: nextKey.certificate,
      qos: 1,
      dup: false,
      retain: true,
      packetId: 8,
    },
    { kind: 'connack', sessionPresent: true, returnCode: 0 },
    { kind: 'puback', packetId: 9 },
    { kind: 'suback', packetId: 3, returnCodes: [1, 0x80] },
    { kind: 'pingresp' },
  ];
  const genuinePackets = packets.map((p) => byteStringToBytes(encodePacket(p)));
  // Broker logins as the meter's chip makes them (its identity key attesting the mix key), never used.
  const logins = new MeterLogins(':memory:');
  logins.add(meterId, meter.identity.publicKey, meter.mix.publicKey);
  const genuineLogins = Array.from({ length: 16 }, (_, i) => {
    const message = attestationMessage(
      nodeSha256,
      loginNonce(nodeSha256, meterId, 1000 + i),
      MIX_SLOT,
      meter.mix.publicKey,
    );
    return encodeLoginPassword(1000 + i, meter.identity.signDigest(nodeSha256(message)));
  });

  const timed = (run: () => void) => {
    const t0 = performance.now();
    try {
      run();
    } catch (err) {
      figures.escapedExceptions++;
      problem(`escaped: ${(err as Error).stack?.split('\n').slice(0, 3).join(' | ')}`);
    }
    figures.slowestInputMs = Math.max(figures.slowestInputMs, performance.now() - t0);
  };

  for (let n = 0; n < count; n++) {
    figures.inputs++;
    const kind = n % 5;
    if (kind <= 1) {
      // A reading: mutate the envelope itself, or the signed reading inside and seal it properly.
      const which = Math.floor(random() * genuineSigned.length);
      figures.readings.inputs++;
      timed(() => {
        let envelope: Uint8Array;
        let signedInside: Uint8Array | undefined;
        if (kind === 0) envelope = mutate(genuineEnvelopes[which], random);
        else {
          signedInside = mutate(genuineSigned[which], random);
          envelope = seal(signedInside);
        }
        const topic =
          random() < 0.1
            ? bytesToByteString(mutate(new TextEncoder().encode(readingTopic(meterId)), random))
            : readingTopic(meterId);
        const topicMeterId = meterIdFromReadingTopic(topic);
        if (topicMeterId === undefined) return void figures.readings.refused++;
        const result = verifySignedReading(registry, dsoPrivateKey, { topicMeterId, envelope }, Date.now());
        if (!result.ok) return void figures.readings.refused++;
        figures.readings.accepted++;
        const genuine =
          signedInside === undefined
            ? sameBytes(envelope, genuineEnvelopes[which])
            : genuineSigned.some((g) => sameBytes(g, signedInside!));
        if (!genuine) {
          figures.acceptedForgeries++;
          problem(`forged reading accepted: ${Buffer.from(envelope).toString('hex')}`);
        }
      });
    } else if (kind === 2) {
      figures.keyCertificates.inputs++;
      timed(() => {
        const bytes = mutate(nextKey.certificate, random);
        const topicMeterId = meterIdFromKeyCertificateTopic(
          random() < 0.1 ? 'veilgrid/meters/meter-fuzz/key' : 'veilgrid/meters/meter-fuzz/keys',
        );
        if (topicMeterId === undefined) return void figures.keyCertificates.refused++;
        const result = acceptKeyCertificate(registry, topicMeterId, bytes);
        if (!result.ok) return void figures.keyCertificates.refused++;
        figures.keyCertificates.accepted++;
        if (!sameBytes(bytes, nextKey.certificate)) {
          figures.acceptedForgeries++;
          problem(`forged key certificate accepted: ${Buffer.from(bytes).toString('hex')}`);
        }
      });
    } else if (kind === 3) {
      figures.logins.inputs++;
      timed(() => {
        const password = new TextDecoder('latin1').decode(
          mutate(new TextEncoder().encode(genuineLogins[Math.floor(random() * genuineLogins.length)]), random),
        );
        const username = random() < 0.1 ? 'meter-other' : meterId;
        const result = logins.check(username, password);
        if (!result.ok) return void figures.logins.refused++;
        figures.logins.accepted++;
        if (!genuineLogins.includes(password)) {
          figures.acceptedForgeries++;
          problem(`forged login accepted: ${password}`);
        }
      });
    } else {
      figures.mqttPackets.inputs++;
      timed(() => {
        // Two packets back to back, one mutated, delivered in random fragments.
        const a = genuinePackets[Math.floor(random() * genuinePackets.length)];
        const b = mutate(genuinePackets[Math.floor(random() * genuinePackets.length)], random);
        const stream = new Uint8Array([...a, ...b]);
        const decoder = new MqttStreamDecoder(MAX_MQTT_PACKET_BYTES);
        const scanner = new MqttPacketSizeScanner(MAX_MQTT_PACKET_BYTES);
        let refused = false;
        for (let i = 0; i < stream.length && !refused; ) {
          const end = Math.min(stream.length, i + 1 + Math.floor(random() * 64));
          const chunk = stream.subarray(i, end);
          scanner.scan(chunk);
          try {
            decoder.push(bytesToByteString(chunk));
          } catch (err) {
            if (!(err instanceof MqttPacketError)) throw err;
            refused = true;
          }
          i = end;
        }
        if (refused) figures.mqttPackets.refused++;
        else figures.mqttPackets.decoded++;
      });
    }
  }
  registry.close();
  logins.close();
  figures.seconds = (performance.now() - started) / 1000;
  return figures;
}
