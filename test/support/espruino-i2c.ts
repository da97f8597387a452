// The secure element's bus over the emulated I2C bus, behaving as the firmware's platform/i2c.ts
// secureElementBus() does on Espruino 2v29: software I2C at 100 kHz that never throws for a missing ACK (a
// read from nobody gives 0xFF bytes), and the wake as a general-call write at 10 kHz. For tests that drive
// the SE driver without booting a board.
import type { I2CBus as EmulatedI2CBus } from '../../boards/emulator/pins.ts';
import type { SecureElementBus } from '../../firmware/src/se/secure-element.ts';

// platform/i2c.ts's I2C_BITRATE and WAKE_BITRATE (that module needs the device's globals to compile).
const I2C_BITRATE = 100000;
const WAKE_BITRATE = 10000;

export function espruinoI2C(bus: EmulatedI2CBus): SecureElementBus {
  const master = { bitrate: I2C_BITRATE, software: true };
  return {
    wake: () => {
      bus.write(0x00, Uint8Array.of(0), { bitrate: WAKE_BITRATE, software: true });
    },
    writeTo: (address, data) => {
      bus.write(address, Uint8Array.from(data), master);
    },
    readFrom: (address, n) => {
      const got = bus.read(address, n, master);
      return got ? Uint8Array.from(got.subarray(0, n)) : new Uint8Array(n).fill(0xff);
    },
  };
}
