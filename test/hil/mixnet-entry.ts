// Firmware entry for the mix node scenario (mixnet-scenario.ts) on Espruino's interpreter, over the device's
// native SHA-256 and AES; its data is the global VG_MIX the test puts in front of the bundle.
import { nativeAes128Ctr, nativeSha256 } from '../../firmware/src/platform/crypto.ts';
import { runMixScenario, type MixScenarioData } from './mixnet-scenario.ts';

declare const VG_MIX: MixScenarioData;

runMixScenario(
  {
    sha256: nativeSha256,
    aes128Ctr: nativeAes128Ctr,
    print: function (line) {
      console.log(line);
    },
  },
  VG_MIX,
);
console.log('L end');
