import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BatchSampler, PoolCascade } from '../../src/sampling/batch.js';
import { SamplingError } from '../../src/sampling/errors.js';
import { ExactSampler } from '../../src/sampling/exact.js';
import { Rng } from '../../src/sampling/rng.js';
import { SoftmaxSampler } from '../../src/sampling/softmax.js';
import { chunkPower } from '../../src/sampling/temperature.js';
import { K, poolOf } from './support/discrete.js';

const chunkSamplers: [string, (t: number) => unknown][] = [
  ['ExactSampler', (temperature) => new ExactSampler(K, { temperature })],
  ['BatchSampler', (temperature) => new BatchSampler(K, { temperature })],
  ['PoolCascade.pick', (temperature) => new PoolCascade().pick(poolOf([0, 1]), K, temperature, new Rng(0))],
];

describe('temperature validation', () => {
  for (const [name, make] of chunkSamplers) {
    test(`${name} rejects T > 1 (no likelihoods), T < 0 and NaN with a SamplingError`, () => {
      assert.throws(() => make(1.5), (err: unknown) => {
        assert.ok(err instanceof SamplingError);
        assert.equal(err.code, 'temperature_above_one');
        assert.equal(err.param, 'temperature');
        assert.match(err.message, /no likelihoods/);
        return true;
      });
      for (const bad of [-0.1, Number.NaN, Infinity, -Infinity]) {
        assert.throws(() => make(bad), { name: 'SamplingError', code: 'invalid_temperature' }, `T = ${bad}`);
      }
      for (const ok of [0, 0.25, 1 / 3, 0.7, 1]) make(ok);
    });
  }

  test('softmax accepts T > 1 (it has logits) but not T < 0 or NaN', () => {
    const softmax = new SoftmaxSampler();
    const logits = Float32Array.from([0, 1]);
    softmax.sample(logits, 1.5, new Rng(0));
    for (const bad of [-1, Number.NaN, Infinity]) {
      assert.throws(() => softmax.sample(logits, bad, new Rng(0)), { name: 'SamplingError', code: 'invalid_temperature' });
    }
  });

  test('1/T splits into n and a; near-integer reciprocals snap; T = 0 is greedy', () => {
    assert.deepEqual(chunkPower(0.4), { temperature: 0.4, alpha: 2.5, n: 2, a: 0.5 });
    assert.deepEqual(chunkPower(1 / 3), { temperature: 1 / 3, alpha: 3, n: 3, a: 0 });
    assert.equal(chunkPower(1 / 7 + 1e-18).a, 0);
    assert.ok(Math.abs(chunkPower(0.333).a - 0.003003) < 1e-6, 'a typed 0.333 is not 1/3');
    const greedy = chunkPower(0);
    assert.equal(greedy.alpha, Infinity);
    assert.equal(chunkPower(Number.MIN_VALUE).alpha, Infinity);
  });
});
