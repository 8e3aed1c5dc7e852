import { getRandomValues } from 'node:crypto';

/**
 * Seeded random streams: xoshiro128** (Blackman and Vigna, 2018) seeded through splitmix64.
 *
 * Why this generator: 128 bits of state in four int32 fields, so a draw is a handful of 32-bit
 * integer operations with no BigInt and no allocation; period 2^128 - 1; passes BigCrush. It is
 * not cryptographic, which sampling does not need. splitmix64 spreads any 64-bit seed (including
 * 0 and small neighbouring integers) over the whole state, as the xoshiro authors recommend.
 *
 * Why one object per request (never Math.random or a process-wide stream): the tokens a request
 * gets must depend only on its own seed, not on which other requests share its batch or in which
 * order the scheduler visits them.
 */

const MASK64 = (1n << 64n) - 1n;
const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;
const TWO_POW_M53 = 2 ** -53;
const TWO_POW_M24 = 2 ** -24;
const TWO_POW_32 = 2 ** 32;
const MIN_SEED = -(1n << 63n);

/** splitmix64's output function, a bijection on 64-bit integers that maps 0 to 0. */
function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

function seedBits(seed: number | bigint): bigint {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    seed = BigInt(seed);
  }
  // Accepting int64 and uint64 alike, but nothing wider: truncating wider values would silently
  // give two different seeds the same stream.
  if (seed < MIN_SEED || seed > MASK64) throw new RangeError(`seed must fit in 64 bits, got ${seed}`);
  return BigInt.asUintN(64, seed);
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export type RngState = readonly [number, number, number, number];

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /**
   * `stream` gives independent streams under one seed (e.g. one per choice when a request asks
   * for n > 1 completions); stream 0 is the seed's own stream.
   */
  constructor(seed: number | bigint, stream = 0) {
    if (!Number.isSafeInteger(stream) || stream < 0) throw new RangeError(`stream must be a non-negative safe integer, got ${stream}`);
    // mix64 is a bijection with mix64(0) = 0, so distinct streams of one seed never share a state.
    let x = seedBits(seed) ^ mix64(BigInt(stream));
    x = (x + GOLDEN_GAMMA) & MASK64;
    const lo = mix64(x);
    x = (x + GOLDEN_GAMMA) & MASK64;
    const hi = mix64(x);
    // lo and hi come from two different inputs of a bijection, so they are never both zero and the
    // state is never the all-zero fixed point.
    this.s0 = Number(lo & 0xffffffffn) | 0;
    this.s1 = Number(lo >> 32n) | 0;
    this.s2 = Number(hi & 0xffffffffn) | 0;
    this.s3 = Number(hi >> 32n) | 0;
  }

  /** A stream positioned exactly where `getState()` left another one (preemption, replay). */
  static fromState(state: RngState): Rng {
    if (state.every((w) => (w | 0) === 0)) throw new RangeError('xoshiro128** state must not be all zero');
    const rng = new Rng(0);
    [rng.s0, rng.s1, rng.s2, rng.s3] = state.map((w) => w | 0) as [number, number, number, number];
    return rng;
  }

  getState(): RngState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** Uniform integer in [0, 2^32). */
  nextUint32(): number {
    const s0 = this.s0;
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    const s2 = this.s2 ^ s0;
    const s3 = this.s3 ^ s1;
    this.s1 = s1 ^ s2;
    this.s0 = s0 ^ s3;
    this.s2 = s2 ^ t;
    this.s3 = rotl(s3, 11);
    return result;
  }

  /**
   * Uniform in [0, 1) with 53 random bits. Two words rather than one because Algorithm 1 compares
   * u with a / i, which gets small: 32 bits would round u to a 2^-32 grid.
   */
  next(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) * TWO_POW_M53;
  }

  /** Uniform integer in [0, n), exactly (rejection removes the modulo bias). */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) throw new RangeError(`nextInt needs an integer in [1, 2^32], got ${n}`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /**
   * Fills `out` with uniform values in [lo, hi), 24 random bits each (a float32's precision), e.g.
   * the energy head's noise in [-0.5, 0.5). A value that float32 rounding pushes up to `hi` is
   * drawn again rather than clamped, so the interval stays half-open without bias; for
   * [-0.5, 0.5) every value is exact and that never happens.
   */
  fillUniform(out: Float32Array, lo: number, hi: number): void {
    if (!(Number.isFinite(lo) && Number.isFinite(hi) && lo < hi)) throw new RangeError(`fillUniform needs finite lo < hi, got [${lo}, ${hi})`);
    const scale = hi - lo;
    for (let i = 0; i < out.length; i++) {
      let v: number;
      do v = Math.fround(lo + scale * ((this.nextUint32() >>> 8) * TWO_POW_M24));
      while (v >= hi);
      out[i] = v;
    }
  }
}

/**
 * A seed for a request that gave none, from the OS's CSPRNG. A safe integer (53 bits) rather than
 * 64 so it survives JSON unchanged when the server reports it back for reproduction.
 */
export function randomSeed(): number {
  const words = getRandomValues(new Uint32Array(2));
  return (words[0]! & 0x1fffff) * TWO_POW_32 + words[1]!;
}
