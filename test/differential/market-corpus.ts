// The differential corpus of the market and mixnet formats (protocol/offer.ts, certificate.ts kinds 4 and 5,
// asset-reply.ts, market-info.ts, onion-packet.ts, relay-directory.ts): a second corpus beside corpus.ts, because one bundle
// holding both would not fit beside the interpreter's 16,383 JsVars. Same rules as corpus.ts: one line per
// case, hex of bytes or "ERR <name>: <message>"; the SE's ECDH and ECDSA replaced by fixed bytes.
import { decodeAssetReply, encodeAssetReply } from '../../firmware/src/protocol/asset-reply.ts';
import {
  attestedCertificate,
  decodeAssetRequest,
  kidOf,
  decodeRelayDirectoryHead,
  encodeAssetRequest,
  encodeRelayDirectoryHead,
  openSignedCertificate,
} from '../../firmware/src/protocol/certificate.ts';
import { ALG_ATECC608_ATTESTED } from '../../firmware/src/protocol/cose.ts';
import { concatBytes } from '../../firmware/src/protocol/crypto/bytes.ts';
import { bytesToHex } from '../../firmware/src/protocol/hex.ts';
import { decodeMarketInfo, encodeMarketInfo } from '../../firmware/src/protocol/market-info.ts';
import {
  decodeOffer,
  encodeOffer,
  encodeOfferMessage,
  encodeRescission,
  splitOfferMessage,
  type Offer,
} from '../../firmware/src/protocol/offer.ts';
import {
  buildOnionPacket,
  PAYLOAD_OFFER,
  peelOnionPacket,
  type OnionHop,
} from '../../firmware/src/protocol/onion-packet.ts';
import { RelayBatch } from '../../firmware/src/mixnet/relay-batch.ts';
import { choosePath, sealOnion } from '../../firmware/src/mixnet/onion-sender.ts';
import {
  buildDirectoryPages,
  checkDirectoryPage,
  exitOfHead,
  relayRecordAt,
  relayRecordBytes,
  type RelayRecord,
} from '../../firmware/src/protocol/relay-directory.ts';
import { CORPUS_END, caseRunner, bytesOf, point, type CorpusEnvironment } from './corpus.ts';

export function runMarketCorpus(env: CorpusEnvironment): void {
  const sha256 = env.sha256;
  const run = caseRunner(env);
  function showOffer(o: Offer): string {
    return [
      o.domain.chainId,
      o.domain.market,
      o.side,
      o.interval,
      o.wh,
      o.limitPrice,
      o.seq,
      bytesToHex(o.key.x),
      bytesToHex(o.key.y),
    ].join(' ');
  }

  // ---- Offers ----
  const domain = { chainId: 31337, market: '0x' + bytesToHex(bytesOf(20, 1)) };
  const key = { x: bytesOf(32, 2), y: bytesOf(32, 3) };
  const offer = encodeOffer(domain, { side: 'ask', interval: 1988010, wh: 600, limitPrice: 150, seq: 7, key: key });
  run('offer.encode', function () {
    return offer;
  });
  run('offer.encode-big-numbers', function () {
    return encodeOffer(
      { chainId: 9007199254740991, market: domain.market.toUpperCase().replace('0X', '0x') },
      { side: 'bid', interval: 4294967295, wh: 4294967295, limitPrice: 2147483649, seq: 0, key: key },
    );
  });
  run('offer.decode', function () {
    return showOffer(decodeOffer(offer));
  });
  run('offer.decode-big-numbers', function () {
    return showOffer(
      decodeOffer(
        encodeOffer(
          { chainId: 4294967296 * 3 + 5, market: domain.market },
          { side: 'bid', interval: 4294967295, wh: 1, limitPrice: 4294967295, seq: 65536, key: key },
        ),
      ),
    );
  });
  run('offer.refuse-zero-wh', function () {
    return encodeOffer(domain, { side: 'ask', interval: 1, wh: 0, limitPrice: 1, seq: 0, key: key });
  });
  run('offer.refuse-fraction', function () {
    return encodeOffer(domain, { side: 'ask', interval: 1.5, wh: 1, limitPrice: 1, seq: 0, key: key });
  });
  run('offer.refuse-side', function () {
    const bad = concatBytes([offer]);
    bad[32] = 3;
    return showOffer(decodeOffer(bad));
  });
  run('offer.refuse-length', function () {
    return showOffer(decodeOffer(offer.subarray(1)));
  });
  run('offer.rescission', function () {
    return encodeRescission(domain, sha256(offer), key);
  });
  run('offer.message', function () {
    const message = encodeOfferMessage(offer, bytesOf(64, 4));
    const split = splitOfferMessage(message);
    return bytesToHex(sha256(message)) + ' ' + bytesToHex(split.signature);
  });

  // ---- Asset requests and replies, market info ----
  const request = {
    meterId: 'meter-0042',
    tradingKey: point(5),
    slot: 9,
    interval: 1988010,
    productionWh: 450,
    consumptionWh: 0,
  };
  run('asset-request.encode', function () {
    return encodeAssetRequest(request);
  });
  run('asset-request.roundtrip', function () {
    const r = decodeAssetRequest(encodeAssetRequest(request));
    return [r.meterId, bytesToHex(r.tradingKey), r.slot, r.interval, r.productionWh, r.consumptionWh].join(' ');
  });
  run('asset-request.refuse-slot', function () {
    return encodeAssetRequest({
      meterId: 'm',
      tradingKey: point(5),
      slot: 1,
      interval: 1,
      productionWh: 0,
      consumptionWh: 0,
    });
  });
  run('asset-request.attested', function () {
    const signed = attestedCertificate(
      sha256,
      function (nonce) {
        return concatBytes([nonce, sha256(nonce)]);
      },
      point(6),
      encodeAssetRequest(request),
    );
    const opened = openSignedCertificate(signed, ALG_ATECC608_ATTESTED);
    return bytesToHex(signed) + ' ' + bytesToHex(opened.kid);
  });
  run('asset-reply.issued', function () {
    return encodeAssetReply({ interval: 1988010, issued: true });
  });
  run('asset-reply.refused', function () {
    const r = decodeAssetReply(encodeAssetReply({ interval: 5, issued: false, reason: 'above-feeder-limit' }));
    return r.interval + ' ' + r.issued + ' ' + r.reason;
  });
  run('asset-reply.refuse-reason', function () {
    return encodeAssetReply({ interval: 5, issued: false, reason: 'nope' });
  });
  const info = {
    domain: domain,
    intervalSeconds: 900,
    genesisTime: 1796601600,
    fromInterval: 12,
    consumptionPrice: 300,
    productionPrice: 80,
  };
  run('market-info.encode', function () {
    return encodeMarketInfo(info);
  });
  run('market-info.roundtrip', function () {
    const i = decodeMarketInfo(encodeMarketInfo(info));
    return [
      i.domain.chainId,
      i.domain.market,
      i.intervalSeconds,
      i.genesisTime,
      i.fromInterval,
      i.consumptionPrice,
      i.productionPrice,
    ].join(' ');
  });

  // ---- Onion packets: built along three hops and peeled at each ----
  const hops: OnionHop[] = [];
  for (let i = 0; i < 3; i++)
    hops.push({ relayId: bytesOf(8, 10 + i), ephemeralKey: bytesOf(64, 20 + i), shared: bytesOf(32, 30 + i) });
  const primitives = { sha256: sha256, aes128Ctr: env.aes128Ctr };
  // A window with all four bytes of its big-endian encoding in use.
  const window = 0x7654321a;
  const onion = buildOnionPacket(primitives, window, hops, PAYLOAD_OFFER, encodeOfferMessage(offer, bytesOf(64, 4)));
  run('onion.build', function () {
    return bytesToHex(sha256(onion)) + ' ' + onion.length;
  });
  run('onion.peel-path', function () {
    let packet = onion;
    const out: string[] = [];
    for (let i = 0; i < 3; i++) {
      const peeled = peelOnionPacket(primitives, window, hops[i].shared, packet);
      out.push(bytesToHex(peeled.replayTag));
      if (peeled.packet) {
        out.push(bytesToHex(peeled.nextRelayId as Uint8Array) + ':' + bytesToHex(sha256(peeled.packet)));
        packet = peeled.packet;
      } else {
        out.push(peeled.payloadType + ':' + bytesToHex(sha256(peeled.payload as Uint8Array)));
      }
    }
    return out.join(' ');
  });
  run('onion.tampered', function () {
    const bad = concatBytes([onion]);
    bad[700] ^= 1;
    return String(peelOnionPacket(primitives, window, hops[0].shared, bad).replayTag);
  });
  run('onion.other-window', function () {
    return String(peelOnionPacket(primitives, window + 1, hops[0].shared, onion).replayTag);
  });
  run('onion.wrong-key', function () {
    return String(peelOnionPacket(primitives, window, hops[1].shared, onion).replayTag);
  });
  run('relay.batch', function () {
    // The SE's ECDH stands in as a table from the ephemeral keys this corpus made to their shared secrets.
    const batch = new RelayBatch({
      primitives: primitives,
      ecdh: function (ephemeral) {
        for (let i = 0; i < 3; i++)
          if (bytesToHex(ephemeral) === bytesToHex(hops[i].ephemeralKey)) return hops[i].shared;
        throw new Error('not a point');
      },
      randomBelow: function (n) {
        return n - 1;
      },
      capacity: 4,
    });
    const second = buildOnionPacket(
      primitives,
      window,
      [{ relayId: hops[0].relayId, ephemeralKey: hops[0].ephemeralKey, shared: hops[0].shared }, hops[2]],
      PAYLOAD_OFFER,
      bytesOf(3, 1),
    );
    const verdicts = [
      batch.accept(onion, window),
      batch.accept(onion, window),
      batch.accept(onion.subarray(0, 9), window),
      batch.accept(second, window),
    ];
    const out = batch.flush();
    const shown: string[] = [];
    for (let i = 0; i < out.length; i++)
      shown.push(bytesToHex(out[i].nextRelayId) + ':' + bytesToHex(sha256(out[i].packet)));
    return (
      verdicts.join(',') + ' ' + shown.join(' ') + ' ' + batch.dropped.replayed + ' ' + batch.dropped['bad-length']
    );
  });
  run('onion.sender', function () {
    // The SE stands in as fixed ephemeral keys and shared secrets, one per hop, in order.
    let hop = 0;
    const se = {
      genTempKey: function () {
        return hops[hop].ephemeralKey;
      },
      ecdh: function () {
        return hops[hop++].shared;
      },
    };
    const records = [
      { relayId: hops[0].relayId, mixKey: bytesOf(64, 40) },
      { relayId: hops[1].relayId, mixKey: bytesOf(64, 41) },
    ];
    const packet = sealOnion(
      se,
      primitives,
      window,
      records,
      { relayId: hops[2].relayId, mixKey: bytesOf(64, 42) },
      PAYLOAD_OFFER,
      encodeOfferMessage(offer, bytesOf(64, 4)),
    );
    let draws = 0;
    const path = choosePath(6, 3, function (n) {
      draws++;
      return (draws * 7 + 3) % n;
    });
    return bytesToHex(sha256(packet)) + ' ' + (bytesToHex(packet) === bytesToHex(onion)) + ' ' + path.join(',');
  });
  run('onion.short', function () {
    return String(peelOnionPacket(primitives, window, hops[0].shared, onion.subarray(0, 1000)).replayTag);
  });

  // ---- Relay directory: 30 relays in two pages, walked through the chain from the head ----
  const records: RelayRecord[] = [];
  for (let i = 0; i < 30; i++) records.push({ relayId: bytesOf(8, 100 + i), mixKey: bytesOf(64, 200 + i) });
  run('directory.pages', function () {
    const built = buildDirectoryPages(sha256, 7, records);
    return (
      bytesToHex(built.firstPageHash) +
      ' ' +
      bytesToHex(sha256(built.pages[1])) +
      ' ' +
      built.pages[0].length +
      ' ' +
      built.pages[1].length
    );
  });
  const exitKey = bytesOf(64, 43);
  run('directory.walk', function () {
    const built = buildDirectoryPages(sha256, 7, records);
    const head = decodeRelayDirectoryHead(
      encodeRelayDirectoryHead({
        epoch: 7,
        relayCount: 30,
        pageCount: 2,
        firstPageHash: built.firstPageHash,
        issuedAt: 1800000000,
        exit: relayRecordBytes({ relayId: kidOf(sha256, exitKey), mixKey: exitKey }),
      }),
    );
    const first = checkDirectoryPage(sha256, head, 0, head.firstPageHash, built.pages[0]);
    const second = checkDirectoryPage(sha256, head, 1, first.nextPageHash, built.pages[1]);
    return (
      bytesToHex(relayRecordAt(first.records, 0).relayId) +
      ' ' +
      bytesToHex(relayRecordAt(second.records, 5).mixKey) +
      ' ' +
      bytesToHex((exitOfHead(sha256, head) as RelayRecord).relayId)
    );
  });
  run('directory.bad-exit', function () {
    const head = {
      epoch: 7,
      relayCount: 1,
      pageCount: 1,
      firstPageHash: bytesOf(32, 1),
      issuedAt: 1,
      exit: bytesOf(72, 5),
    };
    return String(exitOfHead(sha256, head));
  });
  run('directory.tampered', function () {
    const built = buildDirectoryPages(sha256, 7, records);
    const head = { epoch: 7, relayCount: 30, pageCount: 2, firstPageHash: built.firstPageHash, issuedAt: 1 };
    built.pages[0][50] ^= 1;
    return String(checkDirectoryPage(sha256, head, 0, head.firstPageHash, built.pages[0]).count);
  });

  env.print(CORPUS_END);
}
