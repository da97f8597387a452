// Espruino's Flash module: raw flash pages outside Storage. The one place the firmware names
// require("Flash"); logic modules (persist/flash-ring.ts) receive the FlashModule as a parameter,
// so tests hand them the emulator's model directly.
//
// Which flash the firmware may use comes from the board definition
// (boards/<board>.board-definition.json "rawFlash"), put into the bundle by the build (platform/board.ts):
// nowhere else names an address.

import type { RawFlashPartition } from '../persist/partition.ts';
import { boardFacts } from './board.ts';

/** The board's Flash module (the build keeps this require literal: it is an Espruino built-in). */
export function rawFlash(): FlashModule {
  return require('Flash');
}

/** The raw-flash partitions the board definition offers, in order of preference. */
export function rawFlashPartitions(): RawFlashPartition[] {
  return boardFacts().rawFlash;
}
