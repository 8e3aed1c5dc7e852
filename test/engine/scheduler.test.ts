import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvCache } from '../../src/engine/kv-cache.js';
import { Scheduler } from '../../src/engine/scheduler.js';
import type { Sequence } from '../../src/engine/sequence.js';

/** Just what the scheduler reads of a sequence. */
function seq(pastLen: number): Sequence {
  return { state: 'waiting', row: -1, pastLen, admittedAt: 0 } as unknown as Sequence;
}

test('settle keeps decode rows first, list order equal to row order, and cache contents with their sequence', () => {
  const kv = new KvCache({ layers: 1, kvHeads: 1, headDim: 1, dtype: 'float32' }, { maxRows: 6, maxPositions: 4, initialCapacity: 4 });
  const s = new Scheduler(kv, 6);
  const seqs = [seq(1), seq(1), seq(1), seq(1), seq(1)];
  for (const q of seqs) s.enqueue(q);
  s.admit(0);
  // Mark each row's cache with its sequence's number.
  seqs.forEach((q, i) => kv.write(0, 'key', q.row, Float32Array.of(i + 1), 1, [0], [1]));
  seqs.forEach((q, i) => (q.state = i === 3 ? 'prefill' : 'decode'));
  seqs[0]!.state = 'finished';
  s.settle();
  const rows = s.running;
  assert.deepEqual(rows.map((q) => q.row), [0, 1, 2, 3]);
  assert.deepEqual(rows.map((q) => q.state), ['decode', 'decode', 'decode', 'prefill']);
  for (const q of rows) assert.equal(kv.view(0, 'key', q.row, 1)[0], seqs.indexOf(q) + 1, 'cache row moved with its sequence');
  assert.deepEqual(s.decoding.map((q) => q.row), [0, 1, 2]);
  assert.deepEqual(s.prefilling.map((q) => q.row), [3]);
});

test('admission is first come first served up to the cap on running sequences', () => {
  const kv = new KvCache({ layers: 1, kvHeads: 1, headDim: 1, dtype: 'float32' }, { maxRows: 2, maxPositions: 4 });
  const s = new Scheduler(kv, 2);
  const [a, b, c] = [seq(0), seq(0), seq(0)];
  s.enqueue(a!);
  s.enqueue(b!);
  s.enqueue(c!);
  assert.deepEqual(s.admit(0), [a, b]);
  assert.deepEqual(s.waiting, [c]);
  a!.state = 'finished';
  s.settle();
  assert.deepEqual(s.admit(1), [c]);
  assert.equal(c!.row, 1);
});
