// The differential corpus of the 8-bit string formats (MQTT packets, energy journal records, the meter's
// configuration): same rules as corpus.ts, in a bundle of its own so that a 20,000-byte PUBLISH has room.
import { bytesToHex } from '../../firmware/src/protocol/hex.ts';
import { parseMeterConfig } from '../../firmware/src/protocol/meter-config.ts';
import { decodeJournalState, encodeJournalState } from '../../firmware/src/metering/energy-journal.ts';
import { MqttStreamDecoder, encodePacket, type MqttPacket } from '../../firmware/src/mqtt/packets.ts';
import { bytesToByteString, byteStringToBytes } from '../../firmware/src/protocol/byte-string.ts';
import { copyBytes } from '../../firmware/src/protocol/crypto/bytes.ts';
import { CORPUS_END, caseRunner, bytesOf, charsHex, show, type CorpusEnvironment } from './corpus.ts';

export function runTransportCorpus(env: CorpusEnvironment): void {
  const sha256 = env.sha256;
  const run = caseRunner(env);

  // First, while the corpus has allocated least: a PUBLISH of 20,000 bytes must fit beside the code.
  run('mqtt.encode.publish-20000', function () {
    const encoded = encodePacket({
      kind: 'publish',
      topic: 'big',
      payload: bytesOf(20000, 44),
      qos: 0,
      dup: false,
      retain: false,
    });
    return encoded.length + ' ' + bytesToHex(sha256(byteStringToBytes(encoded)));
  });

  // ---- Energy journal records (8-bit strings) ----
  const states = [
    {
      interval: 0,
      flags: 0,
      nextSeq: 0,
      importPulses: 0,
      exportPulses: 0,
      intervalImportPulses: 0,
      intervalExportPulses: 0,
    },
    {
      interval: 1988123,
      flags: 5,
      nextSeq: 77,
      importPulses: 987654321,
      exportPulses: 4294967296,
      intervalImportPulses: 1234,
      intervalExportPulses: 56,
    },
    {
      interval: 4294967295,
      flags: 255,
      nextSeq: 4294967295,
      importPulses: 281474976710655,
      exportPulses: 65536 * 65536 * 256 + 65535,
      intervalImportPulses: 4294967295,
      intervalExportPulses: 16777216,
    },
    {
      interval: 65536,
      flags: 1,
      nextSeq: 16777216,
      importPulses: 16777216 * 256,
      exportPulses: 65536,
      intervalImportPulses: 65536,
      intervalExportPulses: 256,
    },
  ];
  for (let i = 0; i < states.length; i++) {
    run('journal.encode.' + i, function () {
      return charsHex(encodeJournalState(states[i]));
    });
    run('journal.decode.' + i, function () {
      return show(decodeJournalState(encodeJournalState(states[i])));
    });
  }
  run('journal.encode-too-big', function () {
    return charsHex(
      encodeJournalState({
        interval: 4294967296,
        flags: 0,
        nextSeq: 0,
        importPulses: 0,
        exportPulses: 0,
        intervalImportPulses: 0,
        intervalExportPulses: 0,
      }),
    );
  });
  run('journal.decode-garbage', function () {
    return show(decodeJournalState('xyz'));
  });

  // ---- MQTT packets (8-bit strings) ----
  const packets: MqttPacket[] = [
    {
      kind: 'connect',
      clientId: 'meter-0042',
      cleanSession: false,
      keepAliveSeconds: 60,
      username: 'meter-0042',
      password: bytesToByteString(bytesOf(20, 41)),
      will: { topic: 'veilgrid/meters/meter-0042/status', payload: bytesOf(7, 42), qos: 1, retain: true },
    },
    { kind: 'connack', sessionPresent: true, returnCode: 0 },
    {
      kind: 'publish',
      topic: 'veilgrid/meters/meter-0042/readings',
      payload: bytesOf(256, 43),
      qos: 1,
      dup: false,
      retain: false,
      packetId: 513,
    },
    { kind: 'publish', topic: 'a/b', payload: new Uint8Array(0), qos: 0, dup: false, retain: true },
    { kind: 'puback', packetId: 65535 },
    {
      kind: 'subscribe',
      packetId: 1,
      subscriptions: [
        { filter: 'veilgrid/meters/+/readings', qos: 1 },
        { filter: '#', qos: 0 },
      ],
    },
    { kind: 'suback', packetId: 1, returnCodes: [1, 0, 128] },
    { kind: 'unsubscribe', packetId: 2, filters: ['a/+', 'b/#'] },
    { kind: 'unsuback', packetId: 2 },
    { kind: 'pingreq' },
    { kind: 'pingresp' },
    { kind: 'disconnect' },
  ];
  let stream = '';
  for (let i = 0; i < packets.length; i++) {
    run('mqtt.encode.' + i, function () {
      const encoded = encodePacket(packets[i]);
      stream += encoded;
      return charsHex(encoded);
    });
  }
  run('mqtt.decode-stream', function () {
    const decoder = new MqttStreamDecoder(30000);
    const out: string[] = [];
    // Fed in uneven pieces, as a socket delivers them.
    for (let at = 0, step = 1; at < stream.length; at += step, step = ((step * 7 + 3) % 1500) + 1) {
      const got = decoder.push(stream.substring(at, at + step));
      for (let k = 0; k < got.length; k++) out.push(showPacket(got[k]));
    }
    return out.join(' ') + ' pending ' + decoder.pendingBytes();
  });
  run('mqtt.topic-latin1', function () {
    return charsHex(
      encodePacket({
        kind: 'publish',
        topic: 'caf' + String.fromCharCode(0xe9),
        payload: bytesOf(1, 1),
        qos: 0,
        dup: false,
        retain: false,
      }),
    );
  });
  run('mqtt.topic-u20ac', function () {
    return charsHex(
      encodePacket({
        kind: 'publish',
        topic: 'x' + String.fromCharCode(0x20ac),
        payload: bytesOf(1, 1),
        qos: 0,
        dup: false,
        retain: false,
      }),
    );
  });
  run('mqtt.bad-packet-id', function () {
    return charsHex(encodePacket({ kind: 'puback', packetId: 0 }));
  });
  run('mqtt.decode-malformed', function () {
    return String(new MqttStreamDecoder().push(String.fromCharCode(0x30, 0xff, 0xff, 0xff, 0xff, 0x01)).length);
  });
  run('mqtt.decode-too-big', function () {
    return String(new MqttStreamDecoder(100).push(String.fromCharCode(0x30, 0xe8, 0x07)).length);
  });
  run('mqtt.bytes-roundtrip', function () {
    return byteStringToBytes(bytesToByteString(bytesOf(256, 45)));
  });

  // ---- Configuration ----
  const dsoKey = '04' + bytesToHex(bytesOf(64, 51));
  const configs = [
    '{"meterId":"meter-0042","broker":{"host":"10.0.0.2","port":1883},"mqtt":{"username":"meter-0042","password":"pw"},"intervalSeconds":60,"s0":{"importPin":25,"exportPin":26,"impulsesPerKWh":1000,"debounceMs":10},"journal":{"commitEveryWh":10},"wifi":{"ssid":"farm","password":"x"},"dsoPublicKey":"' +
      dsoKey.toUpperCase() +
      '","keys":{"rotationSeconds":3600}}',
    '{"meterId":"m1","broker":{"host":"b"},"mqtt":{"username":"m1","password":""},"s0":{"importPin":25,"exportPin":26,"impulsesPerKWh":800}}',
    '{"meterId":"bad id","broker":{"host":"","port":70000},"mqtt":{"username":1},"intervalSeconds":1.5,"s0":{"importPin":25,"exportPin":25,"impulsesPerKWh":0},"extra":true,"dsoPublicKey":"05ab"}',
    '[1,2]',
    '',
    '{"meterId":"caf' + String.fromCharCode(0xe9) + '"}',
  ];
  for (let i = 0; i < configs.length; i++)
    run('config.' + i, function () {
      return show(parseMeterConfig(configs[i]));
    });
  run('config.not-json', function () {
    return show(parseMeterConfig('{"meterId":'));
  });

  env.print(CORPUS_END);
}

function showPacket(p: MqttPacket): string {
  const fields = p as unknown as { [k: string]: unknown };
  const keys = Object.keys(fields).sort();
  const out: string[] = [];
  for (let i = 0; i < keys.length; i++) {
    const v = fields[keys[i]];
    out.push(
      keys[i] +
        '=' +
        (v instanceof Uint8Array && v.length > 64 ? 'b' + v.length + ':' + bytesToHex(copyBytes(v, 0, 8)) : show(v)),
    );
  }
  return '(' + out.join(';') + ')';
}
