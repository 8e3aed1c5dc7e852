import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng } from '../../src/sampling/rng.js';
import { SoftmaxSampler, argmax } from '../../src/sampling/softmax.js';
import { frequencies, normalise, tv } from './support/discrete.js';

function softmax(logits: readonly number[], temperature: number): number[] {
  const max = Math.max(...logits);
  return normalise(logits.map((l) => Math.exp((l - max) / temperature)));
}

describe('SoftmaxSampler', () => {
  const logits = [2, 1, 0.5, -1, 3, -Infinity, 2.5, 0];
  for (const temperature of [0.5, 1, 1.5]) {
    test(`frequencies match softmax(logits / ${temperature}) at 100k draws`, () => {
      const sampler = new SoftmaxSampler();
      const rng = new Rng(31 + temperature * 10);
      const input = Float32Array.from(logits);
      const counts = new Array<number>(logits.length).fill(0);
      for (let i = 0; i < 100_000; i++) counts[sampler.sample(input, temperature, rng)]!++;
      const expected = softmax(logits, temperature);
      const distance = tv(frequencies(counts), expected);
      assert.ok(distance < 0.01, `TV ${distance}`);
      assert.equal(counts[5], 0, 'a -Infinity logit is never sampled');
      // A sampler that ignored T would fail the bound.
      if (temperature !== 1) assert.ok(tv(softmax(logits, 1), expected) > 0.05);
      console.log(`  softmax T=${temperature}: TV ${distance.toFixed(4)}`);
    });
  }

  test('T = 0 is argmax, ties to the lowest id', () => {
    const sampler = new SoftmaxSampler();
    const rng = new Rng(0);
    assert.equal(sampler.sample(Float32Array.from([0, 5, 1, 5]), 0, rng), 1);
    assert.equal(argmax(Float32Array.from([-Infinity, -3, -3])), 1);
    assert.equal(argmax(Float32Array.from([Number.NaN, 1, 2])), 2, 'NaN is never the argmax');
  });

  test('large logits are stable, the scratch buffer adapts to the vocabulary size', () => {
    const sampler = new SoftmaxSampler();
    const rng = new Rng(1);
    const counts = [0, 0];
    for (let i = 0; i < 10_000; i++) counts[sampler.sample(Float32Array.from([1000, 1000 - Math.log(3)]), 1, rng)]!++;
    assert.ok(Math.abs(counts[0]! / 10_000 - 0.75) < 0.02, `${counts}`);
    const big = new Float32Array(128_257).fill(-10);
    big[128_256] = 10;
    assert.equal(sampler.sample(big, 0.01, rng), 128_256);
    assert.throws(() => sampler.sample(Float32Array.from([Number.NaN, 0]), 1, rng), { name: 'SamplingError' });
    assert.throws(() => sampler.sample(Float32Array.from([-Infinity, -Infinity]), 1, rng), { name: 'SamplingError' });
  });
});
