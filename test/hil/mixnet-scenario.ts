// One round of a meter's mix node (firmware/src/mixnet/mix-node.ts), the same code in Node and in Espruino's
// interpreter (test/hil/mixnet.test.ts compares the two): the node carries an offer, builds its packet half a
// slot before round 0 and publishes it in slot 0, takes in three packets for it as a relay and forwards them
// at slot 1. Its secure element and its MQTT client are stand-ins answering from what the test computed with
// node:crypto (the SE's EC math cannot run in JavaScript on the device); its clock is stepped by hand. Prints
// "L <log line>" and "P <ms since round 0> <topic> <hex>" for every publish.
import { MixNode } from '../../firmware/src/mixnet/mix-node.ts';
import type { RelayDirectoryView } from '../../firmware/src/mixnet/relay-directory-view.ts';
import type { Aes128Ctr } from '../../firmware/src/protocol/crypto/aes-ctr.ts';
import type { Sha256 } from '../../firmware/src/protocol/crypto/sha256.ts';
import { bytesToHex, hexToBytes } from '../../firmware/src/protocol/hex.ts';
import { roundStartMs, slotMs, type MarketClock } from '../../firmware/src/protocol/mix-schedule.ts';
import type { RelayRecord } from '../../firmware/src/protocol/relay-directory.ts';

export interface MixScenarioData {
  market: MarketClock;
  interval: number;
  /** This meter's relay id. */
  relayId: string;
  /** The SE's Random: the same 32 bytes each time. */
  seed: string;
  /** The directory, sorted by relay id (this meter among them), and the exit: [id, mix key x || y]. */
  relays: string[][];
  exit: string[];
  /** The ephemeral keys GenKey makes, in order. */
  ephemerals: string[];
  /** ECDH of ephemeral i with a mix key: "<i>:<relay id>" -> shared x. */
  tempShared: { [key: string]: string };
  /** ECDH of the meter's mix key with an ephemeral key (hex) -> shared x. */
  mixShared: { [ephemeral: string]: string };
  /** Packets into the inbox during slot 0. */
  inbound: string[];
  offer: string;
}

export interface MixScenarioEnvironment {
  sha256: Sha256;
  aes128Ctr: Aes128Ctr;
  print(line: string): void;
}

function bytes(hex: string): Uint8Array {
  return hexToBytes(hex) as Uint8Array;
}

function record(pair: string[]): RelayRecord {
  return { relayId: bytes(pair[0]), mixKey: bytes(pair[1]) };
}

export function runMixScenario(env: MixScenarioEnvironment, data: MixScenarioData): void {
  const relays: RelayRecord[] = [];
  for (let i = 0; i < data.relays.length; i++) relays.push(record(data.relays[i]));
  const directory: RelayDirectoryView = {
    isComplete: function () {
      return true;
    },
    epoch: function () {
      return 1;
    },
    relayCount: function () {
      return relays.length;
    },
    relayAt: function (i) {
      return relays[i];
    },
    indexOf: function (id) {
      for (let i = 0; i < relays.length; i++) if (bytesToHex(relays[i].relayId) === bytesToHex(id)) return i;
      return -1;
    },
    exit: function () {
      return record(data.exit);
    },
  };
  let made = -1;
  const se = {
    random: function () {
      return bytes(data.seed);
    },
    genTempKey: function () {
      made++;
      return bytes(data.ephemerals[made]);
    },
    ecdh: function (source: number | 'tempkey', peer: Uint8Array) {
      if (source === 'tempkey') {
        for (let i = 0; i < relays.length; i++)
          if (bytesToHex(relays[i].mixKey) === bytesToHex(peer))
            return bytes(data.tempShared[made + ':' + bytesToHex(relays[i].relayId)]);
        return bytes(data.tempShared[made + ':' + data.exit[0]]);
      }
      const shared = data.mixShared[bytesToHex(peer)];
      if (!shared) throw new Error('not a point on the curve');
      return bytes(shared);
    },
  };
  const round0 = roundStartMs(data.market, data.interval, 0);
  const slot = slotMs(data.market);
  let now = round0 - slot;
  const timers: Array<{ id: number; due: number; cb: () => void }> = [];
  let nextId = 1;
  const clock = {
    now: function () {
      return now / 1000;
    },
    setTimeout: function (cb: () => void, ms: number) {
      timers.push({ id: nextId, due: now + ms, cb: cb });
      return nextId++;
    },
    clearTimeout: function (id: number) {
      for (let i = 0; i < timers.length; i++) if (timers[i].id === id) timers.splice(i, 1);
    },
  };
  let inbox: ((topic: string, payload: Uint8Array) => void) | null = null;
  const mqtt = {
    isConnected: function () {
      return true;
    },
    publish: function (topic: string, payload: Uint8Array) {
      env.print('P ' + Math.round(now - round0) + ' ' + topic + ' ' + bytesToHex(payload));
      return true;
    },
    subscribe: function (filter: string, qos: 0 | 1, handler: (topic: string, payload: Uint8Array) => void) {
      inbox = handler;
    },
  };
  const node = new MixNode({
    se: se,
    mixSlot: 3,
    relayId: bytes(data.relayId),
    primitives: { sha256: env.sha256, aes128Ctr: env.aes128Ctr },
    directory: directory,
    mqtt: mqtt as never,
    clock: clock,
    busy: function () {
      return false;
    },
    log: function (line) {
      env.print('L ' + line);
    },
  });
  node.start();
  node.carry(data.interval, bytes(data.offer));
  node.setMarketClock(data.market);
  clock.setTimeout(
    function () {
      for (let i = 0; i < data.inbound.length; i++)
        (inbox as (t: string, p: Uint8Array) => void)('x', bytes(data.inbound[i]));
    },
    slot + Math.floor((3 * slot) / 4),
  );
  // Round 0 up to its last slot's start (round 1's packet is built half a slot later): the earliest timer each step.
  while (timers.length > 0) {
    let first = 0;
    for (let i = 1; i < timers.length; i++) if (timers[i].due < timers[first].due) first = i;
    const t = timers[first];
    if (t.due > round0 + 3 * slot) break;
    timers.splice(first, 1);
    if (t.due > now) now = t.due;
    t.cb();
  }
  env.print('L held ' + node.batch.size + ', forwarded ' + node.batch.forwarded);
}
