import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BatchSampler, PoolCascade, cascadeWeights } from '../../src/sampling/batch.js';
import { chunkKey } from '../../src/sampling/chunks.js';
import { sampleChunk } from './support/drive.js';
import { lgamma } from '../../src/sampling/lgamma.js';
import { Rng } from '../../src/sampling/rng.js';
import { chunkPower } from '../../src/sampling/temperature.js';
import { DiscreteSource, K, categoryOf, chunkOf, normalise, poolOf, powerTarget, tv } from './support/discrete.js';

const [A, B, C, D, E, F, G] = [0, 1, 2, 3, 4, 5, 6] as const;

/** The cascade's distribution over categories for one pool. */
function byCategory(pool: Int32Array, temperature: number): Map<number, number> {
  return new Map(new PoolCascade().distribution(pool, K, temperature).map((c) => [categoryOf(pool, c.index), c.probability]));
}

describe('batch cascade (Algorithm 2) on a given pool', () => {
  test("calm.md's worked example: T = 1/2, pool A,C,A,D,B,E,A,F,B,G gives A 3/4, B 1/4", () => {
    const pool = poolOf([A, C, A, D, B, E, A, F, B, G]);
    const dist = new PoolCascade().distribution(pool, K, 0.5);
    assert.deepEqual(dist.map((c) => [categoryOf(pool, c.index), c.count]), [[A, 3], [B, 2]]);
    assert.ok(Math.abs(dist[0]!.probability - 3 / 4) < 1e-12 && Math.abs(dist[1]!.probability - 1 / 4) < 1e-12, JSON.stringify(dist));
    // The weights themselves: C(3,2) = 3 against C(2,2) = 1.
    const w = new Float64Array(2);
    cascadeWeights([3, 2], 2, chunkPower(0.5), w);
    assert.ok(Math.abs(w[0]! / w[1]! - 3) < 1e-12);
    // And pick() follows the distribution.
    const cascade = new PoolCascade();
    const rng = new Rng(2024);
    let picksA = 0;
    for (let i = 0; i < 40_000; i++) if (categoryOf(pool, cascade.pick(pool, K, 0.5, rng)) === A) picksA++;
    assert.ok(Math.abs(picksA / 40_000 - 0.75) < 0.01, `P(A) sampled ${picksA / 40_000}`);
  });

  test('levels fall through: no chunk reaches n, so the next level decides', () => {
    // T = 1/3: nothing occurs 3 times; level 2 has A and B with C(2,2) = 1 each.
    assert.deepEqual(byCategory(poolOf([A, A, B, B, C]), 1 / 3), new Map([[A, 0.5], [B, 0.5]]));
    // All distinct: level 1, uniform.
    const spread = byCategory(poolOf([A, B, C, D]), 1 / 3);
    for (const p of spread.values()) assert.ok(Math.abs(p - 0.25) < 1e-12);
  });

  test('T = 1 is proportional to the counts (one uniform draw from the pool)', () => {
    const dist = byCategory(poolOf([A, A, A, B]), 1);
    assert.ok(Math.abs(dist.get(A)! - 0.75) < 1e-12 && Math.abs(dist.get(B)! - 0.25) < 1e-12);
  });

  test('T = 0 is the mode; a tie is broken by the request stream', () => {
    assert.deepEqual(byCategory(poolOf([A, B, B, C]), 0), new Map([[B, 1]]));
    const pool = poolOf([A, B, A, B, C]);
    const seen = new Map<number, number>();
    const cascade = new PoolCascade();
    for (let seed = 0; seed < 400; seed++) {
      const x = categoryOf(pool, cascade.pick(pool, K, 0, new Rng(seed)));
      seen.set(x, (seen.get(x) ?? 0) + 1);
    }
    assert.equal(seen.get(C), undefined);
    assert.ok(seen.get(A)! > 150 && seen.get(B)! > 150, `tie split ${[...seen]}`);
  });

  test('non-integer 1/T: generalised binomial weights (pool A x3, B x2 at T = 0.4 gives A 6/7)', () => {
    // C(3, 2.5) / C(2, 2.5) = [6 / Gamma(1.5)] / [2 / Gamma(0.5)] = 6.
    const dist = byCategory(poolOf([A, A, A, B, B, C]), 0.4);
    assert.ok(Math.abs(dist.get(A)! - 6 / 7) < 1e-12 && Math.abs(dist.get(B)! - 1 / 7) < 1e-12, JSON.stringify([...dist]));
  });

  test('non-integer 1/T is continuous with the integer cascades on either side', () => {
    const pools = [poolOf([A, A, A, B, B, C, D]), poolOf([A, A, B, B, C, D, E])];
    for (const pool of pools) {
      for (const [integerT, near] of [[1 / 2, 1 / 2.000001], [1 / 2, 1 / 1.999999], [1 / 3, 1 / 2.999999]] as const) {
        const exact = byCategory(pool, integerT);
        const close = byCategory(pool, near);
        for (const x of new Set([...exact.keys(), ...close.keys()])) {
          assert.ok(Math.abs((exact.get(x) ?? 0) - (close.get(x) ?? 0)) < 1e-4, `T ${near} vs ${integerT}, chunk ${x}`);
        }
      }
    }
  });

  test('the pool path agrees with the counts path on large random pools (ids up to 2^31 - 1)', () => {
    const rng = new Rng(77);
    const cascade = new PoolCascade();
    for (const temperature of [0.5, 0.4, 0.7]) {
      // 3000 chunks from 600 random chunk values: many ties, many distinct, ids across the full range.
      const values = Array.from({ length: 600 }, () => Array.from({ length: K }, () => rng.nextInt(2 ** 31)));
      const pool = Int32Array.from(Array.from({ length: 3000 }, () => values[rng.nextInt(600)]!).flat());
      const reference = new Map<string, number>();
      for (let i = 0; i < 3000; i++) reference.set(chunkKey(pool, i, K), (reference.get(chunkKey(pool, i, K)) ?? 0) + 1);
      const counts = [...reference.values()];
      const w = new Float64Array(counts.length);
      cascadeWeights(counts, counts.length, chunkPower(temperature), w);
      const expected = normalise(Array.from(w));
      const keys = [...reference.keys()];
      const got = new Map(cascade.distribution(pool, K, temperature).map((c) => [chunkKey(pool, c.index, K), c]));
      keys.forEach((key, j) => {
        const c = got.get(key);
        assert.ok(Math.abs((c?.probability ?? 0) - expected[j]!) < 1e-12, `chunk ${key}`);
        if (c) assert.equal(c.count, counts[j]);
      });
    }
  });
});

/**
 * Exact output distribution of the cascade over pools of N i.i.d. samples from a 3-outcome P:
 * every count vector, weighted by its multinomial probability (no Monte Carlo noise, so the
 * shrinking is a property of the method, not of a seed). Vectors with probability < 1e-18 are
 * skipped: their total is below 1e-12.
 */
function poolMarginal(probs: readonly [number, number, number], temperature: number, N: number): number[] {
  const power = chunkPower(temperature);
  const logFact = Float64Array.from({ length: N + 1 }, (_, c) => lgamma(c + 1));
  const logP = probs.map(Math.log);
  const out = [0, 0, 0];
  const counts = new Int32Array(3);
  const w = new Float64Array(3);
  for (let c0 = 0; c0 <= N; c0++) {
    for (let c1 = 0; c0 + c1 <= N; c1++) {
      const c2 = N - c0 - c1;
      const logPmf = logFact[N]! - logFact[c0]! - logFact[c1]! - logFact[c2]! + c0 * logP[0]! + c1 * logP[1]! + c2 * logP[2]!;
      if (logPmf < -41.4) continue;
      counts[0] = c0;
      counts[1] = c1;
      counts[2] = c2;
      cascadeWeights(counts, 3, power, w);
      const pmf = Math.exp(logPmf) / (w[0]! + w[1]! + w[2]!);
      for (let x = 0; x < 3; x++) out[x]! += pmf * w[x]!;
    }
  }
  return out;
}

describe('batch approximation converges to P^(1/T) as N grows', () => {
  const SIZES = [10, 50, 200, 1000];
  const distributions = [
    { name: 'peaked', probs: [0.6, 0.3, 0.1] as const },
    { name: 'flat', probs: [0.4, 0.35, 0.25] as const },
  ];
  for (const { name, probs } of distributions) {
    for (const temperature of [1 / 2, 1 / 3, 0.7, 0.4]) {
      const kind = Number.isInteger(1 / temperature) ? 'paper' : 'extension';
      test(`${name} P, T = ${temperature.toFixed(3)} (${kind})`, () => {
        const target = powerTarget(probs, 1 / temperature);
        const distances = SIZES.map((N) => tv(poolMarginal(probs, temperature, N), target));
        console.log(`  batch ${name} T=${temperature.toFixed(3)}: ${SIZES.map((N, i) => `N=${N} TV ${distances[i]!.toExponential(2)}`).join(', ')}`);
        for (let i = 1; i < SIZES.length; i++) assert.ok(distances[i]! < distances[i - 1]!, `TV not shrinking: ${distances}`);
        // Roughly 1/N: a fivefold N at least halves the distance, and N = 1000 is close.
        for (let i = 1; i < SIZES.length; i++) assert.ok(distances[i]! < distances[i - 1]! / 2, `TV shrinks too slowly: ${distances}`);
        assert.ok(distances[SIZES.length - 1]! < 0.005, `TV at N = 1000: ${distances[SIZES.length - 1]}`);
        if (kind === 'extension') {
          // The bound has teeth: dropping the fractional part (the cascade of floor(1/T)) fails it.
          const floorOnly = tv(poolMarginal(probs, 1 / Math.floor(1 / temperature), 1000), target);
          assert.ok(floorOnly > 0.02, `floor(1/T) cascade at N = 1000: TV ${floorOnly}`);
        }
      });
    }
  }
});

describe('BatchSampler (draw a pool, then the cascade)', () => {
  test('T = 1 draws one sample; otherwise N', () => {
    const rng = new Rng(1);
    const source = new DiscreteSource([0.5, 0.5], rng);
    assert.equal(sampleChunk(new BatchSampler(K, { temperature: 1, poolSize: 200 }), source, rng).draws, 1);
    assert.equal(sampleChunk(new BatchSampler(K, { temperature: 0.5, poolSize: 200 }), source, rng).draws, 200);
    assert.equal(sampleChunk(new BatchSampler(K, { temperature: 0.4 }), source, rng).draws, 200, 'default N = 200');
  });

  test('draws can arrive in several feeds; the result is a chunk of the pool', () => {
    const sampler = new BatchSampler(K, { temperature: 0.5, poolSize: 5 });
    const rng = new Rng(9);
    sampler.reset();
    assert.equal(sampler.wanted(), 5);
    assert.equal(sampler.feed(poolOf([A, B]), rng), undefined);
    assert.equal(sampler.wanted(), 3);
    const result = sampler.feed(poolOf([B, C, D]), rng);
    assert.deepEqual(Array.from(result!.chunk), chunkOf(B));
    assert.equal(result!.draws, 5);
    assert.equal(result!.fallback, false, 'B occurs twice: level 2 = 1/T is reached');
  });

  test('a pool without a chunk repeated floor(1/T) times says it fell back', () => {
    const rng = new Rng(3);
    const fed = (temperature: number, pool: number[][]) => {
      const sampler = new BatchSampler(K, { temperature, poolSize: pool.length });
      sampler.reset();
      return sampler.feed(poolOf(pool), rng)!;
    };
    assert.equal(fed(0.5, [A, B, C, D]).fallback, true, 'no repeat at T = 1/2');
    assert.equal(fed(0.5, [A, B, A, D]).fallback, false);
    assert.equal(fed(1 / 3, [A, B, A, D]).fallback, true, 'a pair is not enough at T = 1/3');
    assert.equal(fed(0, [A, B, C, D]).fallback, false, 'greedy has no level to reach');
  });

  test('the same seed gives the same choices; another seed differs', () => {
    const choices = (seed: number) => {
      const rng = new Rng(seed);
      const source = new DiscreteSource([0.3, 0.25, 0.25, 0.2], rng);
      const sampler = new BatchSampler(K, { temperature: 0.7, poolSize: 20 });
      return Array.from({ length: 300 }, () => categoryOf(sampleChunk(sampler, source, rng).chunk));
    };
    assert.deepEqual(choices(5), choices(5));
    assert.notDeepEqual(choices(5), choices(6));
  });
});
