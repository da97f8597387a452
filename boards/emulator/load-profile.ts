// Electrical load over virtual time, in watts, for the S0 pulse sources.
// A profile is a pure function of time (same time, same power), so integrating it is reproducible
// whatever the step, the speed, or the order in which boards are created.

export interface LoadProfile {
  readonly name: string;
  /** Power in watts (>= 0) at `epochSeconds` (SimClock time). */
  powerW(epochSeconds: number): number;
}

const DAY = 86400;

/** Hour of the day (0..24, fractional) at the given time, UTC shifted by `utcOffsetHours`. */
function hourOfDay(epochSeconds: number, utcOffsetHours: number): number {
  const s = (((epochSeconds + utcOffsetHours * 3600) % DAY) + DAY) % DAY;
  return s / 3600;
}

/** A Gaussian bump centred at `centreHour` (wrapping at midnight). */
function bump(hour: number, centreHour: number, widthHours: number): number {
  let d = Math.abs(hour - centreHour);
  if (d > 12) d = 24 - d;
  return Math.exp(-(d * d) / (2 * widthHours * widthHours));
}

export function constant(watts: number): LoadProfile {
  if (!(watts >= 0)) throw new Error(`constant profile needs watts >= 0, got ${watts}`);
  return { name: `constant ${watts} W`, powerW: () => watts };
}

export interface ShapeOptions {
  /** Seed of the jitter (each meter gets its own); 0 = no jitter. */
  seed?: number;
  /** Local time = UTC + this many hours (default 1, Central European winter time). */
  utcOffsetHours?: number;
}

/** A household drawing from the grid: base load, a morning and a larger evening peak (about 9 kWh/day). */
export function householdImport(
  opts: ShapeOptions & { baseW?: number; morningPeakW?: number; eveningPeakW?: number } = {},
): LoadProfile {
  const base = opts.baseW ?? 200;
  const morning = opts.morningPeakW ?? 700;
  const evening = opts.eveningPeakW ?? 1300;
  const offset = opts.utcOffsetHours ?? 1;
  const shape: LoadProfile = {
    name: 'household import',
    powerW: (t) => {
      const h = hourOfDay(t, offset);
      return base + morning * bump(h, 7.5, 1.2) + evening * bump(h, 19, 2);
    },
  };
  return opts.seed ? withJitter(shape, { seed: opts.seed, fraction: 0.25 }) : shape;
}

/** Rooftop PV feeding the grid: a bell between sunrise and sunset peaking at noon (about 20 kWh/day at 3 kW peak). */
export function pvExport(
  opts: ShapeOptions & { peakW?: number; sunriseHour?: number; sunsetHour?: number } = {},
): LoadProfile {
  const peak = opts.peakW ?? 3000;
  const rise = opts.sunriseHour ?? 6;
  const set = opts.sunsetHour ?? 20;
  const offset = opts.utcOffsetHours ?? 1;
  const shape: LoadProfile = {
    name: 'PV export',
    powerW: (t) => {
      const h = hourOfDay(t, offset);
      if (h <= rise || h >= set) return 0;
      const x = Math.sin((Math.PI * (h - rise)) / (set - rise));
      return peak * x * x;
    },
  };
  return opts.seed ? withJitter(shape, { seed: opts.seed, fraction: 0.3, floorAtZero: true }) : shape;
}

/**
 * Multiplies a profile by a seeded random factor in [1 − fraction, 1 + fraction], constant over
 * each `periodSeconds` slot (default one minute) — appliances switching, clouds passing.
 */
export function withJitter(
  profile: LoadProfile,
  opts: { seed: number; fraction: number; periodSeconds?: number; floorAtZero?: boolean },
): LoadProfile {
  const period = opts.periodSeconds ?? 60;
  return {
    name: `${profile.name} (jitter ±${Math.round(opts.fraction * 100)}%, seed ${opts.seed})`,
    powerW: (t) => {
      const slot = Math.floor(t / period);
      const u = hashToUnit(opts.seed, slot);
      const p = profile.powerW(t) * (1 + opts.fraction * (2 * u - 1));
      return p > 0 ? p : 0;
    },
  };
}

/** A deterministic value in [0, 1) for (seed, slot): a 32-bit integer hash (murmur3 finaliser). */
function hashToUnit(seed: number, slot: number): number {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(slot | 0, 0x85ebca6b) ^ Math.floor(slot / 0x100000000)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 0x100000000;
}

/** Profiles selectable by name on the command line (`veilgrid emulate --profile …`). */
export const NAMED_PROFILES: Record<string, (seed: number) => LoadProfile> = {
  household: (seed) => householdImport({ seed }),
  pv: (seed) => pvExport({ seed }),
  'constant-1kw': () => constant(1000),
};

export function profileByName(name: string, seed = 1): LoadProfile {
  const make = NAMED_PROFILES[name];
  if (!make) throw new Error(`unknown load profile "${name}": choose one of ${Object.keys(NAMED_PROFILES).join(', ')}`);
  return make(seed);
}
