import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BundleManifest } from '../../src/model/bundle.js';
import { graphSpec, signatureProblems } from '../../src/model/graphs.js';

const manifest = {
  format: 'calm-bundle', version: 1, name: 't', kind: 'calm', dtype: 'float32', patch_size: 4, vocab_size: 100,
  hidden_size: 8, num_layers: 1, num_attention_heads: 2, num_kv_heads: 2, head_dim: 4, max_positions: 16,
  context_tokens: 64, special_tokens: { pad: 0, bos: 1, eos: 2 }, add_bos: true, latent_size: 3, noise_size: 5, files: {},
} satisfies BundleManifest;

test('a conforming signature has no problems', () => {
  const spec = graphSpec(manifest, 'decoder');
  const problems = signatureProblems(spec, [{ name: 'latent', type: 'float32', shape: ['n', 3] }], [
    { name: 'token_ids', type: 'int64', shape: ['n', 4] },
  ]);
  assert.deepEqual(problems, []);
});

test('missing, mistyped, misshapen and unexpected values are each reported', () => {
  const spec = graphSpec(manifest, 'head');
  const problems = signatureProblems(
    spec,
    [
      { name: 'hidden', type: 'float16', shape: ['b', 8] },
      { name: 'noise', type: 'float32', shape: ['b', 's', 6] },
      { name: 'extra', type: 'float32', shape: [1] },
    ],
    [],
  );
  assert.deepEqual(problems, [
    'input hidden has type float16, expected float32',
    'input noise dimension 2 is 6, expected 5',
    'unexpected input extra',
    'output latent is missing',
  ]);
});

test('the backbone reads a block table and one key and one value pool per layer, and returns the new keys and values', () => {
  const spec = graphSpec({ ...manifest, num_layers: 3 }, 'backbone');
  assert.deepEqual(spec.inputs.map((v) => v.name), [
    'chunk_ids', 'past_len', 'block_table', 'key_cache.0', 'value_cache.0', 'key_cache.1', 'value_cache.1', 'key_cache.2', 'value_cache.2',
  ]);
  assert.equal(spec.outputs.filter((v) => v.name.startsWith('new_')).length, 6);
});
