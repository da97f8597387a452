// Espruino's flash file store. The one place the firmware names require("Storage"): logic modules
// receive the StorageModule as a parameter, so tests hand them the emulator's Storage directly.

/** The board's Storage module (the build keeps this require literal: it is an Espruino built-in). */
export function flashStorage(): StorageModule {
  return require('Storage');
}
