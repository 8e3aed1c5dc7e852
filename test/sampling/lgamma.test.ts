import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lgamma } from '../../src/sampling/lgamma.js';

test('lgamma against known values, and binomials far beyond double range', () => {
  const cases: [number, number][] = [
    [0.5, Math.log(Math.sqrt(Math.PI))],
    [1, 0],
    [2, 0],
    [1.5, Math.log(Math.sqrt(Math.PI) / 2)],
    [10, Math.log(362880)],
    // From CPython's math.lgamma:
    [0.1, 2.2527126517342055],
    [0.001, 6.907178885383854],
    [1001, 5912.128178488163],
    [5001.5, 37595.40218046748],
  ];
  for (const [x, expected] of cases) assert.ok(Math.abs(lgamma(x) - expected) <= 1e-13 * Math.max(1, Math.abs(expected)), `lgamma(${x}) = ${lgamma(x)}`);
  // Binomial weights as the cascade forms them: ln C(c, m) up to the level's common ln Gamma(m + 1).
  const logBinomial = (c: number, m: number) => lgamma(c + 1) - lgamma(m + 1) - lgamma(c - m + 1);
  assert.ok(Math.abs(Math.exp(logBinomial(10, 3)) - 120) < 1e-9);
  assert.ok(Math.abs(Math.exp(logBinomial(5000, 2)) / 12_497_500 - 1) < 1e-10);
  assert.ok(Number.isFinite(logBinomial(5000, 2500)), 'C(5000, 2500) overflows doubles, its log does not');
  assert.throws(() => lgamma(0), RangeError);
});
