// A secure element as provisioning leaves it: the emulated ATECC608 on an emulated I2C bus, driven by the
// firmware's own driver, with this firmware's configuration locked, identity and mix keys made, data
// zone locked.
import { SimClock } from '../../boards/emulator/clock.ts';
import { Atecc608 } from '../../boards/emulator/devices/atecc608/atecc608.ts';
import { I2CBus as EmulatedI2CBus } from '../../boards/emulator/pins.ts';
import { IDENTITY_SLOT, MIX_SLOT } from '../../firmware/src/protocol/slot-map.ts';
import { provisioningConfig } from '../../firmware/src/protocol/se-config-zone.ts';
import { SecureElement } from '../../firmware/src/se/secure-element.ts';
import { espruinoI2C } from './espruino-i2c.ts';

export interface ProvisionedSecureElement {
  clock: SimClock;
  se: SecureElement;
  /** Public keys, 65 bytes uncompressed. */
  identityKey: Uint8Array;
  mixKey: Uint8Array;
  close(): void;
}

export function provisionedSecureElement(): ProvisionedSecureElement {
  const clock = new SimClock({ speed: 1 });
  const bus = new EmulatedI2CBus(() => clock.now());
  bus.attach(0x60, new Atecc608({ clock }));
  const se = new SecureElement(espruinoI2C(bus));
  se.writeConfigZone(provisioningConfig(se.readConfigZone()));
  se.lockConfig(provisioningConfig(se.readConfigZone()));
  const identityKey = Uint8Array.of(4, ...se.genKey(IDENTITY_SLOT));
  const mixKey = Uint8Array.of(4, ...se.genKey(MIX_SLOT));
  se.lockData();
  return { clock, se, identityKey, mixKey, close: () => clock.close() };
}
