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
  /** top_p only: the weights, and a sorted copy of them */
  private weights = new Float64Array(0);
  private sorted = new Float64Array(0);

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

  /**
   * The nucleus without sorting ids: a native sort of the weights finds the smallest weight the
   * nucleus needs (and how many tokens of exactly that weight, lowest ids first), then one pass
   * over the ids samples among the tokens kept. (Sorting 4,096 ids with a comparator cost 1.4 ms
   * a token, more than half an AR step.)
   */
  private nucleus(logits: Float32Array, max: number, inv: number, total: number, topP: number, rng: Rng): number {
    const vocab = logits.length;
    if (this.weights.length < vocab) {
      this.weights = new Float64Array(vocab);
      this.sorted = new Float64Array(vocab);
    }
    const w = this.weights.subarray(0, vocab);
    for (let i = 0; i < vocab; i++) w[i] = Math.exp((logits[i]! - max) * inv);
    const sorted = this.sorted.subarray(0, vocab);
    sorted.set(w);
    sorted.sort();
    // Walk down from the largest weight until the mass reaches top_p (the largest is always kept).
    const need = topP * total;
    let kept = 0;
    let j = vocab - 1;
    for (; j > 0; j--) {
      kept += sorted[j]!;
      if (kept >= need) break;
    }
    if (j === 0) kept += sorted[0]!;
    const threshold = sorted[j]!;
    let ties = 0; // tokens of exactly the threshold weight inside the nucleus
    for (let t = j; t < vocab && sorted[t] === threshold; t++) ties++;
    // One pass: keep every weight above the threshold, and the first `ties` ids at it.
    let mass = 0;
    let left = ties;
    for (let i = 0; i < vocab; i++) {
      const wi = w[i]!;
      if (wi > threshold || (wi === threshold && left-- > 0)) mass += wi;
      else w[i] = 0;
    }
    let u = rng.next() * mass;
    let last = -1;
    for (let i = 0; i < vocab; i++) {
      if (w[i] === 0) continue;
      last = i;
      u -= w[i]!;
      if (u < 0) return i;
    }
    return last;
  }
}
