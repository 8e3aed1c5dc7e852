/**
 * ln Gamma(x) for x > 0 (Lanczos, g = 7, nine terms; relative error about 1e-15).
 * The batch cascade needs binomial weights C(c, m) with c in the thousands and, for non-integer
 * 1/T, non-integer m: their logarithms are differences of lgamma. Node's Math has no lgamma.
 */
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

export function lgamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`lgamma is defined here for x > 0 only, got ${x}`);
  // Reflection keeps the series in the range where it is accurate.
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lgamma(1 - x);
  const z = x - 1;
  const sum =
    0.99999999999980993 +
    676.5203681218851 / (z + 1) -
    1259.1392167224028 / (z + 2) +
    771.32342877765313 / (z + 3) -
    176.61502916214059 / (z + 4) +
    12.507343278686905 / (z + 5) -
    0.13857109526572012 / (z + 6) +
    9.9843695780195716e-6 / (z + 7) +
    1.5056327351493116e-7 / (z + 8);
  const t = z + 7.5;
  return HALF_LOG_2PI + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}
