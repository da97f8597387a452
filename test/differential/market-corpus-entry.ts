// Firmware entry for the market corpus (market-corpus.ts), over the device's native SHA-256 and AES.
import { nativeAes128Ctr, nativeSha256 } from '../../firmware/src/platform/crypto.ts';
import { runMarketCorpus } from './market-corpus.ts';

runMarketCorpus({
  sha256: nativeSha256,
  aes128Ctr: nativeAes128Ctr,
  print: function (line) {
    console.log(line);
  },
});
