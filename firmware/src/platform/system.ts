// The interpreter's life cycle.

/**
 * Runs `start` every time the board boots from flash: Espruino emits 'init' after it has run the
 * saved boot code, so the firmware starts on power-on without anyone typing at the console.
 */
export function onBoot(start: () => void): void {
  E.on('init', start);
}

/**
 * Seeds the generator behind Math.random and E.hwRand. On the ESP32 both are Espruino's own rand() with a
 * fixed seed (src/jsutils.c; targets/esp32/jshardware.c jshGetRandomNumber), so without this every meter
 * draws the same "random" reconnect delays after a boot and meters that lost the same broker retry in step.
 * The seed is 32 bits (E.srand): enough to spread retries, not a key.
 */
export function seedRandom(seed: number): void {
  E.srand(seed);
}
