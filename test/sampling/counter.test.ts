import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { chunkKey, sameChunk } from '../../src/sampling/chunks.js';
import { ChunkCounter } from '../../src/sampling/counter.js';
import { Rng } from '../../src/sampling/rng.js';

function referenceCounts(pool: Int32Array, k: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < pool.length / k; i++) counts.set(chunkKey(pool, i, k), (counts.get(chunkKey(pool, i, k)) ?? 0) + 1);
  return counts;
}

function counted(counter: ChunkCounter, pool: Int32Array, k: number): Map<string, number> {
  const distinct = counter.count(pool, k);
  const out = new Map<string, number>();
  for (let j = 0; j < distinct; j++) out.set(chunkKey(pool, counter.representative(j), k), counter.countOf(j));
  return out;
}

describe('ChunkCounter', () => {
  test('exact counts for K = 1, 4 and 8 over pools with many ties, reused across sizes', () => {
    const rng = new Rng(4);
    const counter = new ChunkCounter();
    for (const [k, size, values] of [[4, 5000, 1200], [1, 300, 7], [8, 2000, 2000], [4, 10, 3], [4, 7000, 50]] as const) {
      const alphabet = Array.from({ length: values }, () => Array.from({ length: k }, () => rng.nextInt(2 ** 31)));
      const pool = Int32Array.from(Array.from({ length: size }, () => alphabet[rng.nextInt(values)]!).flat());
      const reference = referenceCounts(pool, k);
      const got = counted(counter, pool, k);
      assert.deepEqual(got, reference);
      assert.equal(counter.maxCount, Math.max(...reference.values()));
      assert.deepEqual([...got.keys()], [...reference.keys()], 'iteration in order of first appearance');
    }
  });

  test('chunks that differ in one id only, or only by order, stay apart', () => {
    const pool = Int32Array.from([1, 2, 3, 4, 1, 2, 3, 5, 4, 3, 2, 1, 1, 2, 3, 4, 0x7fffffff, 0, 0, 0, 0, 0, 0, 0x7fffffff]);
    const got = counted(new ChunkCounter(), pool, 4);
    assert.deepEqual(got, new Map([['1,2,3,4', 2], ['1,2,3,5', 1], ['4,3,2,1', 1], ['2147483647,0,0,0', 1], ['0,0,0,2147483647', 1]]));
    assert.ok(sameChunk(pool, 0, pool, 3, 4));
    assert.ok(!sameChunk(pool, 0, pool, 1, 4));
  });

  test('rejects ragged pools', () => {
    assert.throws(() => new ChunkCounter().count(new Int32Array(6), 4), { name: 'SamplingError' });
    assert.throws(() => new ChunkCounter().count(new Int32Array(0), 4), { name: 'SamplingError' });
  });
});
