// The board this bundle was built for: the facts of its board definition
// (boards/<board>.board-definition.json) that the firmware reads. `veilgrid build --board <board>` puts
// them into the bundle as __VEILGRID_BOARD__
// (host-tools/build/build-firmware.ts `firmwareBoardFacts`), as it puts in the build id, so no firmware
// file names a pin or a flash address and the definition is their one source.

import type { RawFlashPartition } from '../persist/partition.ts';
import { VeilgridError } from '../protocol/veilgrid-error.ts';

export interface BoardFacts {
  /** GPIO numbers of the secure element's I2C clock and data lines. */
  pins: { i2cScl: number; i2cSda: number };
  /** Raw flash partitions for the power-safe rings, in order of preference (persist/partition.ts). */
  rawFlash: RawFlashPartition[];
}

declare const __VEILGRID_BOARD__: BoardFacts | undefined;

/** The facts of the board the bundle was built for; throws in code that did not go through the build. */
export function boardFacts(): BoardFacts {
  if (typeof __VEILGRID_BOARD__ === 'object' && __VEILGRID_BOARD__) return __VEILGRID_BOARD__;
  throw new VeilgridError('BoardError', 'no-board', 'no board facts: build with veilgrid build --board <id>');
}
