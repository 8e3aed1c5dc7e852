import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadBundle } from '../../src/model/bundle.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
import { KvPool } from '../../src/model/kv-pool.js';
import { ModelRunner } from '../../src/model/runner.js';
import { openSessions } from '../../src/model/sessions.js';

const BS = 4;

async function setup(dir: string, blocks: number) {
  const bundle = loadBundle(dir);
  const m = bundle.manifest;
  const sessions = await openSessions(bundle, { device: 'cpu', intraOpThreads: 1, interOpThreads: 1 });
  const pool = new KvPool({ layers: m.num_layers, kvHeads: m.num_kv_heads, headDim: m.head_dim, dtype: m.dtype }, blocks, BS);
  return { m, pool, runner: new ModelRunner(m, sessions, pool) };
}

function ids(n: number, seed: number, vocab: number): BigInt64Array {
  return BigInt64Array.from({ length: n }, (_, i) => BigInt(3 + ((i * 7919 + seed * 104729) % (vocab - 3))));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

const table = (rows: number[][], width: number) => BigInt64Array.from(rows.flatMap((r) => [...r, ...new Array(width - r.length).fill(0)]).map(BigInt));

for (const dir of [DEFAULT_MODEL_DIR, DEFAULT_AR_MODEL_DIR]) {
  describe(`paged KV pool + runner on ${dir.split('/').pop()}`, () => {
    test('step-by-step decode through scattered, shared blocks equals one full forward', async () => {
      const { m, runner, pool } = await setup(dir, 16);
      const k = m.patch_size;
      const width = m.kind === 'calm' ? m.hidden_size : m.vocab_size;
      const seqA = ids(10 * k, 1, m.vocab_size);
      const seqB = ids(3 * k, 2, m.vocab_size);
      // Reference: A in one call, into blocks 0..2.
      const fullA = await runner.backbone({ ids: seqA, rows: 1, newLen: 10, pastLen: [0], valid: [10], blockTable: table([[0, 1, 2]], 3), width: 3 });
      // B is prefilled into block 9 while A is fed one position per step into blocks 13, 5, 11 (out of order);
      // B's row re-feeds a chunk each step and its output is ignored.
      const aBlocks = [13, 5, 11];
      await runner.backbone({ ids: seqB, rows: 1, newLen: 3, pastLen: [0], valid: [3], blockTable: table([[9]], 1), width: 1 });
      for (let t = 0; t < 10; t++) {
        const step = new BigInt64Array(2 * k);
        step.set(seqB.subarray(0, k), 0);
        step.set(seqA.subarray(t * k, (t + 1) * k), k);
        const w = Math.ceil((t + 1) / BS);
        const out = await runner.backbone({ ids: step, rows: 2, newLen: 1, pastLen: [3, t], valid: [0, 1], blockTable: table([[9], aBlocks.slice(0, w)], w), width: w });
        const got = out.subarray(width, 2 * width);
        const want = fullA.subarray(t * width, (t + 1) * width);
        assert.ok(maxDiff(got, want) < 1e-4, `position ${t}: max diff ${maxDiff(got, want)}`);
      }
      // A second sequence that shares A's first full block and copies its partial second block
      // continues exactly like A.
      pool.copyBlock(5, 7, 2);
      const forked = await runner.backbone({ ids: seqA.subarray(6 * k, 7 * k), rows: 1, newLen: 1, pastLen: [6], valid: [1], blockTable: table([[13, 7]], 2), width: 2 });
      assert.ok(maxDiff(forked, fullA.subarray(6 * width, 7 * width)) < 1e-4);
    });

    test('backboneLast gives each row its last valid position, for padded rows and for one-position calls', async () => {
      const width = (m: { kind: string; hidden_size: number; vocab_size: number }) => (m.kind === 'calm' ? m.hidden_size : m.vocab_size);
      const full = await setup(dir, 16);
      const last = await setup(dir, 16);
      const k = full.m.patch_size;
      const w = width(full.m);
      // two rows of a prefill call, 5 and 2 valid positions of newLen 5, into blocks 0-1 and 4
      const prefill = { ids: ids(2 * 5 * k, 3, full.m.vocab_size), rows: 2, newLen: 5, pastLen: [0, 0], valid: [5, 2], blockTable: table([[0, 1], [4]], 2), width: 2 };
      const all = await full.runner.backbone(prefill);
      const got = await last.runner.backboneLast(prefill);
      assert.equal(got.length, 2 * w);
      assert.ok(maxDiff(got.subarray(0, w), all.subarray(4 * w, 5 * w)) === 0, 'row 0: position 4');
      assert.ok(maxDiff(got.subarray(w, 2 * w), all.subarray((5 + 1) * w, (5 + 2) * w)) === 0, 'row 1: position 1 (padded after)');
      // a decode call: one position per row
      const step = { ids: ids(2 * k, 4, full.m.vocab_size), rows: 2, newLen: 1, pastLen: [5, 2], valid: [1, 1], blockTable: table([[0, 1], [4]], 2), width: 2 };
      assert.ok(maxDiff(await last.runner.backboneLast(step), await full.runner.backbone(step)) === 0);
      await assert.rejects(last.runner.backboneLast({ ...step, valid: [1, 0] }), /every row needs a valid position/);
    });
  });
}

test('the pool scatters new positions across block boundaries and copies partial blocks', () => {
  const pool = new KvPool({ layers: 1, kvHeads: 2, headDim: 2, dtype: 'float32' }, 4, 2);
  // [rows 1, heads 2, new 3, dim 2], positions 1..3 of a row whose blocks are 3 then 1
  const out = Float32Array.from({ length: 2 * 3 * 2 }, (_, i) => i + 1);
  pool.scatter(0, 'key', out, 3, [1], [3], BigInt64Array.of(3n, 1n), 2);
  const at = (block: number, head: number, pos: number) => Array.from(pool.keys[0]!.subarray(((block * 2 + head) * 2 + pos) * 2, ((block * 2 + head) * 2 + pos) * 2 + 2));
  assert.deepEqual(at(3, 0, 1), [1, 2]); // position 1: block 3, offset 1
  assert.deepEqual(at(1, 0, 0), [3, 4]); // position 2: block 1, offset 0
  assert.deepEqual(at(1, 1, 1), [11, 12]); // head 1, position 3
  assert.throws(() => pool.scatter(0, 'key', out, 3, [3], [3], BigInt64Array.of(3n, 1n), 2), /beyond its block table/);
  pool.copyBlock(1, 2, 1);
  assert.deepEqual(at(2, 1, 0), at(1, 1, 0));
  assert.deepEqual(at(2, 1, 1), [0, 0], 'only the first positions are copied');
});
