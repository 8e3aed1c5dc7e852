import { type ChunkSampler, checkK, checkTopP, chunkCount, type PoolConfidence, type SampleResult, sameChunk } from './chunks.js';
import { ChunkCounter } from './counter.js';
import { SamplingError } from './errors.js';
import { lgamma } from './lgamma.js';
import type { Rng } from './rng.js';
import { type ChunkPower, chunkPower } from './temperature.js';

/** The authors' default pool (N = 200 at T = 0.5). */
export const DEFAULT_POOL_SIZE = 200;

/** One distinct chunk of a pool with the probability the cascade gives it. */
export interface PoolCandidate {
  /** Pool index of the chunk's first occurrence. */
  readonly index: number;
  /** Occurrences in the pool (c_x). */
  readonly count: number;
  readonly probability: number;
}

/**
 * The batch approximation (Algorithm 2) applied to one given pool of N samples.
 *
 * Integer 1/T = n, as in the paper and the authors' code: for m = n, n-1, ..., 1, the candidates
 * are the chunks with count c >= m, weighted C(c, m); the first m with a candidate wins. C(c, m)
 * is the number of m-subsets of the pool that are all x, an unbiased estimate of C(N, m) P(x)^m.
 *
 * Non-integer 1/T = alpha = n + a, 0 < a < 1 (our extension; the paper defines none): the same
 * cascade with the generalised binomial C(c, m) = Gamma(c+1) / (Gamma(m+1) Gamma(c-m+1)) at
 * levels m = alpha, alpha - 1, ..., 1 + a, where level m admits c >= floor(m) (exactly where
 * that weight is positive). Why this one:
 *  - at integer alpha it is the authors' cascade, term for term;
 *  - it is continuous in T: as a -> 0 it tends to level n, as a -> 1 the weight of c = n tends
 *    to 0 and it tends to level n + 1 (or, when no chunk reaches n + 1, to the authors' fallback
 *    to level n), so nothing jumps between neighbouring temperatures;
 *  - it is consistent: C(c, m) ~ c^m / Gamma(m+1) and c_x / N -> P(x), so the output tends to
 *    P(x)^alpha normalised as N grows (the tests measure the distance at several N);
 *  - an unbiased estimator of P(x)^alpha does not exist for non-integer alpha from a fixed
 *    number of samples (only polynomials of degree <= N are estimable), and mixing the n and
 *    n + 1 cascades converges to a mixture of P^n and P^(n+1), not to P^alpha.
 * T = 0 (greedy) is the limit alpha -> infinity: the most frequent chunks, uniformly.
 *
 * Only the winning level's weights matter, and only relative to each other, so they are computed
 * as exp(log C - max log C): C(c, m) itself overflows doubles for c in the thousands.
 */
export class PoolCascade {
  private readonly counter = new ChunkCounter();
  private weights = new Float64Array(0);
  private counts = new Int32Array(0);

  /** Pool index of a chunk chosen by the cascade at `temperature` (0 <= T <= 1), within the pool's top_p nucleus. */
  pick(pool: Int32Array, k: number, temperature: number, rng: Rng, topP = 1): number {
    checkTopP(topP);
    return this.pickWith(pool, k, chunkPower(temperature), rng, topP);
  }

  /** `pick` with an already validated temperature and top_p (the samplers validate once per request). */
  pickWith(pool: Int32Array, k: number, power: ChunkPower, rng: Rng, topP = 1): number {
    const distinct = this.weigh(pool, k, power, topP);
    const weights = this.weights;
    let total = 0;
    for (let j = 0; j < distinct; j++) total += weights[j]!;
    const u = rng.next() * total;
    let acc = 0;
    let last = -1;
    for (let j = 0; j < distinct; j++) {
      const w = weights[j]!;
      if (w <= 0) continue;
      acc += w;
      last = j;
      if (u < acc) break;
    }
    // `last` is the chosen candidate, or the last one when rounding left u >= acc.
    return this.counter.representative(last);
  }

  /** The cascade's exact choice probabilities for one pool (allocates: for tests and analysis). */
  distribution(pool: Int32Array, k: number, temperature: number, topP = 1): PoolCandidate[] {
    checkTopP(topP);
    const distinct = this.weigh(pool, k, chunkPower(temperature), topP);
    let total = 0;
    for (let j = 0; j < distinct; j++) total += this.weights[j]!;
    const out: PoolCandidate[] = [];
    for (let j = 0; j < distinct; j++) {
      const w = this.weights[j]!;
      if (w > 0) out.push({ index: this.counter.representative(j), count: this.counter.countOf(j), probability: w / total });
    }
    return out;
  }

  /** How often the most frequent chunk of the last pool occurs. */
  maxCount = 0;

  /** What the last pool says of the chunk at pool index `index` (after a pick from it). */
  confidence(index: number, pool: Int32Array, k: number): PoolConfidence {
    const n = pool.length / k;
    let c = 0;
    for (let i = 0; i < n; i++) if (sameChunk(pool, i, pool, index, k)) c++;
    const frequency = c / n;
    return { frequency, stderr: Math.sqrt((frequency * (1 - frequency)) / n), pool: n };
  }

  /** Counts the pool and leaves the winning level's relative weights in `weights`. */
  private weigh(pool: Int32Array, k: number, power: ChunkPower, topP: number): number {
    const counter = this.counter;
    const distinct = counter.count(pool, k);
    this.maxCount = 0;
    for (let j = 0; j < distinct; j++) this.maxCount = Math.max(this.maxCount, counter.countOf(j));
    if (this.weights.length < distinct) {
      const size = Math.max(distinct, 2 * this.weights.length);
      this.weights = new Float64Array(size);
      this.counts = new Int32Array(size);
    }
    for (let j = 0; j < distinct; j++) this.counts[j] = counter.countOf(j);
    if (topP < 1) nucleus(this.counts, distinct, pool.length / k, topP);
    cascadeWeights(this.counts, distinct, power, this.weights);
    return distinct;
  }
}

/**
 * top_p on the pool's empirical distribution: keeps the most frequent distinct chunks (ties in
 * order of first occurrence) until their counts reach top_p of the pool, and zeroes the counts of
 * the rest, so that the cascade applies the temperature within the nucleus. What it approximates
 * and its bias at small N: docs/sampling.md, "top_p".
 */
export function nucleus(counts: Int32Array, size: number, n: number, topP: number): void {
  const order = Array.from({ length: size }, (_, j) => j).sort((a, b) => counts[b]! - counts[a]! || a - b);
  const need = topP * n;
  let kept = 0;
  let i = 0;
  // The most frequent chunk is always kept, so the nucleus is never empty.
  do kept += counts[order[i++]!]!;
  while (i < size && kept < need);
  for (; i < size; i++) counts[order[i]!] = 0;
}

/**
 * The cascade as a function of the counts alone (a pool's output distribution depends on nothing
 * else): fills out[j], j < size, with the relative weight of the chunk counted counts[j] times;
 * 0 outside the winning level, 1 for the largest.
 */
export function cascadeWeights(counts: ArrayLike<number>, size: number, power: ChunkPower, out: Float64Array): void {
  let maxCount = 0;
  for (let j = 0; j < size; j++) if (counts[j]! > maxCount) maxCount = counts[j]!;
  if (power.alpha === Infinity) {
    for (let j = 0; j < size; j++) out[j] = counts[j] === maxCount ? 1 : 0;
    return;
  }
  // The first level m = t + a that has a chunk of count >= t = floor(m).
  const t = Math.min(power.n, maxCount);
  const m = t + power.a;
  // Gamma(m + 1) is common to every candidate of the level: left out.
  let maxLog = -Infinity;
  for (let j = 0; j < size; j++) {
    const c = counts[j]!;
    const lw = c >= t && c > 0 ? lgamma(c + 1) - lgamma(c - m + 1) : -Infinity;
    out[j] = lw;
    if (lw > maxLog) maxLog = lw;
  }
  for (let j = 0; j < size; j++) out[j] = Math.exp(out[j]! - maxLog);
}

export interface BatchOptions {
  /** 0 <= T <= 1. */
  temperature: number;
  /** N, samples per step (default 200). T = 1 draws one, unless top_p or confidence needs the pool. */
  poolSize?: number;
  /** nucleus on the pool's empirical distribution, 0 < top_p <= 1 (default 1: off) */
  topP?: number;
  /** report the chosen chunk's pool frequency (SampleResult.confidence); at T = 1 this draws the pool */
  confidence?: boolean;
}

/** Algorithm 2 as a ChunkSampler: draw a pool of N, then run the cascade on it. */
export class BatchSampler implements ChunkSampler {
  readonly k: number;
  readonly divisible = true;
  readonly poolSize: number;
  private readonly power: ChunkPower;
  private readonly topP: number;
  private readonly withConfidence: boolean;
  private readonly cascade = new PoolCascade();
  /**
   * How many samples decide a step: N, or 1 at T = 1 where the cascade would pick a pool member
   * uniformly anyway (unless top_p cuts the pool, or the caller wants the pool's frequencies).
   */
  private readonly target: number;
  private pool: Int32Array;
  private drawn = 0;
  private finished = false;

  constructor(k: number, options: BatchOptions) {
    checkK(k);
    this.k = k;
    this.power = chunkPower(options.temperature);
    this.poolSize = options.poolSize ?? DEFAULT_POOL_SIZE;
    if (!Number.isInteger(this.poolSize) || this.poolSize < 1) {
      throw new SamplingError('invalid_argument', `poolSize must be a positive integer, got ${options.poolSize}`);
    }
    this.topP = options.topP ?? 1;
    checkTopP(this.topP);
    this.withConfidence = options.confidence ?? false;
    this.target = this.power.alpha === 1 && this.topP === 1 && !this.withConfidence ? 1 : this.poolSize;
    this.pool = new Int32Array(this.target * k);
  }

  reset(): void {
    this.drawn = 0;
    this.finished = false;
  }

  wanted(): number {
    return this.finished ? 0 : this.target - this.drawn;
  }

  feed(chunks: Int32Array, rng: Rng): SampleResult | undefined {
    if (this.finished) throw new SamplingError('invalid_argument', 'this step already has its chunk: reset() before feeding the next step');
    const k = this.k;
    const count = chunkCount(chunks, k);
    const need = (this.drawn + count) * k;
    if (need > this.pool.length) {
      const grown = new Int32Array(need);
      grown.set(this.pool.subarray(0, this.drawn * k));
      this.pool = grown;
    }
    this.pool.set(chunks, this.drawn * k);
    this.drawn += count;
    if (this.drawn < this.target) return undefined;
    // A source that returned more than asked for gave a larger pool; using it all is still Algorithm 2.
    const pool = this.pool.subarray(0, this.drawn * k);
    const index = this.cascade.pickWith(pool, k, this.power, rng, this.topP);
    this.finished = true;
    // No chunk of the pool occurs n = floor(1/T) times: the cascade could not sharpen to T and
    // fell to a lower level (at worst a plain sample from the pool), as the exact sampler does
    // when it runs out of draws.
    const fallback = this.power.alpha !== Infinity && this.cascade.maxCount < this.power.n;
    const confidence = this.withConfidence && this.drawn > 1 ? { confidence: this.cascade.confidence(index, pool, k) } : {};
    return { chunk: pool.slice(index * k, index * k + k), draws: this.drawn, fallback, ...confidence };
  }
}
