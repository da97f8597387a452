// Energy registers. The S0 pulse count is the measurement; Wh are derived from it each time, so
// there is no float accumulation and no drift however many pulses pass.

/** Whole Wh held in `pulses`, rounded down (exact for impulse rates that divide 1000 evenly). */
export function pulsesToWh(pulses: number, impulsesPerKWh: number): number {
  return Math.floor((pulses * 1000) / impulsesPerKWh);
}

/** The fewest whole pulses that hold at least `wh` Wh (at least 1). */
export function pulsesForWh(wh: number, impulsesPerKWh: number): number {
  return Math.max(1, Math.ceil((wh * impulsesPerKWh) / 1000));
}

/**
 * Wh of an interval, as the difference of the derived totals at its end and its start. Summing
 * interval values therefore always gives the total register, even when a pulse is not a whole Wh.
 */
export function intervalWh(totalPulses: number, intervalPulses: number, impulsesPerKWh: number): number {
  return pulsesToWh(totalPulses, impulsesPerKWh) - pulsesToWh(totalPulses - intervalPulses, impulsesPerKWh);
}
