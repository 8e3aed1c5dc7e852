import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BatchSampler } from '../../src/sampling/batch.js';
import { sampleChunk, sampleChunkAsync } from '../../src/sampling/drive.js';
import { ExactSampler } from '../../src/sampling/exact.js';
import { Rng } from '../../src/sampling/rng.js';
import { DiscreteSource, K } from './support/discrete.js';

test('async and sync driving give identical results for one seed', async () => {
  for (const make of [() => new ExactSampler(K, { temperature: 0.4, drawBatch: 8 }), () => new BatchSampler(K, { temperature: 0.4, poolSize: 30 })]) {
    const syncRng = new Rng(21);
    const syncSource = new DiscreteSource([0.4, 0.3, 0.2, 0.1], syncRng);
    const asyncRng = new Rng(21);
    const inner = new DiscreteSource([0.4, 0.3, 0.2, 0.1], asyncRng);
    const asyncSource = { k: K, draw: async (n: number) => inner.draw(n) };
    const sampler = make();
    const other = make();
    for (let i = 0; i < 50; i++) {
      const a = sampleChunk(sampler, syncSource, syncRng);
      const b = await sampleChunkAsync(other, asyncSource, asyncRng);
      assert.deepEqual(b, a);
    }
  }
});

test('a source with another K is refused', () => {
  const rng = new Rng(0);
  assert.throws(() => sampleChunk(new ExactSampler(2, { temperature: 0.5 }), new DiscreteSource([1], rng), rng), /K = 2 but the source gives K = 4/);
});
