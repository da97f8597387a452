// The board's I2C bus to the ATECC608 secure element, on the pins of the board definition
// (boards/<board>.board-definition.json "pins", put into the bundle by the build: platform/board.ts).
//
// Espruino's software I2C (`new I2C()`, src/jsi2c.c), not the ESP32's I2C peripheral: the chip does not ACK
// while asleep or busy, and on the peripheral every missing ACK is an exception
// (targets/esp32/jshardwareI2c.c), whose stack trace Espruino builds by scanning the firmware's source: on
// the espruino-linux board 1-2 s per wake under load, past the chip's 1.3 s watchdog. Software I2C never
// throws for a missing ACK (it is built without I2C_NACK_CHECK): a write nobody takes is lost and a read
// from nobody gives 0xFF bytes, which the driver reads as "no response yet".
//
// Transfers run at 100 kHz. The wake is a second software bus on the same pins at 10 kHz writing to the
// general-call address 0x00: software I2C waits 250000/bitrate whole us per step and lets SDA go between
// bits, so only the start condition with a first 0 bit holds SDA low without a break: five steps, 125 us
// at 10 kHz (tWLO >= 60 us), 10 us at 100 kHz.

import type { SecureElementBus } from '../se/secure-element.ts';
import { boardFacts } from './board.ts';

export const I2C_BITRATE = 100000;
export const WAKE_BITRATE = 10000;

function softwareI2C(bitrate: number): I2CBus {
  const pins = boardFacts().pins;
  const bus = new I2C();
  bus.setup({ scl: pins.i2cScl, sda: pins.i2cSda, bitrate: bitrate });
  return bus;
}

/** The secure element's bus. */
export function secureElementBus(): SecureElementBus {
  const bus = softwareI2C(I2C_BITRATE);
  const wakeBus = softwareI2C(WAKE_BITRATE);
  return {
    wake: function () {
      wakeBus.writeTo(0x00, 0x00);
    },
    writeTo: function (address, data) {
      bus.writeTo(address, data);
    },
    readFrom: function (address, quantity) {
      return bus.readFrom(address, quantity);
    },
  };
}
