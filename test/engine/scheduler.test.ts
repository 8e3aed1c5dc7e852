import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BlockManager, blockHash } from '../../src/engine/block-manager.js';
import { Scheduler, type SchedulerLimits } from '../../src/engine/scheduler.js';
import { Sequence } from '../../src/engine/sequence.js';
import { Rng } from '../../src/sampling/rng.js';

const K = 4;
const BS = 4; // positions per block

/** A sequence of `positions` prompt positions whose ids start at `base` (equal bases: equal prompts). */
function seq(id: string, positions: number, base = 100): Sequence {
  const input = Int32Array.from({ length: positions * K }, (_, i) => base + i);
  return new Sequence(
    { id, input, promptTokens: input.length, maxTokens: 64, temperature: 1, sampler: 'batch', poolSize: 1, seed: 1, seedStream: 0, stop: [], ignoreEos: false },
    K, new Rng(1), null, { decode: () => '' }, 0,
  );
}

function scheduler(blocks: number, limits: Partial<SchedulerLimits> = {}): Scheduler {
  return new Scheduler(new BlockManager(blocks, BS), { maxRunning: 8, maxBatchedPositions: 64, maxPrefillPositions: 64, ...limits });
}

/** What the engine does after a step: every planned position is computed; samplers decide and feed a chunk back. */
function runPlan(s: Scheduler, plan: ReturnType<Scheduler['schedule']>): void {
  for (const q of plan.decode) s.computed(q, 1);
  for (const p of plan.prefill) s.computed(p.seq, p.positions);
  for (const q of [...plan.decode, ...plan.prefill.map((p) => p.seq)]) if (q.pending === 0) q.append(Int32Array.of(1, 2, 3, 4));
}

describe('BlockManager', () => {
  test('hands out the lowest free ids first and reuses released blocks', () => {
    const bm = new BlockManager(4, BS);
    assert.deepEqual([bm.allocate(), bm.allocate(), bm.allocate()], [0, 1, 2]);
    bm.release([1]);
    assert.equal(bm.allocate(), 1);
    assert.equal(bm.allocate(), 3);
    assert.equal(bm.allocate(), null);
    assert.equal(bm.used, 4);
  });

  test('a cached block outlives its sequence until the pool needs it, least recently released first', () => {
    const bm = new BlockManager(3, BS);
    const [a, b] = [bm.allocate()!, bm.allocate()!];
    bm.register(a, 'A', true);
    bm.register(b, 'B', true);
    bm.release([b]);
    bm.release([a]);
    assert.equal(bm.used, 0);
    assert.deepEqual(bm.lookup('A'), { block: a, ready: true });
    assert.equal(bm.allocate(), 2); // never-used blocks go before cached ones
    assert.equal(bm.allocate(), b); // then the least recently released cached block
    assert.equal(bm.lookup('B'), undefined);
    bm.share(a);
    assert.equal(bm.refCount(a), 1);
    assert.equal(bm.allocate(), null, 'a shared cached block is not evictable');
  });

  test('a pending block that is released before it is written leaves the cache', () => {
    const bm = new BlockManager(2, BS);
    const a = bm.allocate()!;
    bm.register(a, 'A', false);
    assert.deepEqual(bm.lookup('A'), { block: a, ready: false });
    bm.release([a]);
    assert.equal(bm.lookup('A'), undefined);
    assert.throws(() => bm.release([a]), /released more often/);
  });

  test('block hashes chain: the same ids after a different prefix hash differently', () => {
    const ids = Int32Array.of(1, 2, 3);
    assert.equal(blockHash(null, ids), blockHash(null, Int32Array.of(1, 2, 3)));
    assert.notEqual(blockHash('x', ids), blockHash('y', ids));
    assert.notEqual(blockHash(null, ids), blockHash(null, Int32Array.of(1, 2, 4)));
  });
});

describe('Scheduler', () => {
  test('admits first come first served up to max running, then by free blocks', () => {
    const s = scheduler(8, { maxRunning: 2 });
    const [a, b, c] = [seq('a', 3, 1), seq('b', 3, 2), seq('c', 3, 3)];
    [a, b, c].forEach((q) => s.enqueue(q));
    const plan = s.schedule(0);
    assert.deepEqual(s.running, [a, b]);
    assert.deepEqual(s.waiting, [c]);
    assert.deepEqual(plan.prefill.map((p) => [p.seq.id, p.positions]), [['a', 3], ['b', 3]]);
    // A prompt bigger than the free blocks (less the reserve) waits, and blocks those behind it.
    const t = scheduler(4);
    const [big, small] = [seq('big', 16, 1), seq('small', 1, 2)];
    t.enqueue(big);
    t.enqueue(small);
    t.schedule(0);
    assert.deepEqual(t.running, []);
    assert.deepEqual(t.waiting, [big, small]);
  });

  test('decode comes first; prefill gets the rest of the budget, at most maxPrefillPositions while others decode', () => {
    const s = scheduler(64, { maxBatchedPositions: 20, maxPrefillPositions: 6 });
    const d = seq('d', 2, 1);
    s.enqueue(d);
    runPlan(s, s.schedule(0)); // d prefilled and sampled: it decodes from now on
    const [p1, p2] = [seq('p1', 10, 2), seq('p2', 10, 3)];
    s.enqueue(p1);
    s.enqueue(p2);
    const plan = s.schedule(0);
    assert.deepEqual(plan.decode, [d]);
    assert.deepEqual(plan.prefill.map((p) => [p.seq.id, p.positions]), [['p1', 6]]);
    // Nothing decoding: prefill may use the whole step budget.
    const idle = scheduler(64, { maxBatchedPositions: 20, maxPrefillPositions: 6 });
    idle.enqueue(seq('q1', 10, 4));
    idle.enqueue(seq('q2', 30, 5));
    assert.deepEqual(idle.schedule(0).prefill.map((p) => p.positions), [10, 10]);
  });

  test('a dry pool preempts the youngest running sequence, which comes back first and is recomputed', () => {
    const s = scheduler(5);
    const [old, young] = [seq('old', 4, 1), seq('young', 4, 2)]; // one full block each (reserve: 1 block)
    s.enqueue(old);
    s.enqueue(young);
    runPlan(s, s.schedule(0));
    assert.deepEqual(s.running, [old, young]);
    // Both grow a block every 4 positions; the pool has 5, so the third round of blocks cannot fit both.
    let plan = s.schedule(0);
    for (let i = 0; i < 8 && plan.preempted.length === 0; i++) {
      runPlan(s, plan);
      plan = s.schedule(0);
    }
    assert.equal(plan.preempted.length, 1);
    assert.deepEqual(plan.decode, [old]);
    assert.equal(plan.preempted[0], young);
    assert.equal(young.state, 'waiting');
    assert.equal(s.waiting[0], young);
    assert.equal(young.computed, 0);
    assert.equal(young.preemptions, 1);
    assert.ok(young.known > 4, 'it keeps its sampled chunks: they are recomputed as its prompt');
    assert.equal(s.preemptions, plan.preempted.length);
  });

  test('prefix cache: a repeated prompt shares its full blocks and computes only from the block holding its last position', () => {
    const s = scheduler(32);
    const first = seq('first', 10, 7); // blocks: 4 + 4 + 2 positions
    s.enqueue(first);
    runPlan(s, s.schedule(0));
    const again = seq('again', 10, 7);
    s.enqueue(again);
    const plan = s.schedule(0);
    assert.deepEqual(again.blocks.slice(0, 2), first.blocks.slice(0, 2));
    assert.equal(again.computed, 8);
    assert.equal(again.cachedPositions, 8);
    assert.deepEqual(plan.prefill.map((p) => [p.seq.id, p.positions]), [['again', 2]]);
    assert.deepEqual([s.prefixQueried, s.prefixHits], [2 * BS + 2 * BS, 2 * BS]);
    // A prompt that ends exactly on a block boundary still computes its last block.
    const exact = seq('exact', 8, 7);
    s.enqueue(exact);
    s.schedule(0);
    assert.equal(exact.computed, 4);
  });

  test('the same prompt submitted together waits for the first copy to compute the shared blocks', () => {
    const s = scheduler(32);
    const copies = [seq('c0', 9, 3), seq('c1', 9, 3), seq('c2', 9, 3)];
    copies.forEach((q) => s.enqueue(q));
    let plan = s.schedule(0);
    assert.deepEqual(s.running, [copies[0]]);
    assert.deepEqual(s.waiting, [copies[1], copies[2]]);
    runPlan(s, plan);
    plan = s.schedule(0);
    assert.deepEqual(s.running.map((q) => q.id), ['c0', 'c1', 'c2']);
    for (const q of copies.slice(1)) {
      assert.equal(q.computed, 8);
      assert.deepEqual(q.blocks.slice(0, 2), copies[0]!.blocks.slice(0, 2));
    }
    // The copies compute only their last position, in the decode batch beside the first.
    assert.deepEqual(plan.decode.map((q) => q.id), ['c0', 'c1', 'c2']);
  });

  test('blocks go back when sequences leave; cached ones stay available', () => {
    const s = scheduler(16);
    const q = seq('q', 9, 1);
    s.enqueue(q);
    runPlan(s, s.schedule(0));
    assert.equal(s.blocks.used, 3);
    s.remove(q);
    assert.equal(s.blocks.used, 0);
    assert.equal(s.blocks.available, 16);
    assert.equal(q.state, 'finished');
  });
});
