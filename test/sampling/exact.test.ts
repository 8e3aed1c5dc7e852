import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sampleChunk } from './support/drive.js';
import { ExactSampler } from '../../src/sampling/exact.js';
import { Rng } from '../../src/sampling/rng.js';
import { DiscreteSource, K, categoryOf, expectedDraws, frequencies, powerTarget, tv } from './support/discrete.js';

const PEAKED = [0.5, 0.25, 0.15, 0.1];
const FLAT = [0.3, 0.25, 0.25, 0.2];
const SAMPLES = 100_000;

interface Run {
  freq: number[];
  meanDraws: number;
  totalDraws: number;
  fallbacks: number;
  produced: number;
}

function run(probs: readonly number[], temperature: number, seed: number, drawBatch: number, samples = SAMPLES): Run {
  const rng = new Rng(seed);
  const source = new DiscreteSource(probs, rng);
  const sampler = new ExactSampler(K, { temperature, drawBatch, maxDraws: 1_000_000 });
  const counts = new Array<number>(probs.length).fill(0);
  let draws = 0;
  let fallbacks = 0;
  for (let s = 0; s < samples; s++) {
    const result = sampleChunk(sampler, source, rng);
    counts[categoryOf(result.chunk)]!++;
    draws += result.draws;
    if (result.fallback) fallbacks++;
  }
  return { freq: frequencies(counts), meanDraws: draws / samples, totalDraws: draws, fallbacks, produced: source.produced };
}

/** What a wrong algorithm would produce: plain P, and P^n (the fractional part ignored). */
function wrongTargets(probs: readonly number[], alpha: number): number[][] {
  const wrong = [probs.slice()];
  if (!Number.isInteger(alpha)) wrong.push(powerTarget(probs, Math.floor(alpha)), powerTarget(probs, Math.ceil(alpha)));
  return wrong;
}

describe('exact sampler (Algorithm 1) matches P^(1/T) normalised', () => {
  // drawBatch 1 for the peaked case (draws = samples consumed, so the mean can be checked against
  // calm.md's formula), 16 for the flat one (the distribution must not depend on batch size).
  const cases = [
    { name: 'peaked', probs: PEAKED, drawBatch: 1 },
    { name: 'flat', probs: FLAT, drawBatch: 16 },
  ];
  for (const { name, probs, drawBatch } of cases) {
    for (const temperature of [1 / 2, 1 / 3, 0.7, 0.4]) {
      test(`${name} P, T = ${temperature.toFixed(3)}, drawBatch ${drawBatch}`, () => {
        const alpha = 1 / temperature;
        const target = powerTarget(probs, alpha);
        const r = run(probs, temperature, 20251 + Math.round(1000 * temperature), drawBatch);
        const distance = tv(r.freq, target);
        // Sampling noise alone is ~0.002 TV at 100k draws over 4 outcomes; 0.01 is several sigma.
        assert.ok(distance < 0.01, `TV ${distance} to the target (freq ${r.freq.map((f) => f.toFixed(4))})`);
        // The bound would catch a wrong algorithm: each wrong target is > 0.02 away from the right one.
        for (const wrong of wrongTargets(probs, alpha)) assert.ok(tv(wrong, target) > 0.02, `wrong target ${wrong} too close`);
        assert.equal(r.fallbacks, 0);
        assert.equal(r.totalDraws, r.produced, 'reported draws = samples the source produced');
        if (drawBatch === 1) {
          const expected = expectedDraws(probs, alpha);
          assert.ok(Math.abs(r.meanDraws / expected - 1) < 0.03, `mean draws ${r.meanDraws}, calm.md formula ${expected}`);
        }
        console.log(`  exact ${name} T=${temperature.toFixed(3)}: TV ${distance.toFixed(4)}, mean draws ${r.meanDraws.toFixed(2)}`);
      });
    }
  }
});

describe('exact sampler: edges, budget, determinism', () => {
  test('T = 1 is one draw, distributed as P', () => {
    const r = run(PEAKED, 1, 7, 64, 20_000);
    assert.equal(r.meanDraws, 1);
    assert.ok(tv(r.freq, PEAKED) < 0.02, `TV ${tv(r.freq, PEAKED)}`);
  });

  test('T = 0 returns the mode of one batch; ties broken by the request stream', () => {
    const rng = new Rng(3);
    const mode = sampleChunk(new ExactSampler(K, { temperature: 0, drawBatch: 50 }), new DiscreteSource(PEAKED, rng), rng);
    assert.equal(categoryOf(mode.chunk), 0);
    assert.equal(mode.draws, 50);
    // A source that always yields the pool A, B, A, B, C: A and B tie at 2.
    const tied = { k: K, draw: (n: number) => Int32Array.from({ length: n * K }, (_, i) => [7, 7, 7, [100, 101, 100, 101, 102][Math.floor(i / K) % 5]!][i % K]!) };
    const seen = [0, 0, 0];
    for (let seed = 0; seed < 400; seed++) {
      seen[categoryOf(sampleChunk(new ExactSampler(K, { temperature: 0, drawBatch: 5 }), tied, new Rng(seed)).chunk)]!++;
    }
    assert.equal(seen[2], 0, 'C is never the mode');
    assert.ok(seen[0]! > 150 && seen[1]! > 150, `tie split ${seen}`);
  });

  test('the draw budget triggers the fallback on a very flat distribution and says so', () => {
    // 1000 equally likely chunks: at T = 1/3, Algorithm 1 expects 3 / (1000 * 1e-9) = 3e6 draws.
    const flat = new Array<number>(1000).fill(1 / 1000);
    const rng = new Rng(11);
    const source = new DiscreteSource(flat, rng);
    const sampler = new ExactSampler(K, { temperature: 1 / 3, maxDraws: 500, drawBatch: 64 });
    const asked: number[] = [];
    const recording = { k: K, draw: (n: number) => (asked.push(n), source.draw(n)) };
    const result = sampleChunk(sampler, recording, rng);
    assert.equal(result.fallback, true);
    assert.equal(result.draws, 500);
    assert.equal(source.produced, 500, 'the budget caps what is drawn, not only what is consumed');
    // batches start at one round (n = 3) and double up to drawBatch
    assert.deepEqual(asked, [3, 6, 12, 24, 48, 64, 64, 64, 64, 64, 64, 23]);
  });

  test('the fallback prefers what the pool repeats', () => {
    // One chunk with P = 0.05 among 1000 rare ones: Algorithm 1 needs ~3 / 0.05^3 = 24k draws,
    // the budget is 1000; the cascade at level 3 then picks the frequent chunk almost always.
    const probs = [0.05, ...new Array<number>(1000).fill(0.95 / 1000)];
    let frequent = 0;
    for (let seed = 0; seed < 20; seed++) {
      const rng = new Rng(seed);
      const result = sampleChunk(new ExactSampler(K, { temperature: 1 / 3, maxDraws: 1000 }), new DiscreteSource(probs, rng), rng);
      assert.equal(result.fallback, true);
      if (categoryOf(result.chunk) === 0) frequent++;
    }
    assert.ok(frequent >= 18, `frequent chunk chosen ${frequent}/20 times`);
  });

  test('the same seed gives the same choices; another seed differs', () => {
    const choices = (seed: number) => {
      const rng = new Rng(seed);
      const source = new DiscreteSource(FLAT, rng);
      const sampler = new ExactSampler(K, { temperature: 0.4, drawBatch: 8 });
      return Array.from({ length: 200 }, () => {
        const r = sampleChunk(sampler, source, rng);
        return `${categoryOf(r.chunk)}:${r.draws}`;
      });
    };
    assert.deepEqual(choices(99), choices(99));
    assert.notDeepEqual(choices(99), choices(100));
  });

  test('a source may return more than asked; everything returned is counted', () => {
    const rng = new Rng(5);
    const inner = new DiscreteSource(PEAKED, rng);
    const generous = { k: K, draw: (n: number) => inner.draw(n + 3) };
    const result = sampleChunk(new ExactSampler(K, { temperature: 0.5, drawBatch: 4 }), generous, rng);
    assert.equal(result.draws, inner.produced);
  });

  test('the protocol: wanted() is 0 after the result, feed after the result throws until reset()', () => {
    const rng = new Rng(1);
    const source = new DiscreteSource(PEAKED, rng);
    const sampler = new ExactSampler(K, { temperature: 1 });
    assert.equal(sampler.wanted(), 1);
    const result = sampler.feed(source.draw(1), rng);
    assert.ok(result);
    assert.equal(sampler.wanted(), 0);
    assert.throws(() => sampler.feed(source.draw(1), rng), { name: 'SamplingError', code: 'invalid_argument' });
    sampler.reset();
    assert.equal(sampler.wanted(), 1);
    assert.throws(() => sampler.feed(new Int32Array(K + 1), rng), /positive multiple of K = 4/);
  });
});
