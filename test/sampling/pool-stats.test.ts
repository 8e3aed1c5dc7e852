// What the batch sampler's pool can tell without likelihoods (issue 14, item 3): top_p on the
// pool's empirical distribution, and the chosen chunk's pool frequency as a confidence. Checked
// on stand-in sources whose distributions are known, so the answers are too.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BatchSampler, PoolCascade } from '../../src/sampling/batch.js';
import { Rng } from '../../src/sampling/rng.js';
import { SoftmaxSampler } from '../../src/sampling/softmax.js';
import { DiscreteSource, K, categoryOf, poolOf, tv } from './support/discrete.js';
import { sampleChunk } from './support/drive.js';

const P = [0.5, 0.3, 0.15, 0.05];

function byCategory(pool: Int32Array, temperature: number, topP: number): number[] {
  const out = [0, 0, 0, 0];
  for (const c of new PoolCascade().distribution(pool, K, temperature, topP)) out[categoryOf(pool, c.index)] = c.probability;
  return out;
}

/** Empirical distribution of the batch sampler's choices over `steps` steps. */
function choices(options: { temperature: number; poolSize: number; topP: number }, steps: number, seed: number): number[] {
  const rng = new Rng(seed);
  const source = new DiscreteSource(P, new Rng(seed + 1));
  const sampler = new BatchSampler(K, options);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < steps; i++) counts[categoryOf(sampleChunk(sampler, source, rng).chunk)]++;
  return counts.map((c) => c / steps);
}

describe('top_p on the pool', () => {
  // A pool whose counts are exactly 100 * P: 50 A, 30 B, 15 C, 5 D.
  const pool = poolOf([...Array(50).fill(0), ...Array(30).fill(1), ...Array(15).fill(2), ...Array(5).fill(3)]);

  test('keeps the most frequent chunks until they reach top_p of the pool, then applies T within them', () => {
    const close = (a: number[], b: number[]) => a.every((x, i) => Math.abs(x - b[i]!) < 1e-12);
    assert.ok(close(byCategory(pool, 1, 1), [0.5, 0.3, 0.15, 0.05]), 'top_p = 1 is the plain cascade');
    assert.ok(close(byCategory(pool, 1, 0.8), [50 / 80, 30 / 80, 0, 0]), 'A and B reach 0.8 exactly');
    assert.ok(close(byCategory(pool, 1, 0.81), [50 / 95, 30 / 95, 15 / 95, 0]), 'just past 0.8 takes C in');
    assert.ok(close(byCategory(pool, 1, 0.3), [1, 0, 0, 0]), 'the most frequent chunk is always kept');
    assert.ok(close(byCategory(pool, 1, 1e-300), [1, 0, 0, 0]));
    // T = 1/2 within {A, B}: weights C(50, 2) = 1225 and C(30, 2) = 435.
    assert.ok(close(byCategory(pool, 0.5, 0.8), [1225 / 1660, 435 / 1660, 0, 0]));
  });

  test('ties at the boundary go to the chunk seen first', () => {
    const tied = poolOf([2, 1, 1, 2, 0, 0, 0, 0]); // A 4, B 2, C 2; C occurs first
    const dist = byCategory(tied, 1, 0.7); // A (0.5) then one of B, C (0.75)
    assert.deepEqual(dist.map((x) => +x.toFixed(6)), [0.666667, 0, 0.333333, 0]);
  });

  test('refuses top_p outside (0, 1]', () => {
    for (const bad of [0, -0.1, 1.5, Number.NaN]) assert.throws(() => new BatchSampler(K, { temperature: 1, topP: bad }), /top_p/);
  });

  test('converges to the nucleus of the model as N grows; lets the tail in at small N', (t) => {
    // The true nucleus of P at 0.75 is {A, B} (0.5 < 0.75 <= 0.8), renormalised: 0.625, 0.375.
    // (At exactly 0.8 the pool's counts fall on either side of the boundary: C comes in half the time.)
    const want = [0.625, 0.375, 0, 0];
    const large = choices({ temperature: 1, poolSize: 2000, topP: 0.75 }, 1500, 1);
    assert.ok(tv(large, want) < 0.03, `N = 2000: ${large}`);
    // With N = 10 a pool's counts are coarse and noisy: a pool short of A or B reaches 0.75 only
    // with C or D in, so the tail leaks into the nucleus (measured: C 0.106, D 0.017).
    const small = choices({ temperature: 1, poolSize: 10, topP: 0.75 }, 6000, 2);
    assert.ok(tv(small, want) > tv(large, want), `N = 10: ${small}`);
    assert.ok(small[2]! + small[3]! > 0.05, `N = 10 lets the tail in: ${small}`);
    t.diagnostic(`top_p 0.75: N = 2000 ${large.map((x) => x.toFixed(3))} (TV ${tv(large, want).toFixed(3)}); N = 10 ${small.map((x) => x.toFixed(3))} (TV ${tv(small, want).toFixed(3)})`);
  });

  test('at T = 1 a top_p below 1 draws the whole pool; at top_p = 1 one sample', () => {
    assert.equal(new BatchSampler(K, { temperature: 1, poolSize: 64, topP: 0.9 }).wanted(), 64);
    assert.equal(new BatchSampler(K, { temperature: 1, poolSize: 64 }).wanted(), 1);
  });
});

describe('confidence: the chosen chunk\'s pool frequency', () => {
  test('is the frequency in the pool, with the binomial standard error', () => {
    const rng = new Rng(5);
    const source = new DiscreteSource(P, new Rng(6));
    const sampler = new BatchSampler(K, { temperature: 1, poolSize: 400, confidence: true });
    assert.equal(sampler.wanted(), 400, 'asking for confidence draws the pool at T = 1');
    const byChosen = new Map<number, number[]>();
    for (let i = 0; i < 400; i++) {
      const r = sampleChunk(sampler, source, rng);
      const c = r.confidence!;
      assert.equal(c.pool, 400);
      assert.ok(Math.abs(c.stderr - Math.sqrt((c.frequency * (1 - c.frequency)) / 400)) < 1e-12);
      const cat = categoryOf(r.chunk);
      byChosen.set(cat, [...(byChosen.get(cat) ?? []), c.frequency]);
    }
    // The frequency estimates the chosen chunk's probability: on average within a few standard errors.
    for (const [cat, fs] of byChosen) {
      const mean = fs.reduce((a, b) => a + b, 0) / fs.length;
      assert.ok(Math.abs(mean - P[cat]!) < 4 * Math.sqrt((P[cat]! * (1 - P[cat]!)) / 400), `category ${cat}: mean frequency ${mean}, p ${P[cat]}`);
    }
  });

  test('is absent unless asked for, and where no pool was drawn', () => {
    const rng = new Rng(1);
    const source = new DiscreteSource(P, new Rng(2));
    assert.equal(sampleChunk(new BatchSampler(K, { temperature: 0.5, poolSize: 50 }), source, rng).confidence, undefined);
    assert.equal(sampleChunk(new BatchSampler(K, { temperature: 1, poolSize: 1, confidence: true }), source, rng).confidence, undefined);
  });
});

describe('top_p for the token baseline (softmax)', () => {
  test('samples the renormalised nucleus of softmax(logits / T)', () => {
    const logits = Float32Array.from(P.map(Math.log));
    const sampler = new SoftmaxSampler();
    const rng = new Rng(9);
    const counts = [0, 0, 0, 0];
    const n = 100_000;
    for (let i = 0; i < n; i++) counts[sampler.sample(logits, 1, rng, 0.8)]++;
    assert.ok(tv(counts.map((c) => c / n), [0.625, 0.375, 0, 0]) < 0.01, `${counts}`);
    // a tiny top_p is greedy; top_p = 1 is plain softmax
    for (let i = 0; i < 100; i++) assert.equal(sampler.sample(logits, 1, rng, 1e-9), 0);
    const plain = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) plain[sampler.sample(logits, 1, rng, 1)]++;
    assert.ok(tv(plain.map((c) => c / n), P) < 0.01);
  });

  test('ties at the boundary go to the lower ids; -Infinity logits are never sampled', () => {
    const sampler = new SoftmaxSampler();
    const rng = new Rng(3);
    const logits = Float32Array.of(-Infinity, 0, 0, 0, 0, -Infinity);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(sampler.sample(logits, 1, rng, 0.5));
    assert.deepEqual([...seen].sort(), [1, 2], 'half the mass: the two lowest of four equal tokens');
    for (let i = 0; i < 100; i++) assert.equal(sampler.sample(logits, 1, rng, 1e-300), 1, 'a tiny top_p keeps one token: the lowest id of the largest');
  });
});
