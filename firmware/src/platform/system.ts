// The interpreter's life cycle.

/**
 * Runs `start` every time the board boots from flash: Espruino emits 'init' after it has run the
 * saved boot code, so the firmware starts on power-on without anyone typing at the console.
 */
export function onBoot(start: () => void): void {
  E.on('init', start);
}
