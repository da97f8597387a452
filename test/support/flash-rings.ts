// Rings on an emulated raw flash partition, for tests of the modules that keep their records there
// (energy journal, named records, outbox): the emulator's NOR flash and Espruino Flash module model, the firmware's
// FlashRing, laid out as on the ESP32 meter (persist/partition.ts ringAreas).
import { Flash } from '../../boards/emulator/flash.ts';
import { EspruinoFlashModule } from '../../boards/emulator/flash-module.ts';
import { FlashRing, type RingArea } from '../../firmware/src/persist/flash-ring.ts';
import { ringAreas } from '../../firmware/src/persist/partition.ts';

/** The ESP32 meter's raw partition: 0x310000, 64 KB (boards/esp32-meter.json). */
export const PARTITION = { addr: 0x310000, bytes: 0x10000 };
export const PAGE_BYTES = 4096;

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
