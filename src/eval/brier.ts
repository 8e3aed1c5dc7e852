// The Brier score of next-n-token prediction and BrierLM (docs/calm.md section 5, docs/quality.md).
//
// For an outcome y and a predictive distribution P, Brier(P, y) = 2 P(y) - sum_x P(x)^2 (the
// negative of the usual Brier loss, plus one: 1 for a perfect prediction). With two independent
// samples x1, x2 ~ P, 1{x1 = y} + 1{x2 = y} - 1{x1 = x2} is an unbiased estimate of it, which is
// why a model without likelihoods can be scored: it only has to sample.
//
// Brier-n scores the next n tokens as one outcome. Positions and n-grams follow the paper: for
// K = 4 the outcome is the first n tokens of the next chunk, n = 1..4.

/** BrierLM is the geometric mean of Brier-1 .. Brier-4. */
export const BRIER_ORDERS = 4;

/** The two-sample terms of one position: term[n-1] for the first n tokens. */
export function twoSampleTerms(x1: ArrayLike<number>, x2: ArrayLike<number>, y: ArrayLike<number>, orders: number): number[] {
  const terms: number[] = [];
  let hit1 = true;
  let hit2 = true;
  let same = true;
  for (let n = 0; n < orders; n++) {
    hit1 &&= x1[n] === y[n];
    hit2 &&= x2[n] === y[n];
    same &&= x1[n] === x2[n];
    terms.push(Number(hit1) + Number(hit2) - Number(same));
  }
  return terms;
}

/**
 * The terms of a model with probabilities: 2 P(y_1..n) - collision_n, where collision_n is
 * sum_x P(x_1..n)^2 or an unbiased estimate of it.
 */
export function probabilityTerms(targetProb: ArrayLike<number>, collision: ArrayLike<number>, orders: number): number[] {
  return Array.from({ length: orders }, (_, n) => 2 * targetProb[n]! - collision[n]!);
}

export interface BrierSummary {
  /** Brier-1 .. Brier-orders, the mean term over positions */
  brier: number[];
  /** standard error of each mean (positions treated as independent) */
  se: number[];
  /** 100 x the geometric mean of Brier-1..orders; 0 when any of them is not positive */
  brierLM: number;
  positions: number;
}

/** 100 x geometric mean: an estimate at or below zero (possible with two samples) gives 0. */
export function brierLM(brier: readonly number[]): number {
  if (brier.some((b) => !(b > 0))) return 0;
  return 100 * Math.exp(brier.reduce((s, b) => s + Math.log(b), 0) / brier.length);
}

/** Running sums of per-position terms; the summary gives means and standard errors. */
export class BrierAccumulator {
  private count = 0;
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;

  constructor(readonly orders: number) {
    this.sum = new Float64Array(orders);
    this.sumSq = new Float64Array(orders);
  }

  add(terms: readonly number[]): void {
    if (terms.length !== this.orders) throw new RangeError(`expected ${this.orders} terms, got ${terms.length}`);
    for (let n = 0; n < this.orders; n++) {
      this.sum[n]! += terms[n]!;
      this.sumSq[n]! += terms[n]! * terms[n]!;
    }
    this.count++;
  }

  get positions(): number {
    return this.count;
  }

  /** The accumulator of all positions of `parts` (e.g. the figures by offset, summed back). */
  static merged(orders: number, parts: readonly BrierAccumulator[]): BrierAccumulator {
    const all = new BrierAccumulator(orders);
    for (const p of parts) {
      all.count += p.count;
      for (let n = 0; n < orders; n++) {
        all.sum[n]! += p.sum[n]!;
        all.sumSq[n]! += p.sumSq[n]!;
      }
    }
    return all;
  }

  summary(): BrierSummary {
    const c = this.count;
    const brier = Array.from(this.sum, (s) => (c > 0 ? s / c : 0));
    const se = brier.map((mean, n) => {
      if (c < 2) return 0;
      const variance = Math.max(0, (this.sumSq[n]! - c * mean * mean) / (c - 1));
      return Math.sqrt(variance / c);
    });
    return { brier, se, brierLM: brierLM(brier), positions: c };
  }
}
