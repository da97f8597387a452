// What the bridge tests share: an embedded broker, a meter that publishes offers, a listener on the market
// broadcast that decodes receipts and clearing results, and offers signed for a market.
import { createECDH } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { toHex } from 'viem';
import {
  decodeClearing,
  decodeReceipt,
  reasonName,
  type ClearingPart,
} from '../../firmware/src/protocol/market-broadcast.ts';
import {
  encodeOffer,
  encodeOfferMessage,
  type MarketDomain,
  type OfferFields,
} from '../../firmware/src/protocol/offer.ts';
import { CLEARING_TOPIC, RECEIPT_TOPIC, offerTopic } from '../../firmware/src/protocol/topics.ts';
import { buildOnionPacket, onionEphemeralKey, peelOnionPacket } from '../../firmware/src/protocol/onion-packet.ts';
import { nodeCryptoPrimitives } from '../../host-tools/crypto/node-primitives.ts';
import type { ExitKey } from '../../host-tools/bridge/exit-key.ts';
import { offerDigest } from '../../host-tools/ledger/offer-digest.ts';
import type { TradingKey } from '../../host-tools/ledger/trading-key.ts';
import { DELIVERY } from '../ledger/market-fixture.ts';
import { hopTo, testRelay, type TestRelay } from '../support/onion-relays.ts';

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface SignedOffer {
  message: Uint8Array;
  digest: string;
}

export function signedOffer(
  domain: MarketDomain,
  key: TradingKey,
  fields: Omit<OfferFields, 'key' | 'seq'> & { seq?: number },
): SignedOffer {
  const signedBytes = encodeOffer(domain, { seq: 0, ...fields, key: key.publicKey });
  return { message: encodeOfferMessage(signedBytes, key.sign(signedBytes)), digest: toHex(offerDigest(signedBytes)) };
}

/** The bridge's exit as a test relay (its id and ECDH key), so packets can be built to it. */
export function exitRelay(exitKey: Pick<ExitKey, 'privateKey' | 'relayId'>): TestRelay {
  const key = createECDH('prime256v1');
  key.setPrivateKey(exitKey.privateKey);
  return { id: exitKey.relayId, key };
}

/**
 * What the exit receives for (type, payload) sent through the mixnet: a packet built by a sender for two relays
 * and the exit, peeled by both relays as they do (ECDH with their mix keys), so 1,024 bytes for the exit alone.
 * `window` is the offer window it travels in: by default the one a market fixture's chain time is in.
 */
export function mixPacket(exit: TestRelay, type: number, payload: Uint8Array, window = DELIVERY): Uint8Array {
  const path = [testRelay(), testRelay(), exit];
  let packet = buildOnionPacket(nodeCryptoPrimitives, window, path.map(hopTo), type, payload);
  for (const relay of path.slice(0, 2)) {
    const shared = relay.key.computeSecret(Buffer.concat([Buffer.from([4]), onionEphemeralKey(packet)]));
    packet = peelOnionPacket(nodeCryptoPrimitives, window, new Uint8Array(shared), packet).packet!;
  }
  return packet;
}

export async function connect(url: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 200, ...options });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

export async function publishOffer(client: MqttClient, meterId: string, message: Uint8Array): Promise<void> {
  await client.publishAsync(offerTopic(meterId), Buffer.from(message), { qos: 1 });
}

/** Everything the bridge broadcast, decoded: outcomes by digest (hex), clearing parts by interval. */
export class BroadcastListener {
  readonly outcomes = new Map<
    string,
    Array<{ accepted: boolean; reason?: string; interval?: number; index?: number }>
  >();
  readonly clearing = new Map<number, ClearingPart[]>();
  private constructor(readonly client: MqttClient) {}

  static async start(url: string, options: mqtt.IClientOptions = {}): Promise<BroadcastListener> {
    const client = await connect(url, options);
    const listener = new BroadcastListener(client);
    client.on('message', (topic, payload) => listener.take(topic, new Uint8Array(payload)));
    await client.subscribeAsync([RECEIPT_TOPIC, CLEARING_TOPIC], { qos: 1 });
    return listener;
  }

  private take(topic: string, payload: Uint8Array) {
    if (topic === RECEIPT_TOPIC) {
      const receipt = decodeReceipt(payload);
      for (const a of receipt.accepted)
        this.add(toHex(a.digest), { accepted: true, interval: a.interval, index: a.index });
      for (const r of receipt.refused) this.add(toHex(r.digest), { accepted: false, reason: reasonName(r.reason) });
    } else if (topic === CLEARING_TOPIC) {
      const part = decodeClearing(payload);
      const parts = this.clearing.get(part.interval) ?? [];
      parts.push(part);
      this.clearing.set(part.interval, parts);
    }
  }

  private add(digest: string, outcome: { accepted: boolean; reason?: string; interval?: number; index?: number }) {
    const list = this.outcomes.get(digest) ?? [];
    list.push(outcome);
    this.outcomes.set(digest, list);
  }

  /** The first outcome published for digest, waiting for it. */
  async outcome(digest: string, timeoutMs = 30_000) {
    await until(() => this.outcomes.has(digest), timeoutMs, `a receipt for ${digest}`);
    return this.outcomes.get(digest)![0];
  }

  /** The acceptance published for digest, waiting for it (a refusal of a forged copy may come first). */
  async accepted(digest: string, timeoutMs = 30_000) {
    await until(
      () => (this.outcomes.get(digest) ?? []).some((o) => o.accepted),
      timeoutMs,
      `an acceptance of ${digest}`,
    );
    return this.outcomes.get(digest)!.find((o) => o.accepted)!;
  }

  close() {
    return this.client.endAsync();
  }
}

export async function until(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * A market on a real node: anvil from its npm package on 127.0.0.1 (as `veilgrid ledger serve` runs it), the
 * market deployed by development account 0 with interval 10 running and interval 11 open, prices and one
 * feeder set, and the deployment file written. The relayer is development account 1 (its key in relayerKeyFile).
 */
export async function marketOnAnvil(
  dir: string,
  options: { blockTimeSeconds?: number; intervalSeconds?: number } = {},
) {
  const { startAnvil } = await import('../../host-tools/ledger/anvil-node.ts');
  const { developmentKeys, openLedger } = await import('../../host-tools/ledger/ledger-client.ts');
  const { deployMarket, MarketClient, writeDeployment } = await import('../../host-tools/ledger/market.ts');
  const node = await startAnvil({ port: 0, blockTimeSeconds: options.blockTimeSeconds });
  try {
    const keys = developmentKeys(3);
    const ledger = await openLedger({ kind: 'rpc', url: node.url, privateKeys: keys });
    for (const account of ledger.accounts)
      await ledger.request('anvil_setBalance', [account.address, `0x${(10n ** 24n).toString(16)}`]);
    const intervalSeconds = options.intervalSeconds ?? 3600;
    const now = Math.floor(Date.now() / 1000);
    const deployment = await deployMarket(ledger, ledger.accounts[0], {
      intervalSeconds,
      genesisTime: now - 10 * intervalSeconds - 1,
      rpcUrl: node.url,
    });
    const file = path.join(dir, 'deployment.json');
    writeDeployment(file, deployment);
    const market = new MarketClient(ledger, deployment);
    await market.setPrices(ledger.accounts[0], 11, 300, 100);
    await market.setFeederLimit(ledger.accounts[0], 7, 10n ** 12n, 10n ** 12n);
    const relayerKeyFile = path.join(dir, 'relayer.key');
    fs.writeFileSync(relayerKeyFile, `${keys[1]}\n`, { mode: 0o600 });
    return {
      node,
      ledger,
      market,
      deployment,
      file,
      dso: ledger.accounts[0],
      relayerKey: keys[1],
      relayerKeyFile,
      feeder: 7,
      delivery: 11,
    };
  } catch (err) {
    await node.stop();
    throw err;
  }
}
