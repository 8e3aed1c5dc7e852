// BrierLM of the token-level baseline, scored like CALM: at each position, two K-token rollouts
// sampled from the model (the two-sample estimator), plus the form its probabilities allow:
// 2 P(y_1..n) - sum_x P(x_1..n)^2, with P(y) exact under teacher forcing, the collision sum
// exact for n = 1 and, for n > 1, estimated without bias by the mean of P(x) over the two
// rollouts (sum_x P(x)^2 = E_x~P[P(x)]; the exact sum would need V^(n-1) model calls).
import { bytesPerPosition } from '../model/kv-pool.js';
import type { BundleManifest } from '../model/bundle.js';
import { ModelRunner } from '../model/runner.js';
import type { Sessions } from '../model/sessions.js';
import type { Rng } from '../sampling/rng.js';
import { BrierAccumulator, type BrierSummary, probabilityTerms, twoSampleTerms } from './brier.js';
import { type EvalWindow, evalPositions, type PositionMode } from './corpus.js';
import { RowCache } from './rows.js';
import { positionStream } from './streams.js';

export interface ArEvalOptions {
  seed: number;
  positions: PositionMode;
  /** the outcome length scored (the paper's K = 4, to compare with CALM) */
  orders: number;
  temperature: number;
  /** memory for the rollouts' copies of the window's KV cache */
  rolloutCacheBytes: number;
}

/** softmax(logits / T) into `out`; T = 0 puts all mass on the first largest logit. */
export function tokenProbabilities(logits: Float32Array, temperature: number, out: Float64Array): Float64Array {
  let max = -Infinity;
  let best = 0;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! > max) {
      max = logits[i]!;
      best = i;
    }
  }
  if (temperature === 0) {
    out.fill(0, 0, logits.length);
    out[best] = 1;
    return out;
  }
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp((logits[i]! - max) / temperature);
    out[i] = e;
    total += e;
  }
  for (let i = 0; i < logits.length; i++) out[i]! /= total;
  return out;
}

/** Inversion sampling from probabilities that sum to one. */
export function drawToken(probs: Float64Array, vocab: number, rng: Rng): number {
  let u = rng.next();
  for (let i = 0; i < vocab; i++) {
    u -= probs[i]!;
    if (u < 0) return i;
  }
  // rounding left u a hair above zero: the last token with mass
  for (let i = vocab - 1; i > 0; i--) if (probs[i]! > 0) return i;
  return 0;
}

function sumSquares(probs: Float64Array, vocab: number): number {
  let s = 0;
  for (let i = 0; i < vocab; i++) s += probs[i]! * probs[i]!;
  return s;
}

export class ArEvaluator {
  private readonly vocab: number;
  private readonly kv: RowCache;
  private readonly runner: ModelRunner;
  /** rollout rows per backbone call (two per position) */
  private readonly groupRows: number;
  private readonly probs: Float64Array;
  readonly exact: BrierAccumulator;
  /** two-sample terms by p mod 4, to set beside CALM's */
  readonly byOffset: BrierAccumulator[];

  constructor(manifest: BundleManifest, sessions: Sessions, private readonly o: ArEvalOptions, block: number) {
    this.vocab = manifest.vocab_size;
    const geometry = { layers: manifest.num_layers, kvHeads: manifest.num_kv_heads, headDim: manifest.head_dim, dtype: manifest.dtype };
    const rows = Math.floor(o.rolloutCacheBytes / (block * bytesPerPosition(geometry))) - 1;
    this.groupRows = Math.max(2, rows - (rows % 2));
    this.kv = new RowCache(geometry, 1 + this.groupRows, block);
    this.runner = new ModelRunner(manifest, sessions, this.kv.pool);
    this.probs = new Float64Array(this.vocab);
    this.exact = new BrierAccumulator(o.orders);
    this.byOffset = Array.from({ length: o.orders }, () => new BrierAccumulator(o.orders));
  }

  /** The two-sample figures of all positions scored so far. */
  twoSample(): BrierSummary {
    return BrierAccumulator.merged(this.o.orders, this.byOffset).summary();
  }

  async addWindow(w: EvalWindow): Promise<void> {
    const { orders, temperature } = this.o;
    const v = this.vocab;
    const len = w.tokens.length;
    const ids = BigInt64Array.from(w.tokens, (t) => BigInt(t));
    const logits = await this.runner.backbone(this.kv.batch([0], ids, len, [0], [len]));
    // logits row i predicts token i + 1: its probability of the text's token, and sum p^2
    const targetProb = new Float64Array(len - 1);
    const collision = new Float64Array(len - 1);
    for (let i = 0; i + 1 < len; i++) {
      tokenProbabilities(logits.subarray(i * v, (i + 1) * v), temperature, this.probs);
      targetProb[i] = this.probs[w.tokens[i + 1]!]!;
      collision[i] = sumSquares(this.probs, v);
    }
    const positions = evalPositions(len, orders, this.o.positions);
    for (let start = 0; start < positions.length; start += this.groupRows / 2) {
      const group = positions.slice(start, start + this.groupRows / 2);
      const { tokens, probs } = await this.rollouts(w, group, logits);
      group.forEach((p, i) => {
        const target = w.tokens.subarray(p, p + orders);
        const a = tokens.subarray(2 * i * orders, (2 * i + 1) * orders);
        const b = tokens.subarray((2 * i + 1) * orders, (2 * i + 2) * orders);
        this.byOffset[p % orders]!.add(twoSampleTerms(a, b, target, orders));
        const pTarget: number[] = [];
        const pCollision: number[] = [];
        let py = 1;
        let pa = 1;
        let pb = 1;
        for (let n = 0; n < orders; n++) {
          py *= targetProb[p - 1 + n]!;
          pa *= probs[2 * i * orders + n]!;
          pb *= probs[(2 * i + 1) * orders + n]!;
          pTarget.push(py);
          pCollision.push(n === 0 ? collision[p - 1]! : (pa + pb) / 2);
        }
        this.exact.add(probabilityTerms(pTarget, pCollision, orders));
      });
    }
  }

  /**
   * Two rollouts of `orders` tokens per position, each in its own cache row holding a copy of
   * the window's prefix. Returns the tokens and the probability the model gave each of them.
   */
  private async rollouts(w: EvalWindow, positions: readonly number[], windowLogits: Float32Array): Promise<{ tokens: Int32Array; probs: Float64Array }> {
    const { orders, temperature, seed } = this.o;
    const v = this.vocab;
    const rows = 2 * positions.length;
    const tokens = new Int32Array(rows * orders);
    const probs = new Float64Array(rows * orders);
    const rngs: Rng[] = [];
    const pastLen: number[] = [];
    for (let r = 0; r < rows; r++) {
      const p = positions[r >> 1]!;
      rngs.push(positionStream(seed, w.index, p, r & 1));
      this.kv.fork(0, 1 + r, p);
      pastLen.push(p);
      // both rollouts of a position draw their first token from the same distribution
      if (r % 2 === 0) tokenProbabilities(windowLogits.subarray((p - 1) * v, p * v), temperature, this.probs);
      const x = drawToken(this.probs, v, rngs[r]!);
      tokens[r * orders] = x;
      probs[r * orders] = this.probs[x]!;
    }
    for (let t = 1; t < orders; t++) {
      const ids = BigInt64Array.from({ length: rows }, (_, r) => BigInt(tokens[r * orders + t - 1]!));
      const rowIds = Array.from({ length: rows }, (_, r) => 1 + r);
      const logits = await this.runner.backbone(this.kv.batch(rowIds, ids, 1, pastLen.map((p) => p + t - 1), pastLen.map(() => 1)));
      for (let r = 0; r < rows; r++) {
        tokenProbabilities(logits.subarray(r * v, (r + 1) * v), temperature, this.probs);
        const x = drawToken(this.probs, v, rngs[r]!);
        tokens[r * orders + t] = x;
        probs[r * orders + t] = this.probs[x]!;
      }
    }
    return { tokens, probs };
  }
}
