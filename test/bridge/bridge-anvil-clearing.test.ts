// Clearing on a real node that is idle at gate closure: anvil mines a block per transaction only, so when an
// interval's gate closes the latest block is older than the closure. The bridge must still clear, settle and
// broadcast the result (an eth_call at the latest block answers GateOpen there; the bridge does not ask one).
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startEmbeddedBroker } from '../../host-tools/broker/embedded-broker.ts';
import { startBridge } from '../../host-tools/bridge/bridge.ts';
import { grantFor } from '../../host-tools/ledger/market.ts';
import { generateTradingKey } from '../../host-tools/ledger/trading-key.ts';
import {
  BroadcastListener,
  connect,
  marketOnAnvil,
  publishOffer,
  signedOffer,
  tempDir,
  until,
} from './bridge-fixture.ts';

const test = suite('bridge clears an idle anvil chain');

test('after the gate closes on an idle chain, the interval is cleared, settled and broadcast', async () => {
  const tmp = tempDir('veilgrid-bridge-anvil-clearing-');
  const chain = await marketOnAnvil(tmp.dir, { intervalSeconds: 15 });
  const broker = await startEmbeddedBroker({ log: () => {} });
  const listener = await BroadcastListener.start(broker.url);
  const meter = await connect(broker.url, { clientId: 'meter-idle' });
  const bridge = await startBridge({
    market: chain.market,
    relayer: chain.ledger.accounts[1],
    db: path.join(tmp.dir, 'q.db'),
    brokerUrl: broker.url,
    clientId: 'bridge',
    tickMs: 100,
    log: () => {},
    http: false,
  });
  try {
    const seller = generateTradingKey();
    const buyer = generateTradingKey();
    await chain.market.issue(chain.dso, chain.feeder, [
      grantFor(seller.publicKey, chain.delivery, { production: 100 }),
      grantFor(buyer.publicKey, chain.delivery, { consumption: 100, money: 100n * 300n }),
    ]);
    const ask = signedOffer(chain.market.domain, seller, {
      side: 'ask',
      interval: chain.delivery,
      wh: 100,
      limitPrice: 150,
    });
    const bid = signedOffer(chain.market.domain, buyer, {
      side: 'bid',
      interval: chain.delivery,
      wh: 80,
      limitPrice: 250,
    });
    await publishOffer(meter, 'meter-idle', ask.message);
    await publishOffer(meter, 'meter-idle', bid.message);
    for (const o of [ask, bid]) assert.is((await listener.outcome(o.digest)).accepted, true);
    const closure = (chain.deployment.genesisTime + chain.delivery * chain.deployment.intervalSeconds) * 1000;
    assert.ok(Date.now() < closure, 'the offers were on chain before the gate closed');
    await until(
      () => listener.clearing.has(chain.delivery),
      closure - Date.now() + 20_000,
      `the clearing of interval ${chain.delivery}`,
    );
    const [part] = listener.clearing.get(chain.delivery)!;
    assert.equal([part.volumeWh, part.price, part.fills.map((f) => f.fillWh)], [80, 200, [80, 80]]);
  } finally {
    await bridge.close();
    await meter.endAsync();
    await listener.close();
    await broker.close();
    await chain.node.stop();
    tmp.remove();
  }
});

test.run();
