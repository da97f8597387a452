// The firmware's I2CBus interface over the emulated bus, behaving as Espruino 2v29's I2C1 on the
// ESP32 (targets/esp32/jshardwareI2c.c): a transfer nobody ACKs throws. For tests that drive the SE
// driver without booting a board.
/// <reference path="../../firmware/src/platform/espruino-api.d.ts" />
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import type { I2CBus as EmulatedI2CBus } from '../../boards/emulator/pins.ts';

const METER_PINS = loadBoardDefinition('esp32-meter').pins;
/** I2C1 as the firmware sets it up for the secure element on the esp32-meter board (platform/i2c.ts deviceI2C). */
export const METER_I2C_SETUP = { scl: METER_PINS.i2cScl, sda: METER_PINS.i2cSda, bitrate: 100000 };

export function espruinoI2C(bus: EmulatedI2CBus): I2CBus {
  return {
    setup: (o) => {
      bus.configured = { scl: Number(o.scl), sda: Number(o.sda), bitrate: o.bitrate ?? 100000 };
    },
    writeTo: (address, data) => {
      const payload = typeof data === 'number' ? Uint8Array.of(data) : Uint8Array.from(data);
      if (!bus.write(address, payload)) throw new Error("jshI2CWrite: slave doesn't ACK the transfer");
    },
    readFrom: (address, n) => {
      const got = bus.read(address, n);
      if (!got) throw new Error("jshI2CRead: slave doesn't ACK the transfer");
      return Uint8Array.from(got.subarray(0, n));
    },
  };
}
