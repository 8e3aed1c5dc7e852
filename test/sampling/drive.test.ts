import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sampleChunk } from './support/drive.js';
import { ExactSampler } from '../../src/sampling/exact.js';
import { Rng } from '../../src/sampling/rng.js';
import { DiscreteSource, K } from './support/discrete.js';

test('a source with another K is refused', () => {
  const rng = new Rng(0);
  assert.throws(() => sampleChunk(new ExactSampler(2, { temperature: 0.5 }), new DiscreteSource([1], rng), rng), /K = 2 but the source gives K = 4/);
});
