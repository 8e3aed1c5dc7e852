// Stand-in chunk sources with known discrete distributions, and the statistics the tests need.
import { Rng } from '../../../src/sampling/rng.js';
import type { SyncChunkSource } from '../../../src/sampling/chunks.js';

export const K = 4;

/**
 * Chunk j is [7, 7, 7, 100 + j]: every chunk shares its first K-1 ids, so a sampler that compared
 * anything less than all K ids would merge them and fail the distribution tests.
 */
export function chunkOf(j: number): number[] {
  return [7, 7, 7, 100 + j];
}

export function categoryOf(chunk: Int32Array, index = 0): number {
  return chunk[index * K + K - 1]! - 100;
}

/** i.i.d. chunks from `probs`, through a reused buffer as the real source does. */
export class DiscreteSource implements SyncChunkSource {
  readonly k = K;
  /** Total chunks handed out, to check the samplers' own draw accounting. */
  produced = 0;
  private readonly cdf: Float64Array;
  private buffer = new Int32Array(0);

  constructor(probs: readonly number[], private readonly rng: Rng) {
    this.cdf = new Float64Array(probs.length);
    let acc = 0;
    probs.forEach((p, i) => (this.cdf[i] = acc += p));
    this.cdf[probs.length - 1] = Infinity;
  }

  category(): number {
    const u = this.rng.next();
    let j = 0;
    while (u >= this.cdf[j]!) j++;
    return j;
  }

  draw(n: number): Int32Array {
    if (this.buffer.length < n * K) this.buffer = new Int32Array(n * K);
    for (let i = 0; i < n; i++) {
      const base = i * K;
      this.buffer[base] = 7;
      this.buffer[base + 1] = 7;
      this.buffer[base + 2] = 7;
      this.buffer[base + 3] = 100 + this.category();
    }
    this.produced += n;
    return this.buffer.subarray(0, n * K);
  }
}

/** A flat pool from category labels (letters or numbers). */
export function poolOf(categories: readonly number[]): Int32Array {
  return Int32Array.from(categories.flatMap(chunkOf));
}

export function normalise(weights: readonly number[]): number[] {
  const total = weights.reduce((s, w) => s + w, 0);
  return weights.map((w) => w / total);
}

/** P(x)^alpha normalised: the target of temperature 1/alpha. */
export function powerTarget(probs: readonly number[], alpha: number): number[] {
  return normalise(probs.map((p) => p ** alpha));
}

export function tv(p: readonly number[], q: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < Math.max(p.length, q.length); i++) s += Math.abs((p[i] ?? 0) - (q[i] ?? 0));
  return s / 2;
}

export function frequencies(counts: readonly number[] | Float64Array): number[] {
  return normalise(Array.from(counts));
}

/** Calm.md's expected draws of Algorithm 1: (n + [a>0] sum P^(alpha-1)) / sum P^alpha. */
export function expectedDraws(probs: readonly number[], alpha: number): number {
  const n = Math.floor(alpha);
  const a = alpha - n;
  const num = n + (a > 0 ? probs.reduce((s, p) => s + p ** (alpha - 1), 0) : 0);
  return num / probs.reduce((s, p) => s + p ** alpha, 0);
}
