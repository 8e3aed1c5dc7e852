import { SamplingError } from './errors.js';
import type { Rng } from './rng.js';
import { checkTokenTemperature } from './temperature.js';

/**
 * Lowest id among the largest logits. Lowest rather than random so greedy decoding of the token
 * baseline is reproducible without a seed, as torch.argmax and the reference servers do.
 */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  let seen = false;
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (v > bestValue || (!seen && v === bestValue)) {
      best = i;
      bestValue = v;
      seen = true;
    }
  }
  if (!seen) throw new SamplingError('invalid_argument', 'logits are empty or all NaN');
  return best;
}

/**
 * Token-level sampling for the AR baseline: softmax(logits / T) with the request's stream, or
 * argmax at T = 0. Unlike the chunk samplers, T > 1 is allowed: the logits are the likelihoods.
 * One scratch buffer per sampler (one per worker) keeps the per-token path allocation-free.
 */
export class SoftmaxSampler {
  private scratch = new Float64Array(0);

  /** `topP` < 1: nucleus sampling, from the most probable tokens (ties by lower id) whose mass reaches top_p. */
  sample(logits: Float32Array, temperature: number, rng: Rng, topP = 1): number {
    checkTokenTemperature(temperature);
    // 1/T overflows for T = 0 and subnormal T: both mean greedy.
    const inv = 1 / temperature;
    if (inv === Infinity || inv === -Infinity) return argmax(logits);
    const vocab = logits.length;
    if (this.scratch.length < vocab) this.scratch = new Float64Array(vocab);
    const cumulative = this.scratch;
    let max = -Infinity;
    for (let i = 0; i < vocab; i++) {
      const v = logits[i]!;
      if (v > max) max = v;
    }
    // Subtracting the max keeps every exponent <= 0: no overflow, and the largest term is 1.
    let total = 0;
    for (let i = 0; i < vocab; i++) {
      total += Math.exp((logits[i]! - max) * inv);
      cumulative[i] = total;
    }
    if (!(total > 0 && Number.isFinite(total))) {
      throw new SamplingError('invalid_argument', 'logits must contain a finite maximum and no NaN');
    }
    if (topP < 1) return this.nucleus(logits, max, inv, total, topP, rng);
    const u = rng.next() * total;
    // First index whose running total exceeds u: zero-probability ids (logit -Infinity) never win.
    let lo = 0;
    let hi = vocab - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private nucleus(logits: Float32Array, max: number, inv: number, total: number, topP: number, rng: Rng): number {
    const vocab = logits.length;
    const weight = (i: number) => Math.exp((logits[i]! - max) * inv);
    const order = Array.from({ length: vocab }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
    let kept = 0;
    let n = 0;
    do kept += weight(order[n++]!);
    while (n < vocab && kept < topP * total);
    let u = rng.next() * kept;
    for (let j = 0; j < n; j++) {
      u -= weight(order[j]!);
      if (u < 0) return order[j]!;
    }
    return order[n - 1]!;
  }
}
