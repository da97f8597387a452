// The meter's forecast of its surplus (positive) or deficit (negative) in a coming market interval, from
// its own readings: what it exported minus what it imported, per second, in recent intervals and at the
// same time of day on earlier days. Pure logic over numbers; no I/O. docs/trading.md explains the choice.
//
//   rate(reading)  = (exportWh - importWh) / seconds                       Wh per second, signed
//   recent         <- recent + (rate - recent) / 2                         the last intervals, newest weighing most
//   profile[hour]  <- profile[hour] + (rate - profile[hour]) / min(n, 4)   per UTC hour of day (n: readings seen there)
//   forecast(start, seconds): the hour of the interval's middle; with m = min(n[hour], 3) earlier readings there,
//     rate = (m * profile[hour] + recent) / (m + 1)   (only recent when the hour has none yet)
//     Wh   = rate * seconds * percent / 100 + biasWh, rounded toward zero
//
// A day's hours are UTC hours: the profile only needs them to repeat every 24 h, which holds wherever the
// meter is. Readings of a partial interval (first after boot, power lost) say too little and are skipped.
// The state is 24 hourly rates in a Float32Array and their counts in a Uint8Array: a few JsVars, kept in RAM
// only (after a reboot the forecast starts again, and until its first reading it says 0: no trade).

/** How strongly the forecast leans on what the time of day did before, and how fast a profile hour follows. */
const PROFILE_WEIGHT_MAX = 3;
const PROFILE_STEP_MAX = 4;
const HOURS = 24;
const ROUNDING = 0.001;

export interface ForecastOptions {
  /** Share of the forecast to trade, percent (100: all of it; below 100: cautious, an unmet trade costs). */
  percent: number;
  /** Added to every forecast, Wh per interval: positive leans to selling, negative to buying. */
  biasWh: number;
}

/** A reading's flags that make its interval unfit for forecasting (protocol/reading.ts FLAG_POWER_LOSS | FLAG_PARTIAL). */
const UNFIT_FLAGS = 1 | 2;

function hourOf(seconds: number): number {
  const inDay = seconds % 86400;
  return Math.floor((inDay < 0 ? inDay + 86400 : inDay) / 3600);
}

export class Forecast {
  private declare readonly options: ForecastOptions;
  private declare readonly profile: Float32Array;
  private declare readonly counts: Uint8Array;
  private declare recent: number;
  private declare observed: number;
  /** Start of the newest interval observed: a reading seen twice (a retry) counts once. */
  private declare lastStart: number;

  constructor(options: ForecastOptions) {
    this.options = options;
    this.profile = new Float32Array(HOURS);
    this.counts = new Uint8Array(HOURS);
    this.recent = 0;
    this.observed = 0;
    this.lastStart = -1;
  }

  /** Readings taken into account so far. */
  samples(): number {
    return this.observed;
  }

  /**
   * One closed interval of `seconds` starting at Unix time `startSeconds`, with its energy in and out.
   * Intervals at or before the newest one seen, and those with `flags` saying partial or power lost, are skipped.
   */
  observe(startSeconds: number, seconds: number, importWh: number, exportWh: number, flags: number): void {
    if (!(seconds > 0) || startSeconds <= this.lastStart) return;
    this.lastStart = startSeconds;
    if (flags & UNFIT_FLAGS) return;
    const rate = (exportWh - importWh) / seconds;
    this.recent = this.observed === 0 ? rate : this.recent + (rate - this.recent) / 2;
    this.observed++;
    const hour = hourOf(startSeconds + seconds / 2);
    const n = this.counts[hour];
    this.profile[hour] =
      n === 0 ? rate : this.profile[hour] + (rate - this.profile[hour]) / Math.min(n + 1, PROFILE_STEP_MAX);
    if (n < 255) this.counts[hour] = n + 1;
  }

  /** Forecast surplus (positive) or deficit (negative) in Wh for `seconds` from `startSeconds`, bias applied. */
  surplusWh(startSeconds: number, seconds: number): number {
    if (this.observed === 0) return 0;
    const hour = hourOf(startSeconds + seconds / 2);
    const m = Math.min(this.counts[hour], PROFILE_WEIGHT_MAX);
    const rate = (m * this.profile[hour] + this.recent) / (m + 1);
    const wh = (rate * seconds * this.options.percent) / 100 + this.options.biasWh;
    // Rounded toward zero, past float noise (rates are float32: a rate times its seconds may land just short of a whole Wh).
    return wh < 0 ? 0 - Math.floor(ROUNDING - wh) : Math.floor(wh + ROUNDING);
  }
}
