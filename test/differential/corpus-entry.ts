// Firmware entry for test/differential/corpus.test.ts: the corpus over the device's native SHA-256 and
// AES (crypto module), printing one line per case. Built by the firmware pipeline, so what runs in the
// interpreter and in the emulator's realm is what the meter would run.
import { nativeAes128Ctr, nativeSha256 } from '../../firmware/src/platform/crypto.ts';
import { runCorpus } from './corpus.ts';

runCorpus({
  sha256: nativeSha256,
  aes128Ctr: nativeAes128Ctr,
  print: function (line) {
    console.log(line);
  },
});
