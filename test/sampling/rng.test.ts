import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng, randomSeed } from '../../src/sampling/rng.js';

const take = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.nextUint32());

describe('Rng (xoshiro128** seeded by splitmix64)', () => {
  test('matches the reference C implementation', () => {
    // xoshiro128** from state {1, 2, 3, 4}, and seed 42 through splitmix64 (low word first),
    // both from Vigna's reference code compiled with gcc.
    assert.deepEqual(take(Rng.fromState([1, 2, 3, 4]), 6), [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
    assert.deepEqual(take(new Rng(42), 6), [1776835114, 4165204688, 17111135, 2317295270, 2792088233, 2554630222]);
  });

  test('same seed, same sequence; number and bigint seeds agree; other seeds and streams differ', () => {
    assert.deepEqual(take(new Rng(12345), 100), take(new Rng(12345), 100));
    assert.deepEqual(take(new Rng(12345), 10), take(new Rng(12345n), 10));
    assert.deepEqual(take(new Rng(-1), 10), take(new Rng(2n ** 64n - 1n), 10), 'int64 -1 is uint64 2^64 - 1');
    assert.notDeepEqual(take(new Rng(0), 10), take(new Rng(1), 10));
    assert.notDeepEqual(take(new Rng(7, 0), 10), take(new Rng(7, 1), 10));
    assert.deepEqual(take(new Rng(7, 0), 10), take(new Rng(7), 10));
  });

  test('a stream is independent of every other stream in the process', () => {
    const alone = new Rng(5);
    const expected = take(alone, 50);
    const a = new Rng(5);
    const b = new Rng(6);
    const interleaved: number[] = [];
    for (let i = 0; i < 50; i++) {
      b.next();
      interleaved.push(a.nextUint32());
      b.fillUniform(new Float32Array(3), -0.5, 0.5);
    }
    assert.deepEqual(interleaved, expected);
  });

  test('getState / fromState resumes exactly', () => {
    const rng = new Rng(3);
    take(rng, 17);
    const copy = Rng.fromState(rng.getState());
    assert.deepEqual(take(copy, 20), take(rng, 20));
    assert.throws(() => Rng.fromState([0, 0, 0, 0]), RangeError);
  });

  test('next() is uniform on [0, 1); nextInt is unbiased; fillUniform stays in [lo, hi)', () => {
    const rng = new Rng(8);
    const bins = new Array<number>(10).fill(0);
    let sum = 0;
    for (let i = 0; i < 100_000; i++) {
      const u = rng.next();
      assert.ok(u >= 0 && u < 1);
      sum += u;
      bins[Math.floor(u * 10)]!++;
    }
    assert.ok(Math.abs(sum / 100_000 - 0.5) < 0.005);
    for (const b of bins) assert.ok(Math.abs(b - 10_000) < 600, `bins ${bins}`);
    const ints = new Array<number>(3).fill(0);
    for (let i = 0; i < 30_000; i++) ints[rng.nextInt(3)]!++;
    for (const c of ints) assert.ok(Math.abs(c - 10_000) < 600, `nextInt ${ints}`);
    const noise = new Float32Array(64 * 1000);
    rng.fillUniform(noise, -0.5, 0.5);
    let min = Infinity;
    let max = -Infinity;
    let mean = 0;
    for (const v of noise) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      mean += v / noise.length;
    }
    assert.ok(min >= -0.5 && max < 0.5 && min < -0.49 && max > 0.49, `range [${min}, ${max}]`);
    assert.ok(Math.abs(mean) < 0.01);
    // An interval whose float32 rounding reaches hi: values must still stay below it.
    const tight = new Float32Array(10_000);
    rng.fillUniform(tight, 1, 1 + 2 ** -20);
    for (const v of tight) assert.ok(v >= 1 && v < 1 + 2 ** -20);
  });

  test('rejects seeds it cannot represent exactly', () => {
    assert.throws(() => new Rng(1.5), RangeError);
    assert.throws(() => new Rng(2 ** 60), RangeError);
    assert.throws(() => new Rng(2n ** 64n), RangeError);
    assert.throws(() => new Rng(1, -1), RangeError);
    assert.throws(() => new Rng(0).nextInt(0), RangeError);
  });

  test('randomSeed gives distinct safe integers', () => {
    const seeds = new Set(Array.from({ length: 100 }, randomSeed));
    assert.equal(seeds.size, 100);
    for (const s of seeds) assert.ok(Number.isSafeInteger(s) && s >= 0);
  });
});
