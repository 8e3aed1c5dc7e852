import { SamplingError } from './errors.js';
import type { Rng } from './rng.js';

/**
 * A chunk is one whole model sample: K token ids. Pools of chunks travel flat, chunk i at
 * [i*K, (i+1)*K), so a batched model call's output is a pool without copying.
 */

/** Where samples come from: the real one is a batched head + decoder call for one hidden state. */
export interface ChunkSource {
  /** Tokens per chunk (K). */
  readonly k: number;
  /**
   * `n` fresh samples, independent of each other and of every earlier call, from one fixed
   * distribution (one decode step). Flat, n*K ids. It may return more than n chunks (a model
   * call of a fixed batch shape); samplers count and use everything returned. The array may be
   * a view of a buffer the source reuses: samplers copy what they keep before drawing again.
   */
  draw(n: number): Int32Array | Promise<Int32Array>;
}

export interface SyncChunkSource extends ChunkSource {
  draw(n: number): Int32Array;
}

export interface SampleResult {
  /** The chosen chunk, K ids (a copy the caller owns). */
  readonly chunk: Int32Array;
  /** Model samples drawn for this step, the cost the engine reports in its metrics. */
  readonly draws: number;
  /**
   * True when the sampler could not apply its temperature: the exact sampler ran out of its
   * draw budget and used its fallback, or no chunk of the batch pool occurred floor(1/T) times.
   */
  readonly fallback: boolean;
  /** The batch sampler's estimate of the chosen chunk's probability, where it drew a pool (see PoolConfidence). */
  readonly confidence?: PoolConfidence;
}

/**
 * What a pool of N model samples says of the chunk chosen from it: its frequency c / N, an
 * unbiased estimate of its probability under the model at T = 1, and that estimate's standard
 * error sqrt(f (1 - f) / N) (binomial; 0 when every sample or none was the chunk, where the
 * estimate is still uncertain by about 1 / N).
 */
export interface PoolConfidence {
  readonly frequency: number;
  readonly stderr: number;
  readonly pool: number;
}

/** Nucleus mass: 0 < top_p <= 1 (1: off). */
export function checkTopP(topP: number): void {
  if (!(topP > 0 && topP <= 1)) throw new SamplingError('invalid_argument', `top_p must be in (0, 1], got ${topP}`);
}

/**
 * One decode step's sampling as a state machine, so that an engine can gather the `wanted()`
 * draws of many sequences into one model call, and tests can drive it from a stand-in.
 * Protocol: reset(); then while no result: draw wanted() samples, feed them.
 */
export interface ChunkSampler {
  readonly k: number;
  /**
   * Whether `wanted()` samples may arrive over several feeds (and several engine steps) without
   * changing the result: true when every sample drawn is used whatever the order of feeds (the
   * batch pool); false when the sampler may decide mid-batch and discard the rest, so that the
   * random stream it consumes depends on the batch sizes (the exact sampler).
   */
  readonly divisible: boolean;
  /** Forget the previous step; the next feed starts a new one. */
  reset(): void;
  /** How many samples to draw next; 0 once a result was returned. */
  wanted(): number;
  /** Consumes samples in order; returns the result once the step is decided. */
  feed(chunks: Int32Array, rng: Rng): SampleResult | undefined;
}

export function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new SamplingError('invalid_argument', `chunk length K must be a positive integer, got ${k}`);
}

/** Number of chunks in a flat pool; rejects a ragged or empty one. */
export function chunkCount(pool: Int32Array, k: number): number {
  if (pool.length === 0 || pool.length % k !== 0) {
    throw new SamplingError('invalid_argument', `a chunk pool must hold a positive multiple of K = ${k} ids, got ${pool.length}`);
  }
  return pool.length / k;
}

/** Whether chunk i of `a` and chunk j of `b` have the same K ids. */
export function sameChunk(a: Int32Array, i: number, b: Int32Array, j: number, k: number): boolean {
  const ai = i * k;
  const bj = j * k;
  for (let t = 0; t < k; t++) if (a[ai + t] !== b[bj + t]) return false;
  return true;
}

/**
 * An exact string key for chunk i (for Maps outside the hot path: tests, metrics, debugging).
 * No number can be exact: K = 4 ids of 17+ bits each need more than a double's 53 bits.
 */
export function chunkKey(pool: Int32Array, i: number, k: number): string {
  return pool.subarray(i * k, i * k + k).join(',');
}
