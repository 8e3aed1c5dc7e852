import { SamplingError } from './errors.js';

/**
 * A chunk temperature split the way Algorithm 1 needs it: target P(x)^alpha with alpha = 1/T,
 * n = floor(alpha) whole "all n draws equal" rounds and a fractional part a for the Bernoulli factory.
 */
export interface ChunkPower {
  readonly temperature: number;
  /** 1/T; Infinity at T = 0 (greedy). */
  readonly alpha: number;
  /** floor(alpha); Infinity at T = 0. */
  readonly n: number;
  /** alpha - n, in [0, 1); 0 at T = 0. */
  readonly a: number;
}

/**
 * 1/T computed in floating point is rarely an exact integer for temperatures the user means as 1/n
 * (T = 0.2 gives 5 exactly, but other reciprocals can land a few ulps off). Without snapping, the
 * fractional part a would be ~1e-16 and both samplers would take their fractional path for no
 * reason: the exact sampler would run a Bernoulli factory that almost never rejects, the batch
 * cascade would switch to Gamma-function weights. A relative 1e-9 is far below any temperature a
 * person types and far above rounding error.
 */
const SNAP = 1e-9;

function describe(temperature: number): string {
  return Number.isNaN(temperature) ? 'NaN' : String(temperature);
}

/** Rejects what no likelihood-free sampler can serve; see docs/sampling.md. */
export function chunkPower(temperature: number): ChunkPower {
  if (typeof temperature !== 'number' || !Number.isFinite(temperature)) {
    throw new SamplingError('invalid_temperature', `temperature must be a finite number, got ${describe(temperature)}`, 'temperature');
  }
  if (temperature < 0) {
    throw new SamplingError('invalid_temperature', `temperature must be >= 0, got ${temperature}`, 'temperature');
  }
  if (temperature > 1) {
    throw new SamplingError(
      'temperature_above_one',
      `temperature ${temperature} is above 1: a CALM model gives samples but no likelihoods, so it can only ` +
        'sharpen its distribution (P^(1/T) with T <= 1, by rejection on repeated samples); flattening it ' +
        '(T > 1) would need P(x) itself. Use a temperature in [0, 1].',
      'temperature',
    );
  }
  // Infinity for 0 (and -0, which must not become -Infinity) and for subnormal T: all mean greedy.
  const alpha = temperature === 0 ? Infinity : 1 / temperature;
  if (alpha === Infinity) return { temperature, alpha, n: Infinity, a: 0 };
  const nearest = Math.round(alpha);
  const snapped = Math.abs(alpha - nearest) <= SNAP * alpha ? nearest : alpha;
  const n = Math.floor(snapped);
  return { temperature, alpha: snapped, n, a: snapped - n };
}

/**
 * Token-level temperature (the AR baseline has logits, so T > 1 is fine there). The upper bound
 * is not ours to set: the server validates the API range.
 */
export function checkTokenTemperature(temperature: number): void {
  if (typeof temperature !== 'number' || !Number.isFinite(temperature)) {
    throw new SamplingError('invalid_temperature', `temperature must be a finite number, got ${describe(temperature)}`, 'temperature');
  }
  if (temperature < 0) {
    throw new SamplingError('invalid_temperature', `temperature must be >= 0, got ${temperature}`, 'temperature');
  }
}
