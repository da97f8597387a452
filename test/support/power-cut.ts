// Power cuts inside one operation on the emulated flash (boards/emulator/flash.ts).
import { type Flash, PowerLoss } from '../../boards/emulator/flash.ts';

/** Runs op with the power cut after n flash bytes; true if the cut happened (PowerLoss thrown). Power is back after. */
export function cutDuring(flash: Flash, n: number, op: () => void): boolean {
  flash.cutPowerAfterBytes(n);
  try {
    op();
  } catch (e) {
    if (!(e instanceof PowerLoss)) throw e;
    flash.restorePower();
    return true;
  }
  flash.restorePower();
  return false;
}
