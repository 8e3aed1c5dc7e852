// BrierLM of a CALM bundle: teacher forcing over each window, then two chunks sampled from the
// energy head at every position, through the engine's own sampler path (drawChunks). Brier-n
// compares the first n tokens of each sampled chunk with the text (n <= 4 <= K).
import { drawChunks, type ChunkDraw } from '../engine/chunk-draws.js';
import type { PromptPolicy } from '../engine/prompt.js';
import type { BundleManifest } from '../model/bundle.js';
import { ModelRunner } from '../model/runner.js';
import type { Sessions } from '../model/sessions.js';
import { type ChunkSamplerSettings, createChunkSampler } from '../sampling/factory.js';
import { BRIER_ORDERS, BrierAccumulator, type BrierSummary, twoSampleTerms } from './brier.js';
import type { EvalWindow, PositionMode } from './corpus.js';
import { RowCache } from './rows.js';
import { positionStream } from './streams.js';

export interface CalmEvalOptions {
  seed: number;
  positions: PositionMode;
  promptPolicy: PromptPolicy;
  sampling: ChunkSamplerSettings;
  /** windows per teacher-forced backbone call */
  batchWindows: number;
}

/** A context whose next chunk is predicted: window, position p (tokens [0, p) seen) and the backbone's hidden state. */
interface Context {
  window: EvalWindow;
  position: number;
  hidden: Float32Array;
}

/** Head samples per head + decoder call when positions are sampled together. */
const SAMPLES_PER_CALL = 8192;

export class CalmEvaluator {
  private readonly k: number;
  private readonly d: number;
  private readonly pad: number;
  private readonly kv: RowCache;
  private readonly runner: ModelRunner;
  /** two-sample terms by p mod K: 0 is the aligned positions, the others need the prompt policy */
  readonly byOffset: BrierAccumulator[];

  constructor(manifest: BundleManifest, sessions: Sessions, private readonly o: CalmEvalOptions, block: number) {
    this.k = manifest.patch_size;
    this.d = manifest.hidden_size;
    this.pad = manifest.special_tokens.pad;
    const positions = block / this.k + 1; // +1: a left-padded window spans one more chunk
    // pad policy, unaligned positions: one extra row per chunk of a window holds a copy of its prefix
    const rows = o.batchWindows + positions;
    const geometry = { layers: manifest.num_layers, kvHeads: manifest.num_kv_heads, headDim: manifest.head_dim, dtype: manifest.dtype };
    this.kv = new RowCache(geometry, rows, positions);
    this.runner = new ModelRunner(manifest, sessions, this.kv.pool);
    this.byOffset = Array.from({ length: this.k }, () => new BrierAccumulator(BRIER_ORDERS));
  }

  /** All positions scored so far. */
  summary(): BrierSummary {
    return BrierAccumulator.merged(BRIER_ORDERS, this.byOffset).summary();
  }

  /** Scores a batch of at most batchWindows windows. */
  async addWindows(windows: readonly EvalWindow[]): Promise<void> {
    const contexts = await this.alignedContexts(windows, 0);
    for (let offset = 1; this.o.positions === 'all' && offset < this.k; offset++) {
      if (this.o.promptPolicy === 'left') {
        contexts.push(...(await this.alignedContexts(windows, this.k - offset)));
      } else {
        // reads cache rows 0..B-1 as the aligned pass left them (a left-padded pass would overwrite them)
        for (let b = 0; b < windows.length; b++) contexts.push(...(await this.rightPaddedContexts(windows[b]!, b, offset)));
      }
    }
    await this.score(contexts);
  }

  /**
   * One teacher-forced pass over the windows, each preceded by `leftPad` PAD tokens; the hidden
   * state after chunk j sees tokens [0, (j + 1)K - leftPad) of the window.
   */
  private async alignedContexts(windows: readonly EvalWindow[], leftPad: number): Promise<Context[]> {
    const k = this.k;
    const lengths = windows.map((w) => Math.floor((w.tokens.length + leftPad) / k));
    const newLen = Math.max(...lengths);
    const ids = new BigInt64Array(windows.length * newLen * k).fill(BigInt(this.pad));
    windows.forEach((w, b) => {
      const base = b * newLen * k + leftPad;
      for (let i = 0; i < lengths[b]! * k - leftPad; i++) ids[base + i] = BigInt(w.tokens[i]!);
    });
    const rows = windows.map((_, b) => b);
    for (const row of rows) this.kv.reset(row);
    const hidden = await this.runner.backbone(this.kv.batch(rows, ids, newLen, windows.map(() => 0), lengths));
    const out: Context[] = [];
    windows.forEach((w, b) => {
      for (let j = 0; j < lengths[b]!; j++) {
        const position = (j + 1) * k - leftPad;
        if (position < 1 || position + k > w.tokens.length) continue;
        const at = (b * newLen + j) * this.d;
        out.push({ window: w, position, hidden: hidden.slice(at, at + this.d) });
      }
    });
    return out;
  }

  /**
   * The authors' policy for a context of jK + offset tokens: the j whole chunks (already in cache
   * row `row` from the aligned pass) plus a last chunk of `offset` tokens right-padded with PAD.
   * Each context gets its own cache row with a copy of the j-chunk prefix.
   */
  private async rightPaddedContexts(w: EvalWindow, row: number, offset: number): Promise<Context[]> {
    const k = this.k;
    const first = this.o.batchWindows;
    const positions: number[] = [];
    for (let j = 0; j * k + offset + k <= w.tokens.length; j++) positions.push(j * k + offset);
    const ids = new BigInt64Array(positions.length * k).fill(BigInt(this.pad));
    const pastLen = positions.map((p, i) => {
      const j = (p - offset) / k;
      this.kv.fork(row, first + i, j);
      for (let t = 0; t < offset; t++) ids[i * k + t] = BigInt(w.tokens[j * k + t]!);
      return j;
    });
    const rows = positions.map((_, i) => first + i);
    const hidden = await this.runner.backbone(this.kv.batch(rows, ids, 1, pastLen, positions.map(() => 1)));
    return positions.map((position, i) => ({ window: w, position, hidden: hidden.slice(i * this.d, (i + 1) * this.d) }));
  }

  /** Two independent samples per context; each sample has its own stream, so batching cannot change them. */
  private async score(contexts: readonly Context[]): Promise<void> {
    const k = this.k;
    const probe = createChunkSampler(k, this.o.sampling);
    const perContext = 2 * Math.max(1, probe.wanted());
    const group = Math.max(1, Math.floor(SAMPLES_PER_CALL / perContext));
    for (let start = 0; start < contexts.length; start += group) {
      const slice = contexts.slice(start, start + group);
      const items: ChunkDraw[] = slice.flatMap((c) =>
        [0, 1].map((sample) => ({
          hidden: c.hidden,
          sampler: createChunkSampler(k, this.o.sampling),
          rng: positionStream(this.o.seed, c.window.index, c.position, sample),
        })),
      );
      const { outcomes } = await drawChunks(this.runner, items);
      const chunk = (i: number): Int32Array => {
        const o = outcomes[i];
        if (o instanceof Error) throw o;
        return o!.chunk; // unlimited draws: every item decides
      };
      slice.forEach((c, i) => {
        const target = c.window.tokens.subarray(c.position, c.position + k);
        const terms = twoSampleTerms(chunk(2 * i), chunk(2 * i + 1), target, BRIER_ORDERS);
        this.byOffset[c.position % k]!.add(terms);
      });
    }
  }
}
