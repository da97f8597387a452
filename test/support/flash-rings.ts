// Rings on an emulated raw flash partition, for tests of the modules that keep their records there
// (energy journal, named records, outbox): the emulator's NOR flash and Espruino Flash module model, the firmware's
// FlashRing, laid out as on the ESP32 meter (persist/partition.ts ringAreas).
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Flash } from '../../boards/emulator/flash.ts';
import { EspruinoFlashModule } from '../../boards/emulator/flash-module.ts';
import { FlashRing, type RingArea } from '../../firmware/src/persist/flash-ring.ts';
import { ringAreas } from '../../firmware/src/persist/partition.ts';

const ESP32_METER = loadBoardDefinition('esp32-meter');
/** The ESP32 meter's raw partition (the first "rawFlash" entry of its board definition) and flash page size. */
export const PARTITION = { addr: ESP32_METER.rawFlash[0].addr, bytes: ESP32_METER.rawFlash[0].bytes };
export const PAGE_BYTES = ESP32_METER.storage.pageBytes;

export interface EmulatedPartition {
  flash: Flash;
  module: EspruinoFlashModule;
  journalArea: RingArea;
  recordsArea: RingArea;
  outboxArea: RingArea;
  /** A new FlashRing over the journal's pages (as a boot would open it). */
  journalRing(): FlashRing;
  recordsRing(): FlashRing;
  outboxRing(): FlashRing;
}

/** The meter's raw partition on a fresh emulated flash (or the one given, e.g. after a power cut). */
export function emulatedPartition(flash?: Flash): EmulatedPartition {
  const f = flash ?? new Flash({ sizeBytes: PARTITION.bytes, pageBytes: PAGE_BYTES });
  const module = new EspruinoFlashModule(f, PARTITION.addr);
  const areas = ringAreas(PARTITION, PAGE_BYTES);
  return {
    flash: f,
    module,
    journalArea: areas.journal,
    recordsArea: areas.records,
    outboxArea: areas.outbox,
    journalRing: () => new FlashRing(module, areas.journal),
    recordsRing: () => new FlashRing(module, areas.records),
    outboxRing: () => new FlashRing(module, areas.outbox),
  };
}
