// The board's I2C bus to the ATECC608 secure element: I2C1 on the pins of the board definition
// (boards/<board>.board-definition.json "pins", put into the bundle by the build: platform/board.ts).
//
// 100 kHz, the secure element's wake speed, for every transfer: its wake is a write to the general
// call address 0x00, whose 8 zero address bits hold SDA low for 80 us at 100 kHz (tWLO >= 60 us),
// so no bus re-setup is needed around each wake (at 400 kHz the same write is only 20 us low).
// On the ESP32 a transfer nobody ACKs throws "jshI2CWrite/jshI2CRead: slave doesn't ACK the transfer".

import { boardFacts } from './board.ts';

export const I2C_BITRATE = 100000;

/** I2C1, set up for the secure element. */
export function deviceI2C(): I2CBus {
  const pins = boardFacts().pins;
  I2C1.setup({ scl: pins.i2cScl, sda: pins.i2cSda, bitrate: I2C_BITRATE });
  return I2C1;
}
