// The board's I2C bus to the ATECC608 secure element: I2C1 on the pins of boards/esp32-meter.json.
//
// 100 kHz, the secure element's wake speed, for every transfer: its wake is a write to the general
// call address 0x00, whose 8 zero address bits hold SDA low for 80 us at 100 kHz (tWLO >= 60 us),
// so no bus re-setup is needed around each wake (at 400 kHz the same write is only 20 us low).
// On the ESP32 a transfer nobody ACKs throws "jshI2CWrite/jshI2CRead: slave doesn't ACK the transfer".

export const I2C_SCL_PIN = 22;
export const I2C_SDA_PIN = 21;
export const I2C_BITRATE = 100000;

/** I2C1, set up for the secure element. */
export function deviceI2C(): I2CBus {
  I2C1.setup({ scl: I2C_SCL_PIN, sda: I2C_SDA_PIN, bitrate: I2C_BITRATE });
  return I2C1;
}
