import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { drawToken, tokenProbabilities } from '../../src/eval/ar.js';
import { BrierAccumulator, brierLM, probabilityTerms, twoSampleTerms } from '../../src/eval/brier.js';
import { documentWindows, evalPositions, reconstructionChunks } from '../../src/eval/corpus.js';
import { formatDuration, ProgressBar } from '../../src/eval/progress.js';
import { Rng } from '../../src/sampling/rng.js';

// A stand-in for a model whose Brier score is known in closed form: four independent tokens, the
// t-th from the categorical q[t] (the prediction), while the text's tokens come from r[t] (the truth).
// For outcomes of the first n tokens: E[Brier-n] = 2 prod_t sum_v r_t(v) q_t(v) - prod_t sum_v q_t(v)^2.
const Q = [
  [0.5, 0.2, 0.2, 0.1],
  [0.7, 0.1, 0.1, 0.1],
  [0.25, 0.25, 0.25, 0.25],
  [0.4, 0.4, 0.1, 0.1],
];
const R = [
  [0.4, 0.3, 0.2, 0.1],
  [0.6, 0.2, 0.1, 0.1],
  [0.1, 0.2, 0.3, 0.4],
  [0.5, 0.3, 0.1, 0.1],
];

function draw(p: readonly number[], rng: Rng): number {
  return drawToken(Float64Array.from(p), p.length, rng);
}

function truth(n: number): number {
  let hit = 1;
  let collision = 1;
  for (let t = 0; t < n; t++) {
    hit *= Q[t]!.reduce((s, q, v) => s + q * R[t]![v]!, 0);
    collision *= Q[t]!.reduce((s, q) => s + q * q, 0);
  }
  return 2 * hit - collision;
}

function prob(dist: number[][], x: ArrayLike<number>, n: number): number {
  let p = 1;
  for (let t = 0; t < n; t++) p *= dist[t]![x[t]!]!;
  return p;
}

describe('Brier estimators against a closed-form stand-in', () => {
  const positions = 20_000;
  const rng = new Rng(7);
  const twoSample = new BrierAccumulator(4);
  const fromProbs = new BrierAccumulator(4);
  for (let i = 0; i < positions; i++) {
    const y = R.map((r) => draw(r, rng));
    const x1 = Q.map((q) => draw(q, rng));
    const x2 = Q.map((q) => draw(q, rng));
    twoSample.add(twoSampleTerms(x1, x2, y, 4));
    // as the AR evaluator does: exact P(y), exact collision for n = 1, mean P(x) of the two samples after
    const pY = [1, 2, 3, 4].map((n) => prob(Q, y, n));
    const coll = [1, 2, 3, 4].map((n) => (n === 1 ? Q[0]!.reduce((s, q) => s + q * q, 0) : (prob(Q, x1, n) + prob(Q, x2, n)) / 2));
    fromProbs.add(probabilityTerms(pY, coll, 4));
  }

  for (const [name, acc] of [['two-sample', twoSample], ['probability form', fromProbs]] as const) {
    test(`${name}: every Brier-n lies within 4 standard errors of the truth`, () => {
      const s = acc.summary();
      assert.equal(s.positions, positions);
      for (let n = 1; n <= 4; n++) {
        const err = Math.abs(s.brier[n - 1]! - truth(n));
        assert.ok(s.se[n - 1]! > 0 && s.se[n - 1]! < 0.02, `se ${s.se[n - 1]}`);
        assert.ok(err < 4 * s.se[n - 1]!, `Brier-${n}: ${s.brier[n - 1]} vs ${truth(n)} (se ${s.se[n - 1]})`);
      }
    });
  }

  test('the probability form has the smaller standard error', () => {
    const a = twoSample.summary();
    const b = fromProbs.summary();
    for (let n = 0; n < 4; n++) assert.ok(b.se[n]! < a.se[n]!, `n=${n + 1}: ${b.se[n]} vs ${a.se[n]}`);
  });

  test('a model that ignores the text scores below one that predicts it', () => {
    const wrong = new BrierAccumulator(1);
    const right = new BrierAccumulator(1);
    const r2 = new Rng(3);
    for (let i = 0; i < 5000; i++) {
      const y = [draw(R[0]!, r2)];
      wrong.add(twoSampleTerms([draw([0.1, 0.1, 0.1, 0.7], r2)], [draw([0.1, 0.1, 0.1, 0.7], r2)], y, 1));
      right.add(twoSampleTerms([draw(R[0]!, r2)], [draw(R[0]!, r2)], y, 1));
    }
    assert.ok(right.summary().brier[0]! > wrong.summary().brier[0]! + 0.05);
  });
});

describe('Brier terms', () => {
  test('a perfect predictor scores the maximum: 1 at every n, BrierLM 100', () => {
    const acc = new BrierAccumulator(4);
    for (let i = 0; i < 10; i++) acc.add(twoSampleTerms([i, 1, 2, 3], [i, 1, 2, 3], [i, 1, 2, 3], 4));
    const s = acc.summary();
    assert.deepEqual(s.brier, [1, 1, 1, 1]);
    assert.deepEqual(s.se, [0, 0, 0, 0]);
    assert.equal(s.brierLM, 100);
  });

  test('Brier-n scores the first n tokens of the chunk as one outcome', () => {
    // both samples right on tokens 1-2, sample 2 wrong from token 3, sample 1 wrong at token 4
    assert.deepEqual(twoSampleTerms([5, 6, 7, 9], [5, 6, 0, 8], [5, 6, 7, 8], 4), [1, 1, 1, 0]);
    // two identical wrong samples: a confident miss costs
    assert.deepEqual(twoSampleTerms([1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2], 4), [-1, -1, -1, -1]);
    // different samples, one right: 1 + 0 - 0
    assert.deepEqual(twoSampleTerms([2, 0, 0, 0], [3, 0, 0, 0], [2, 0, 0, 0], 4), [1, 1, 1, 1]);
  });

  test('merged accumulators give the figures of all their positions', () => {
    const rng = new Rng(5);
    const all = new BrierAccumulator(2);
    const parts = [new BrierAccumulator(2), new BrierAccumulator(2), new BrierAccumulator(2)];
    for (let i = 0; i < 300; i++) {
      const terms = [rng.nextInt(3) - 1, rng.nextInt(3) - 1];
      all.add(terms);
      parts[i % 3]!.add(terms);
    }
    const merged = BrierAccumulator.merged(2, parts).summary();
    const direct = all.summary();
    assert.equal(merged.positions, 300);
    for (let n = 0; n < 2; n++) {
      assert.ok(Math.abs(merged.brier[n]! - direct.brier[n]!) < 1e-12);
      assert.ok(Math.abs(merged.se[n]! - direct.se[n]!) < 1e-12);
    }
  });

  test('BrierLM is 100 x the geometric mean, and 0 when an estimate is not positive', () => {
    assert.ok(Math.abs(brierLM([0.5, 0.2, 0.1, 0.05]) - 100 * (0.5 * 0.2 * 0.1 * 0.05) ** 0.25) < 1e-9);
    assert.equal(brierLM([0.5, 0.2, 0.1, 0]), 0);
    assert.equal(brierLM([0.5, 0.2, -0.01, 0.1]), 0);
  });
});

describe('evaluation positions and windows', () => {
  test('aligned positions are the chunk boundaries whose next chunk lies in the window', () => {
    assert.deepEqual(evalPositions(16, 4, 'aligned'), [4, 8, 12]);
    assert.deepEqual(evalPositions(16, 4, 'all'), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.deepEqual(evalPositions(7, 4, 'aligned'), []);
  });

  test('windows are BOS + document, cut to the block and to whole chunks; short ones are dropped', () => {
    const doc = Array.from({ length: 21 }, (_, i) => 100 + i);
    const w = documentWindows([doc, [7, 8, 9]], 1, 4, 12);
    assert.deepEqual(w.map((x) => Array.from(x.tokens)), [
      [1, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110],
      [111, 112, 113, 114, 115, 116, 117, 118],
    ]);
    assert.deepEqual(w.map((x) => x.index), [0, 1]);
    assert.equal(documentWindows([doc], null, 4, 12)[0]!.tokens[0], 100);
    assert.throws(() => documentWindows([doc], 1, 4, 10), /multiple of K/);
  });

  test('reconstruction chunks are document + EOS, PAD-filled to whole chunks', () => {
    assert.deepEqual(Array.from(reconstructionChunks([[5, 6, 7], [8, 9, 10, 11]], 4, 2, 0)), [5, 6, 7, 2, 8, 9, 10, 11, 2, 0, 0, 0]);
  });
});

describe('token probabilities', () => {
  test('T = 0 is one-hot on the first largest logit; T scales the logits', () => {
    const out = new Float64Array(3);
    assert.deepEqual(Array.from(tokenProbabilities(Float32Array.of(1, 3, 3), 0, out)), [0, 1, 0]);
    const p = tokenProbabilities(Float32Array.of(0, Math.log(3)), 1, out);
    assert.ok(Math.abs(p[1]! - 0.75) < 1e-6);
    const half = tokenProbabilities(Float32Array.of(0, Math.log(3)), 0.5, out);
    assert.ok(Math.abs(half[1]! - 0.9) < 1e-6);
  });

  test('drawToken follows the probabilities', () => {
    const rng = new Rng(11);
    const counts = [0, 0, 0];
    const p = Float64Array.of(0.2, 0, 0.8);
    for (let i = 0; i < 20_000; i++) counts[drawToken(p, 3, rng)]!++;
    assert.equal(counts[1], 0);
    assert.ok(Math.abs(counts[2]! / 20_000 - 0.8) < 0.015);
  });
});

describe('progress', () => {
  test('durations read as m:ss or h:mm:ss', () => {
    assert.equal(formatDuration(65), '1:05');
    assert.equal(formatDuration(3725), '1:02:05');
    assert.equal(formatDuration(NaN), '?');
  });

  test('without a terminal: a start line, a line per tenth with the ETA, and a summary', () => {
    const lines: string[] = [];
    const bar = new ProgressBar({ stderr: (s) => void lines.push(s), stderrIsTTY: false }, 'calm-k4 brier', 20, 'windows');
    for (let i = 0; i < 20; i++) bar.advance(1);
    bar.end();
    assert.equal(lines.length, 12);
    assert.match(lines[0]!, /^calm-k4 brier: 0\/20 windows, 0:00 elapsed, ETA \?/);
    assert.match(lines[5]!, /^calm-k4 brier: 10\/20 windows, \d+:\d\d elapsed, ETA \d+:\d\d/);
    assert.match(lines[11]!, /^calm-k4 brier: 20 windows in \d+:\d\d/);
  });
});
