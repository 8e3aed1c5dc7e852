import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KvCache } from '../../src/engine/kv-cache.js';
import { loadBundle } from '../../src/model/bundle.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
import { ModelRunner } from '../../src/model/runner.js';
import { openSessions } from '../../src/model/sessions.js';

async function setup(dir: string, initialCapacity: number) {
  const bundle = loadBundle(dir);
  const m = bundle.manifest;
  const sessions = await openSessions(bundle, { device: 'cpu', intraOpThreads: 1, interOpThreads: 1 });
  const kv = new KvCache({ layers: m.num_layers, kvHeads: m.num_kv_heads, headDim: m.head_dim, dtype: m.dtype }, { maxRows: 4, maxPositions: 64, initialCapacity });
  return { m, kv, runner: new ModelRunner(m, sessions, kv) };
}

function ids(n: number, seed: number, vocab: number): BigInt64Array {
  return BigInt64Array.from({ length: n }, (_, i) => BigInt(3 + ((i * 7919 + seed * 104729) % (vocab - 3))));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

for (const dir of [DEFAULT_MODEL_DIR, DEFAULT_AR_MODEL_DIR]) {
  describe(`KV cache + runner on ${dir.split('/').pop()}`, () => {
    test('batched step-by-step decode through the server-owned cache equals one full forward', async () => {
      const ref = await setup(dir, 64);
      const k = ref.m.patch_size;
      const width = ref.m.kind === 'calm' ? ref.m.hidden_size : ref.m.vocab_size;
      const seqA = ids(6 * k, 1, ref.m.vocab_size);
      const seqB = ids(3 * k, 2, ref.m.vocab_size);
      const fullA = await ref.runner.backbone(0, 1, seqA, 6, [0], [6]);

      // Start small so the cache must grow (and copy live rows) while the batch runs.
      const { runner, kv } = await setup(dir, 2);
      // Row 0 holds B (3 positions) prefilled at once; row 1 holds A, fed one position per step.
      kv.ensureCapacity(3, 1);
      await runner.backbone(0, 1, seqB, 3, [0], [3]);
      for (let t = 0; t < 6; t++) {
        kv.ensureCapacity(3 + t + 1, 2);
        const step = new BigInt64Array(2 * k);
        step.set(seqB.subarray(0, k), 0); // B re-feeds a chunk at its next position; its output is ignored
        step.set(seqA.subarray(t * k, (t + 1) * k), k);
        const out = await runner.backbone(0, 2, step, 1, [3 + t, t], [1, 1]);
        const got = out.subarray(width, 2 * width);
        const want = fullA.subarray(t * width, (t + 1) * width);
        assert.ok(maxDiff(got, want) < 1e-4, `position ${t}: max diff ${maxDiff(got, want)}`);
      }
      assert.ok(kv.capacity >= 8);
    });
  });
}

test('rows move and swap with their contents', () => {
  const kv = new KvCache({ layers: 1, kvHeads: 2, headDim: 2, dtype: 'float32' }, { maxRows: 3, maxPositions: 8, initialCapacity: 4 });
  const out = Float32Array.from({ length: 2 * 2 * 3 * 2 }, (_, i) => i + 1); // [rows 2, heads 2, new 3, dim 2]
  for (const kind of ['key', 'value'] as const) kv.write(0, kind, 0, out, 3, [0, 1], [3, 2]);
  const row = (r: number) => Array.from(kv.view(0, 'key', r, 1));
  const r0 = row(0);
  const r1 = row(1);
  kv.swapRows(0, 1, 3, 3);
  assert.deepEqual(row(0), r1);
  assert.deepEqual(row(1), r0);
  kv.moveRow(1, 2, 3);
  assert.deepEqual(row(2), r0);
});
