import { PoolCascade } from './batch.js';
import { type ChunkSampler, checkK, chunkCount, type SampleResult, sameChunk } from './chunks.js';
import { SamplingError } from './errors.js';
import type { Rng } from './rng.js';
import { type ChunkPower, chunkPower } from './temperature.js';

/**
 * Model samples one step may draw before the fallback. At T = 1/2 Algorithm 1 needs
 * 2 / sum_x P(x)^2 draws on average, so this covers steps whose collision probability is above
 * about 1/1000; flatter steps are exactly those where sharpening matters least.
 */
export const DEFAULT_MAX_DRAWS = 4096;
/** Samples asked for per model call: one batched head call, not one call per sample. */
export const DEFAULT_DRAW_BATCH = 64;
// (the largest batch: batches start at one round of n samples and double up to it)

export interface ExactOptions {
  /** 0 <= T <= 1. */
  temperature: number;
  /** Draw budget per step; when spent without a result, the fallback decides. */
  maxDraws?: number;
  /** Samples per model call (and the pool size at T = 0). */
  drawBatch?: number;
}

/**
 * Algorithm 1 (exact likelihood-free temperature sampling): output distribution exactly
 * P(x)^(1/T) normalised, for any batch size, as long as the budget is not hit.
 *
 * With n = floor(1/T), a = 1/T - n:
 *  1. draw n samples; if not all equal, repeat 1; else x* = that sample;
 *  2. if a = 0 return x*; else for i = 1, 2, ...: draw x; if x = x* return x*; else draw
 *     u ~ U(0, 1) from the request's stream, and if u < a / i discard x* and go back to 1.
 * Step 2 accepts x* with probability P(x*)^a (a Bernoulli factory), so the total is P^(n + a).
 * Step 1 is literal: a round always consumes n samples even after a mismatch, so the draw
 * counts follow calm.md's formula exactly.
 *
 * Samples arrive in batches and are consumed one by one in arrival order; samples of a batch
 * left after the decision are discarded. Discarding cannot bias the result: the decision is a
 * stopping time on an i.i.d. sequence, so it never depends on the samples after it. They are
 * not kept for later because the next step has a new hidden state, hence a new distribution.
 *
 * Budget: when `maxDraws` samples were drawn without a decision (flat P, T near 1, or large n),
 * the step falls back to the batch cascade (PoolCascade, same T) over every sample drawn in this
 * step. That is Algorithm 2 with N = maxDraws, the best approximation the samples already paid
 * for allow; the result says `fallback: true`. At T = 0 there is no exact algorithm: the mode of
 * one batch of `drawBatch` samples, ties broken by the request's stream.
 */
export class ExactSampler implements ChunkSampler {
  readonly k: number;
  readonly divisible = false;
  readonly maxDraws: number;
  readonly drawBatch: number;
  private readonly power: ChunkPower;
  private readonly cascade = new PoolCascade();
  /** Every sample of the step, for the fallback; grows geometrically and is kept across steps. */
  private store: Int32Array;
  private drawn = 0;
  private finished = false;
  /** Step 2 (holding x*) rather than step 1. */
  private holding = false;
  /** Step 1: samples of the current round seen so far, its first sample, whether all matched it. */
  private roundLength = 0;
  private roundFirst = 0;
  private roundEqual = true;
  /** Step 2: pool index of x* and the iteration i. */
  private star = 0;
  private iteration = 1;
  /** feeds in this step (the batch size doubles with each) */
  private feeds = 0;

  constructor(k: number, options: ExactOptions) {
    checkK(k);
    this.k = k;
    this.power = chunkPower(options.temperature);
    this.maxDraws = options.maxDraws ?? DEFAULT_MAX_DRAWS;
    this.drawBatch = options.drawBatch ?? DEFAULT_DRAW_BATCH;
    for (const [name, value] of [['maxDraws', this.maxDraws], ['drawBatch', this.drawBatch]] as const) {
      if (!Number.isInteger(value) || value < 1) throw new SamplingError('invalid_argument', `${name} must be a positive integer, got ${value}`);
    }
    this.store = new Int32Array(Math.min(this.maxDraws, this.drawBatch) * k);
  }

  reset(): void {
    this.drawn = 0;
    this.finished = false;
    this.holding = false;
    this.roundLength = 0;
    this.roundEqual = true;
    this.iteration = 1;
    this.feeds = 0;
  }

  wanted(): number {
    if (this.finished) return 0;
    const left = this.maxDraws - this.drawn;
    if (this.power.alpha === Infinity) return Math.min(this.drawBatch, this.maxDraws) - this.drawn;
    // T = 1: the first sample is the answer; drawing a batch would waste all but one.
    if (this.power.alpha === 1) return 1;
    // Batches start at one round (n samples) and double up to drawBatch, so a step that decides
    // early costs a few samples, and one that needs thousands costs few model calls: at most
    // twice the samples it needed, plus one round.
    return Math.min(this.drawBatch, Math.max(1, this.power.n) * 2 ** this.feeds, left);
  }

  feed(chunks: Int32Array, rng: Rng): SampleResult | undefined {
    if (this.finished) throw new SamplingError('invalid_argument', 'this step already has its chunk: reset() before feeding the next step');
    const k = this.k;
    const first = this.drawn;
    this.feeds++;
    this.append(chunks);
    const store = this.store;
    const power = this.power;

    if (power.alpha === Infinity) {
      if (this.drawn < Math.min(this.drawBatch, this.maxDraws)) return undefined;
      return this.finish(this.cascade.pickWith(store.subarray(0, this.drawn * k), k, power, rng), false);
    }

    const n = power.n;
    const a = power.a;
    for (let p = first; p < this.drawn; p++) {
      if (!this.holding) {
        if (this.roundLength === 0) {
          this.roundFirst = p;
          this.roundEqual = true;
        } else if (this.roundEqual && !sameChunk(store, p, store, this.roundFirst, k)) {
          this.roundEqual = false;
        }
        if (++this.roundLength < n) continue;
        this.roundLength = 0;
        if (!this.roundEqual) continue;
        if (a === 0) return this.finish(this.roundFirst, false);
        this.star = this.roundFirst;
        this.holding = true;
        this.iteration = 1;
      } else if (sameChunk(store, p, store, this.star, k)) {
        return this.finish(this.star, false);
      } else if (rng.next() < a / this.iteration) {
        this.holding = false;
      } else {
        this.iteration++;
      }
    }
    if (this.drawn < this.maxDraws) return undefined;
    return this.finish(this.cascade.pickWith(store.subarray(0, this.drawn * k), k, power, rng), true);
  }

  private append(chunks: Int32Array): void {
    const k = this.k;
    const count = chunkCount(chunks, k);
    const need = (this.drawn + count) * k;
    if (need > this.store.length) {
      const grown = new Int32Array(Math.max(need, 2 * this.store.length));
      grown.set(this.store.subarray(0, this.drawn * k));
      this.store = grown;
    }
    this.store.set(chunks, this.drawn * k);
    this.drawn += count;
  }

  private finish(index: number, fallback: boolean): SampleResult {
    this.finished = true;
    const k = this.k;
    return { chunk: this.store.slice(index * k, index * k + k), draws: this.drawn, fallback };
  }
}
