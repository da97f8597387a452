// A meter as a mixnet relay (docs/mixnet.md): its inbox, relayInboxTopic(its relay id), read at QoS 0; each
// packet peeled on arrival (one ECDH in the secure element's MIX_SLOT) into the relay batch; at the start of
// every slot of a round all it holds goes out, shuffled, to each packet's next hop: another relay's inbox, or
// MIX_EXIT_TOPIC when the next hop is the directory's exit (the bridge). Nothing is thrown out of the MQTT
// handler; every dropped packet is counted by reason, and the drops are logged at most once per slot.
import type { MqttClient } from '../mqtt/client.ts';
import { equalBytes } from '../protocol/crypto/bytes.ts';
import { bytesToHex } from '../protocol/hex.ts';
import type { RelayRecord } from '../protocol/relay-directory.ts';
import { MIX_EXIT_TOPIC, relayInboxTopic } from '../protocol/topics.ts';
import { RELAY_DROPS, type RelayBatch, type RelayDrop } from './relay-batch.ts';

/** What the mix node needs of the MQTT client. */
export type MixMqtt = Pick<MqttClient, 'isConnected' | 'publish' | 'subscribe'>;

export interface MixRelayOptions {
  /** This meter's relay id: kidOf its mix key. */
  relayId: Uint8Array;
  batch: RelayBatch;
  mqtt: MixMqtt;
  /** The offer window whose rounds are on now (its interval: mix-node.ts), or -1: a packet arriving now is not taken in. */
  windowNow(): number;
  /** True while the meter should take no packets in (its outbox is sending a backlog: main.ts). */
  busy(): boolean;
  /** The directory's exit, if it has one. */
  exit(): RelayRecord | undefined;
  /**
   * Packets taken in per slot at most, whatever becomes of them: each costs an ECDH in the secure element
   * even when its MAC then fails, so a flood of junk is refused here, before the chip ('batch-full').
   */
  maxPerSlot: number;
  log(message: string): void;
}

export class MixRelay {
  private declare readonly o: MixRelayOptions;
  /** Drops since the last slot started, by reason: logged at the next slot's start. */
  private declare slotDrops: { [reason: string]: number };
  private declare slotDropCount: number;
  /** Packets given to the batch since the last slot started. */
  private declare slotTaken: number;
  /** Packets forwarded while not connected (QoS 0: lost; the senders' resends cover them). */
  declare unsent: number;

  constructor(options: MixRelayOptions) {
    this.o = options;
    this.slotDrops = {};
    this.slotDropCount = 0;
    this.slotTaken = 0;
    this.unsent = 0;
  }

  start(): void {
    const self = this;
    this.o.mqtt.subscribe(relayInboxTopic(bytesToHex(this.o.relayId)), 0, function (topic, payload) {
      self.receive(payload);
    });
  }

  /** One packet from the inbox. Never throws. */
  receive(packet: Uint8Array): void {
    const o = this.o;
    let reason: RelayDrop | undefined;
    try {
      const window = o.windowNow();
      if (window < 0) reason = 'out-of-round';
      else if (o.busy()) reason = 'busy';
      else if (this.slotTaken >= o.maxPerSlot) reason = 'batch-full';
      if (reason) o.batch.drop(reason);
      else {
        this.slotTaken++;
        reason = o.batch.accept(packet, window);
      }
    } catch (e) {
      // Not the packet's fault (memory, the SE): lost like a packet that fails its checks, and counted.
      reason = 'relay-error';
      o.batch.drop(reason);
    }
    if (reason) {
      this.slotDrops[reason] = (this.slotDrops[reason] || 0) + 1;
      this.slotDropCount++;
    }
  }

  /**
   * Slot `slot` of round `round` of interval's window starts (slot SLOTS_PER_ROUND: the window's last slot
   * ended): everything held goes to its next hop, shuffled, and the previous slot's drops are logged.
   */
  flush(interval: number, round: number, slot: number): void {
    const o = this.o;
    const label = interval + '.' + round + '.' + slot;
    const out = o.batch.flush();
    this.slotTaken = 0;
    const exit = o.exit();
    let sent = 0;
    for (let i = 0; i < out.length; i++) {
      const next = out[i].nextRelayId;
      const topic = exit && equalBytes(next, exit.relayId) ? MIX_EXIT_TOPIC : relayInboxTopic(bytesToHex(next));
      let ok = false;
      try {
        ok = o.mqtt.publish(topic, out[i].packet, 0);
      } catch (e) {
        o.log('mix: cannot forward: ' + ((e as Error).message || e));
      }
      if (ok) sent++;
      else this.unsent++;
    }
    if (sent > 0) o.log('mix: forwarded ' + sent + ' in ' + label);
    if (sent < out.length) o.log('mix: ' + (out.length - sent) + ' lost in ' + label + ': not connected');
    if (this.slotDropCount > 0) {
      const parts: string[] = [];
      for (let i = 0; i < RELAY_DROPS.length; i++) {
        const n = this.slotDrops[RELAY_DROPS[i]];
        if (n) parts.push(RELAY_DROPS[i] + '=' + n);
      }
      o.log('mix: dropped ' + this.slotDropCount + ' (' + parts.join(', ') + ')');
      this.slotDrops = {};
      this.slotDropCount = 0;
    }
  }
}
