// Onion packets per second through the bridge's mixnet exit (issue 11; host-tools/bridge/mix-exit.ts): what the
// exit does to each packet that reaches veilgrid/mix/exit before the offer path takes over (length, ECDH with
// the exit key in node:crypto, HKDF, the MAC over 928 bytes, AES-CTR of routing and body, the replay tag, the
// type), for offers, dummies and packets that fail their MAC (a flood of packets built to the exit's public
// key costs the same ECDH), next to node:crypto's bare ECDH (the floor), and an offer through the exit and the
// bridge's offer check (offer-check.ts: codec and ES256 verify) together. Packets are built by a sender for two
// relays and the exit and peeled by both relays first, as the exit receives them; each is taken once (replay
// tags), alternating rounds so drift of the machine hits every line alike.
// Usage: node --import tsx bench/bridge-exit.ts [--packets 2000] [--rounds 5]
import { createECDH } from 'node:crypto';
import { parseArgs } from 'node:util';
import { onionEphemeralKey, PAYLOAD_DUMMY, PAYLOAD_OFFER } from '../firmware/src/protocol/onion-packet.ts';
import { ensureExitKey } from '../host-tools/bridge/exit-key.ts';
import { MixExit } from '../host-tools/bridge/mix-exit.ts';
import { checkOfferMessage } from '../host-tools/bridge/offer-check.ts';
import { generateTradingKey } from '../host-tools/ledger/trading-key.ts';
import { exitRelay, mixPacket, signedOffer, tempDir } from '../test/bridge/bridge-fixture.ts';

const { values } = parseArgs({
  options: { packets: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '5' } },
});
const count = Number(values.packets);
const rounds = Number(values.rounds);

const tmp = tempDir('veilgrid-bench-exit-');
const exitKey = ensureExitKey(`${tmp.dir}/exit-key.json`);
tmp.remove();
const exit = exitRelay(exitKey);
const domain = { chainId: 31337, market: '0x5fbdb2315678afecb367f032d93f642f64180aa3' };
const context = { domain, gateClosure: () => Number.MAX_SAFE_INTEGER, now: () => 0, revokedKeys: new Set<string>() };

const offerMessage = (i: number) =>
  signedOffer(domain, generateTradingKey(), { side: i % 2 ? 'ask' : 'bid', interval: 11, wh: 100 + i, limitPrice: 150 })
    .message;

/** The offer window every packet travels in (its keys bind it). */
const WINDOW = 11;

/** A fresh set of packets per round and line: the exit takes each tag once. */
function packets(kind: 'offer' | 'dummy' | 'bad-mac'): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => {
    if (kind === 'dummy') return mixPacket(exit, PAYLOAD_DUMMY, new Uint8Array(0), WINDOW);
    const packet = mixPacket(exit, PAYLOAD_OFFER, offerMessage(i), WINDOW);
    if (kind === 'bad-mac') packet[600] ^= 1;
    return packet;
  });
}

function perSecond(run: () => void): number {
  const started = process.hrtime.bigint();
  run();
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

const lines: Record<string, number[]> = {
  'ECDH alone (node:crypto computeSecret)': [],
  'exit, offer packets': [],
  'exit, dummies': [],
  'exit, bad MAC': [],
  'exit + offer check (ES256 verify), offer packets': [],
};
const ecdh = createECDH('prime256v1');
ecdh.setPrivateKey(exitKey.privateKey);
for (let round = 0; round < rounds; round++) {
  const offers = packets('offer');
  const dummies = packets('dummy');
  const bad = packets('bad-mac');
  const checked = packets('offer');
  const points = offers.map((p) => Buffer.concat([Buffer.from([4]), onionEphemeralKey(p)]));
  const mix = new MixExit({ privateKey: exitKey.privateKey, windowPackets: 10 * count });
  const take = (list: Uint8Array[], expect: string) => () => {
    for (const packet of list) {
      const result = mix.take(packet, WINDOW);
      if (result.outcome !== expect) throw new Error(`expected ${expect}, got ${result.outcome}`);
    }
  };
  lines['ECDH alone (node:crypto computeSecret)'].push(
    perSecond(() => {
      for (const point of points) ecdh.computeSecret(point);
    }),
  );
  lines['exit, offer packets'].push(perSecond(take(offers, 'offer')));
  lines['exit, dummies'].push(perSecond(take(dummies, 'dummy')));
  lines['exit, bad MAC'].push(perSecond(take(bad, 'bad-mac')));
  lines['exit + offer check (ES256 verify), offer packets'].push(
    perSecond(() => {
      for (const packet of checked) {
        const result = mix.take(packet, WINDOW);
        if (result.outcome !== 'offer' || !checkOfferMessage(result.message, context).ok)
          throw new Error('an offer packet did not open to a valid offer');
      }
    }),
  );
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`bridge exit: ${count} packets per line, ${rounds} rounds, median of rounds (node ${process.version})`);
for (const [name, figures] of Object.entries(lines)) {
  const m = median(figures);
  console.log(
    `  ${name.padEnd(50)} ${Math.round(m).toLocaleString('en').padStart(8)} /s  ${(1e6 / m).toFixed(0).padStart(5)} µs each`,
  );
}
