// Arrival processes and concurrency limits of the serving benchmark.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { arrivalSchedule, createRng, gamma, interarrivalGaps, runLoad, Semaphore } from '../../src/bench/load.js';

function stats(xs: number[]) {
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
  return { mean, cv: sd / mean };
}

describe('arrivals', () => {
  test('the seeded generator is uniform in [0, 1) and repeatable', () => {
    const a = createRng(7);
    const b = createRng(7);
    const xs = Array.from({ length: 20_000 }, () => a());
    assert.deepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => b()));
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.ok(Math.abs(stats(xs).mean - 0.5) < 0.01);
    assert.notDeepEqual(xs.slice(0, 5), Array.from({ length: 5 }, createRng(8)));
  });

  test('Poisson arrivals at 5 req/s: mean gap 0.2 s, coefficient of variation 1', () => {
    const gaps = interarrivalGaps(20_000, 5, 1, createRng(42));
    const { mean, cv } = stats(gaps);
    assert.ok(Math.abs(mean - 0.2) / 0.2 < 0.03, `mean gap ${mean}`);
    assert.ok(Math.abs(cv - 1) < 0.05, `cv ${cv}`);
    // the rate measured over the whole (unnormalized) schedule
    const times = arrivalSchedule(20_000, { requestRate: 5, normalize: false }, createRng(42));
    const rate = 20_000 / (times.at(-1)! / 1000);
    assert.ok(Math.abs(rate - 5) / 5 < 0.03, `rate ${rate}`);
  });

  test('burstiness: gamma gaps keep the mean and change the spread (cv = 1/sqrt(B))', () => {
    for (const b of [0.5, 4]) {
      const { mean, cv } = stats(interarrivalGaps(20_000, 2, b, createRng(3)));
      assert.ok(Math.abs(mean - 0.5) / 0.5 < 0.04, `B=${b}: mean ${mean}`);
      assert.ok(Math.abs(cv - 1 / Math.sqrt(b)) / (1 / Math.sqrt(b)) < 0.06, `B=${b}: cv ${cv}`);
    }
    const g = stats(Array.from({ length: 20_000 }, ((rng) => () => gamma(rng, 3, 2))(createRng(5))));
    assert.ok(Math.abs(g.mean - 6) / 6 < 0.03);
  });

  test('a normalized schedule is increasing and ends exactly at n / rate; inf sends everything at 0', () => {
    const times = arrivalSchedule(64, { requestRate: 8 }, createRng(1));
    assert.equal(times.length, 64);
    assert.ok(Math.abs(times.at(-1)! - 8000) < 1e-6);
    assert.ok(times.every((t, i) => i === 0 || t >= times[i - 1]!));
    assert.ok(times[0]! > 0);
    assert.deepEqual(arrivalSchedule(64, { requestRate: 8 }, createRng(1)), times);
    assert.deepEqual(arrivalSchedule(3, { requestRate: Infinity }, createRng(1)), [0, 0, 0]);
    assert.throws(() => arrivalSchedule(3, { requestRate: 0 }, createRng(1)));
  });
});

describe('concurrency', () => {
  test('the semaphore hands slots over in order', async () => {
    const s = new Semaphore(1);
    const order: number[] = [];
    await s.acquire();
    const waiters = [1, 2].map((i) => s.acquire().then(() => order.push(i)));
    s.release();
    await waiters[0];
    s.release();
    await waiters[1];
    assert.deepEqual(order, [1, 2]);
    assert.throws(() => new Semaphore(0));
  });

  test('max concurrency bounds requests in flight; no limit runs them all at once', async () => {
    const task = () => new Promise<number>((r) => setTimeout(() => r(1), 15));
    const limited = await runLoad({ schedule: new Array(8).fill(0), maxConcurrency: 2 }, task);
    assert.equal(limited.peakConcurrency, 2);
    assert.equal(limited.results.length, 8);
    assert.ok(limited.durationMs >= 4 * 15 - 8, `took ${limited.durationMs} ms`);
    const open = await runLoad({ schedule: new Array(8).fill(0), maxConcurrency: null }, task);
    assert.equal(open.peakConcurrency, 8);
  });

  test('requests start at their arrival times; the start time given to a task is after its slot', async () => {
    const starts: number[] = [];
    const run = await runLoad({ schedule: [0, 40, 80], maxConcurrency: null }, async (_i, at) => {
      starts.push(at);
    });
    const rel = starts.map((t) => t - run.startMs);
    assert.ok(rel[1]! >= 39 && rel[2]! >= 79, `starts ${rel}`);
    assert.ok(run.durationMs >= 79);
  });
});
