// The raw-flash partition the meter keeps its rings in, and how it is split between them.
//
// The board definition lists candidate partitions (boards/esp32-meter.board-definition.json "rawFlash"); the one
// used is the first that lies wholly inside an area Espruino's Flash.getFree() reports on the
// interpreter actually running. On the ESP32 that is the 64 KB "flash" data partition at
// 0x310000, just below Storage. Espruino's Linux build offers only its Storage file, so there the
// partition is the end of the Storage area ("storageAddr" set): Storage reaches it only when
// nearly full, which storageCollision() reports. docs/energy-journal.md has the figures.

import type { RingArea } from './flash-ring.ts';

export interface RawFlashPartition {
  addr: number;
  bytes: number;
  /** Set when the partition lies inside the Storage area that starts at this address. */
  storageAddr?: number;
}

/** Bytes of the partition the energy journal gets (4 pages on ESP32, 16 on Linux's 1 KB pages). */
export const JOURNAL_BYTES = 16384;
/** Bytes for small named records (the reading keys'); the outbox takes the rest of the partition. */
export const RECORDS_BYTES = 8192;

/** The first candidate inside one of Flash.getFree()'s areas; throws when there is none. */
export function choosePartition(
  candidates: RawFlashPartition[],
  free: { addr: number; length: number }[],
): RawFlashPartition {
  for (let c = 0; c < candidates.length; c++) {
    const p = candidates[c];
    for (let f = 0; f < free.length; f++) {
      if (p.addr >= free[f].addr && p.addr + p.bytes <= free[f].addr + free[f].length) return p;
    }
  }
  throw new Error(
    'no raw flash partition for the journal and outbox: the board definition offers ' +
      JSON.stringify(candidates) +
      ' but Flash.getFree() reports ' +
      JSON.stringify(free) +
      ' (rebuild the firmware for this board)',
  );
}

/** Splits the partition into the rings of the journal, the named records and the outbox, in that order. */
export function ringAreas(
  p: RawFlashPartition,
  pageBytes: number,
): { journal: RingArea; records: RingArea; outbox: RingArea } {
  const pages = Math.floor(p.bytes / pageBytes);
  const journalPages = Math.max(2, Math.floor(JOURNAL_BYTES / pageBytes));
  const recordPages = Math.max(2, Math.floor(RECORDS_BYTES / pageBytes));
  if (p.addr % pageBytes !== 0 || pages < journalPages + recordPages + 2) {
    throw new Error(
      'raw flash partition at ' +
        p.addr +
        ' (' +
        p.bytes +
        ' bytes) must be page-aligned and hold at least ' +
        (journalPages + recordPages + 2) +
        ' pages of ' +
        pageBytes,
    );
  }
  return {
    journal: { addr: p.addr, pageBytes: pageBytes, pages: journalPages },
    records: { addr: p.addr + journalPages * pageBytes, pageBytes: pageBytes, pages: recordPages },
    outbox: {
      addr: p.addr + (journalPages + recordPages) * pageBytes,
      pageBytes: pageBytes,
      pages: pages - journalPages - recordPages,
    },
  };
}

/**
 * For a partition inside the Storage area: what is wrong when Storage's files reach within a page
 * of it ('' when they do not). Storage would then write its files over the rings, or take a ring
 * page for a file header and judge itself corrupt at the next power-on.
 */
export function storageCollision(
  p: RawFlashPartition,
  stats: { totalBytes: number; freeBytes: number },
  pageBytes: number,
): string {
  if (p.storageAddr === undefined) return '';
  const storageEnd = p.storageAddr + stats.totalBytes - stats.freeBytes;
  // Espruino's file walk looks one page past the last file: that page must not be the partition's.
  if (storageEnd + pageBytes < p.addr) return '';
  return (
    'Storage files end at ' +
    storageEnd +
    ', within a page of the raw flash partition at ' +
    p.addr +
    ': Storage may overwrite the journal and outbox; erase unneeded Storage files (Storage.compact() then reclaims the space)'
  );
}
