// The trading meter, whole: the built firmware bundle on each board backend (boards/harness: the vm emulator,
// and Espruino's real interpreter on espruino-linux), provisioned through its console, on a real broker
// (aedes), with a stand-in DSO that opens each sealed asset request, checks the identity key's attestation
// and replies 'issued', and a stand-in bridge that publishes the market info, checks each offer with
// node:crypto and decodeOffer, sends receipts and, after each gate closure, the clearing result with fills.
// The meter exports (S0 pulses), forecasts a surplus and asks it; every interval brings one request on a
// fresh key, in the next slot of the trading ring. Then a power cut right after an offer left, its receipt
// withheld: after the reboot the meter sends no second request and makes no second key for that interval,
// sends the same offer again before gate closure, and trades the next interval on a new key.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { p256 } from '@noble/curves/nist.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BACKENDS,
  createRig,
  unavailable,
  type Backend,
  type MeterBoard,
  type Rig,
} from '../../boards/harness/meter-board.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import { constant } from '../../boards/emulator/load-profile.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { encodeAssetReply } from '../../firmware/src/protocol/asset-reply.ts';
import type { AssetRequest } from '../../firmware/src/protocol/certificate.ts';
import { encodeClearing, encodeReceipts } from '../../firmware/src/protocol/market-broadcast.ts';
import { CONFIG_FILE, type MeterConfig } from '../../firmware/src/protocol/meter-config.ts';
import type { Offer } from '../../firmware/src/protocol/offer.ts';
import { TRADING_RING, nextTradingSlot } from '../../firmware/src/protocol/slot-map.ts';
import {
  assetReplyTopic,
  ASSET_REQUEST_TOPIC_FILTER,
  CLEARING_TOPIC,
  MARKET_INFO_TOPIC,
  meterIdFromAssetRequestTopic,
  OFFER_TOPIC_FILTER,
  RECEIPT_TOPIC,
} from '../../firmware/src/protocol/topics.ts';
import {
  offerDigest,
  openAssetRequest,
  testMarketInfoBytes,
  verifyOfferWithNodeCrypto,
} from '../support/trading-stand-ins.ts';

/** Interval length (market and metering) and clock speed per backend: the real interpreter runs in real time. */
const TIMING: Record<Backend, { interval: number; speed: number }> = {
  vm: { interval: 60, speed: 30 },
  'espruino-linux': { interval: 60, speed: 1 },
};
const METER = 'meter-trader-1';
const CLEARING_PRICE = 200;

interface Seen {
  requests: AssetRequest[];
  offers: Array<{ offer: Offer; digest: string; at: number }>;
}

async function until(rig: Rig, check: () => boolean, what: () => string, intervals: number): Promise<void> {
  const deadline = rig.clock.now() + intervals * TIMING[rig.backend].interval;
  while (!check()) {
    if (rig.clock.now() > deadline) assert.unreachable(`timed out waiting: ${what()}`);
    await rig.wait(TIMING[rig.backend].interval / 40);
  }
}

/** Holds half the interpreter's JsVars from the console (and samples the usage every 5 ms); the JsVars held. */
async function holdBallast(board: MeterBoard): Promise<number> {
  await board.evaluate('E.getErrorFlags()'); // clears the flags raised so far
  const ballast = await board.evaluate(
    `(function(){var before=process.memory().usage;global.vgTrade={peak:0,ballast:[]};` +
      `while(process.memory().usage-before<${Math.ceil(16383 / 2)})vgTrade.ballast.push(new Uint8Array(1400));` +
      `setInterval(function(){var u=process.memory(false).usage;if(u>vgTrade.peak)vgTrade.peak=u;},5);` +
      `return process.memory().usage-before;})()`,
  );
  assert.ok('value' in ballast, JSON.stringify(ballast));
  return ballast.value as number;
}

for (const backend of BACKENDS) {
  const test = suite(`trading on ${backend}`);
  const missing = unavailable(backend);
  if (missing) {
    test(`${backend}: skipped (${missing})`, () => console.log(`    SKIPPED the ${backend} backend: ${missing}`));
    test.run();
    continue;
  }

  test(`${backend}: a request per interval on a fresh key, offers that verify, receipts, fills; a power cut after an offer neither reuses nor loses its key`, async () => {
    const { interval, speed } = TIMING[backend];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `veilgrid-trading-${backend}-`));
    const { outFile } = await buildFirmware({ board: 'esp32-meter', outFile: path.join(dir, 'esp32-meter.js') });
    const broker = await startEmbeddedBroker({ log: () => {} });
    const start = Math.ceil(Date.now() / 1000 / interval) * interval + 1;
    const rig = await createRig(backend, { dir, speed, startEpochSeconds: start });
    const genesis = Math.floor(start / interval) * interval - 1000 * interval;
    const gate = (d: number) => genesis + d * interval;
    const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
    /** The trading keys the requests for interval d named (copies of one request name one). */
    const keysFor = (d: number) => new Set(seen.requests.filter((r) => r.interval === d).map((r) => hex(r.tradingKey)));
    const dso = p256.keygen();
    const seen: Seen = { requests: [], offers: [] };
    let withhold: string | undefined;
    let withholdNext = false;
    let output = '';
    let board: MeterBoard | undefined;
    let source: S0PulseSource | undefined;
    const host = await mqtt.connectAsync(broker.url, { clientId: 'dso-and-bridge', reconnectPeriod: 0 });
    try {
      board = await rig.addBoard(METER);
      board.onOutput((text) => (output += text));
      board.writeFile('.bootcde', fs.readFileSync(outFile, 'latin1'));
      await board.powerOn();
      const provisioned = await board.evaluate('vgProvisionSE()');
      assert.ok('value' in provisioned, JSON.stringify(provisioned));
      const se = JSON.parse(provisioned.value as string) as { identityKey: string; error?: string };
      assert.is(se.error, undefined);
      const identityKey = new Uint8Array(Buffer.from(se.identityKey, 'hex'));
      const config: MeterConfig = {
        meterId: METER,
        broker: { host: '127.0.0.1', port: broker.port },
        mqtt: { username: METER, password: 'x' },
        intervalSeconds: interval,
        s0: {
          importPin: rig.definition.pins.s0Import,
          exportPin: rig.definition.pins.s0Export,
          impulsesPerKWh: 1000,
          debounceMs: 10,
        },
        journal: { commitEveryWh: 10 },
        dsoPublicKey: Buffer.from(p256.getPublicKey(dso.secretKey, false)).toString('hex'),
        trading: { enabled: true, forecastPercent: 100, biasWh: 0, priceMarginPercent: 10 },
        // The stand-ins below take offers on the meter's own topic: the direct path, not the mixnet.
        mixnet: { enabled: false },
      };
      await board.powerCut();
      board.writeFile(CONFIG_FILE, JSON.stringify(config));

      // The stand-ins: the market info (retained), the DSO's replies, the bridge's receipts and clearing.
      await host.publishAsync(MARKET_INFO_TOPIC, Buffer.from(testMarketInfoBytes(interval, genesis)), {
        qos: 1,
        retain: true,
      });
      await host.subscribeAsync([ASSET_REQUEST_TOPIC_FILTER, OFFER_TOPIC_FILTER], { qos: 1 });
      host.on('message', (topic, payload) => {
        const bytes = new Uint8Array(payload);
        if (meterIdFromAssetRequestTopic(topic) === METER) {
          const request = openAssetRequest(dso.secretKey, identityKey, bytes); // throws on a bad attestation: the test fails
          seen.requests.push(request);
          host.publish(
            assetReplyTopic(METER),
            Buffer.from(encodeAssetReply({ interval: request.interval, issued: true })),
            { qos: 1 },
          );
          return;
        }
        const offer = verifyOfferWithNodeCrypto(bytes);
        const digest = offerDigest(bytes);
        const hex = Buffer.from(digest).toString('hex');
        seen.offers.push({ offer, digest: hex, at: rig.clock.now() });
        // The offer to cut power after: one with time left before its gate for a reboot and a resend (in real
        // time on a loaded machine an offer can leave late in its window).
        if (
          withholdNext &&
          seen.offers.filter((o) => o.digest === hex).length === 1 &&
          gate(offer.interval) - rig.clock.now() >= 0.4 * interval
        ) {
          withholdNext = false;
          withhold = hex;
        }
        if (withhold === hex) return;
        if (seen.offers.filter((o) => o.digest === hex).length === 1) {
          host.publish(
            RECEIPT_TOPIC,
            Buffer.from(encodeReceipts({ accepted: [{ digest, interval: offer.interval, index: 0 }], refused: [] })[0]),
            { qos: 1 },
          );
          rig.clock.setTimeoutAt(() => {
            const [part] = encodeClearing(
              { interval: offer.interval, price: CLEARING_PRICE, volumeWh: offer.wh, offers: 2 },
              [
                {
                  digest: new Uint8Array(32).fill(0xee),
                  fillWh: offer.wh,
                  paid: offer.wh * CLEARING_PRICE,
                  received: 0,
                },
                { digest, fillWh: offer.wh, paid: 0, received: offer.wh * CLEARING_PRICE },
              ],
            );
            host.publish(CLEARING_TOPIC, Buffer.from(part), { qos: 1 });
          }, gate(offer.interval) + 1);
        }
      });

      await board.powerOn();
      source = new S0PulseSource({
        board,
        pin: rig.definition.pins.s0Export,
        impulsesPerKWh: 1000,
        profile: constant(7200),
      }); // 2 pulses/s exported
      source.start();
      const status = () =>
        `requests ${JSON.stringify(seen.requests.map((r) => [r.interval, r.slot, r.productionWh]))}, offers ${seen.offers.length}; the meter printed ${output.slice(-2500)}`;

      // The JsVar budget (half the store for the firmware), as bench/espruino-memory.ts proves it for readings:
      // on the real interpreter, ballast held from the console takes the other half while the meter trades
      // (request, offer, receipt, fill) without a memory error flag. A 5 ms sampler notes the peak between tasks.
      const ballastVars = backend === 'espruino-linux' ? await holdBallast(board) : 0;

      // Trading: the first requests ask nothing (no forecast yet), then the surplus; offers filled (two on the
      // vm; one in real time, where a loaded machine can make the interpreter miss a window).
      const fills = backend === 'vm' ? 2 : 1;
      await until(rig, () => (output.match(/cleared at 200/g) ?? []).length >= fills, status, 12);
      if (backend === 'espruino-linux') {
        const flags = await board.evaluate('E.getErrorFlags()');
        const peak = await board.evaluate('vgTrade.peak');
        console.log(
          `    figures: espruino-linux, ${ballastVars} JsVars of ballast held while trading: error flags ${JSON.stringify('value' in flags ? flags.value : flags)}, sampled peak ${'value' in peak ? (peak.value as number) - ballastVars : '?'} JsVars without the ballast`,
        );
        assert.ok(
          'value' in flags && !(flags.value as string[]).some((f) => /MEMORY/.test(f)),
          `no memory error with half the store left to the firmware: ${JSON.stringify(flags)}`,
        );
      }
      // (In real time the first window can pass while the interpreter is busy, so only the vm is sure to see it.)
      if (backend === 'vm')
        assert.ok(
          seen.requests.some((r) => r.productionWh === 0 && r.consumptionWh === 0),
          'a zero request before the forecast knew anything',
        );
      // QoS 1 is at least once: a request can arrive twice (resent after a reconnect), always on the same key.
      const requests = seen.requests.filter((r, i) => seen.requests.findIndex((q) => q.interval === r.interval) === i);
      for (const r of requests) assert.is(keysFor(r.interval).size, 1, `interval ${r.interval}: one key`);
      const intervals = requests.map((r) => r.interval);
      const keys = new Set(requests.map((r) => hex(r.tradingKey)));
      assert.is(keys.size, requests.length, 'a fresh key every interval');
      if (backend === 'vm') {
        assert.equal(
          intervals,
          intervals.map((_, i) => intervals[0] + i),
          'one request per interval, each interval',
        );
        for (let i = 1; i < requests.length; i++)
          assert.is(requests[i].slot, nextTradingSlot(requests[i - 1].slot), 'the next slot of the ring');
        assert.is(requests[0].slot, TRADING_RING[0]);
      } else {
        // In real time on a loaded machine a window can pass while the interpreter is busy: no interval twice.
        for (let i = 1; i < intervals.length; i++)
          assert.ok(intervals[i] > intervals[i - 1], `intervals ${intervals.join(', ')}`);
        for (const r of requests) assert.ok(TRADING_RING.includes(r.slot));
      }
      for (const { offer, at } of seen.offers) {
        const request = seen.requests.find((r) => r.interval === offer.interval)!;
        assert.equal(
          Uint8Array.of(4, ...offer.key.x, ...offer.key.y),
          request.tradingKey,
          'the offer is signed by the key its request named',
        );
        assert.equal([offer.side, offer.wh, offer.limitPrice, offer.seq], ['ask', request.productionWh, 120, 0]);
        assert.ok(at < gate(offer.interval), 'before gate closure');
      }
      assert.ok(/offer on chain/.test(output), status());

      // The power cut: right after the next offer leaves, its receipt withheld.
      withholdNext = true;
      await until(rig, () => withhold !== undefined, status, 6);
      await board.powerCut();
      const cut = seen.offers.find((o) => o.digest === withhold)!;
      const d = cut.offer.interval;
      assert.is(keysFor(d).size, 1);
      const cutAt = rig.clock.now();
      await board.powerOn();
      await until(
        rig,
        () => seen.offers.filter((o) => o.digest === cut.digest).length >= 2 || rig.clock.now() >= gate(d) + 1,
        status,
        3,
      );
      const copies = seen.offers.filter((o) => o.digest === cut.digest);
      assert.ok(
        copies.length >= 2,
        `the offer of interval ${d} sent again after the reboot (cut at ${cutAt}, gate ${gate(d)}): ${status()}`,
      );
      assert.ok(copies[1].at < gate(d), 'before its gate closed');
      assert.is(keysFor(d).size, 1, 'no second key for the interval');
      await until(rig, () => seen.requests.some((r) => r.interval === d + 1), status, 3);
      const next = seen.requests.find((r) => r.interval === d + 1)!;
      const before = seen.requests.find((r) => r.interval === d)!;
      assert.is(next.slot, nextTradingSlot(before.slot), 'the next interval: a new key in the next slot');
      assert.not.equal(next.tradingKey, before.tradingKey);
      if (backend === 'espruino-linux') {
        const memory = await board.memory();
        console.log(
          `    figures: espruino-linux after trading: process.memory() ${JSON.stringify('value' in memory ? memory.value : memory)}`,
        );
      }
      assert.not.ok(/no asset request|no offer:|not understood|threw/.test(output), output);
    } catch (err) {
      // The whole console output, for a failure on a slow machine: where the meter was when time ran out.
      const file = path.join(os.tmpdir(), `veilgrid-trading-${backend}-output.txt`);
      fs.writeFileSync(file, output);
      console.log(`    the meter's whole output is in ${file}`);
      throw err;
    } finally {
      source?.stop();
      await host.endAsync();
      await rig.close();
      await broker.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test.run();
}
