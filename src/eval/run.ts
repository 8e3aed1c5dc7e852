// `calm eval`: loads a bundle, reads and tokenizes the corpus, runs the metric with progress,
// and returns every figure as one report (the command prints it as a table or as JSON).
import { availableParallelism } from 'node:os';
import { ENGINE_DEFAULTS } from '../engine/config.js';
import type { PromptPolicy } from '../engine/prompt.js';
import { type Bundle, loadBundle } from '../model/bundle.js';
import { ModelRunner } from '../model/runner.js';
import { type Device, openSessions } from '../model/sessions.js';
import { TextTokenizer } from '../model/tokenizer.js';
import { probeWebGpu, WebGpuUnavailable } from '../model/webgpu.js';
import type { ChunkSamplerKind } from '../sampling/factory.js';
import { readJsonlTexts } from '../text/jsonl.js';
import { ArEvaluator } from './ar.js';
import { type BrierAccumulator, BRIER_ORDERS, type BrierSummary } from './brier.js';
import { CalmEvaluator } from './calm.js';
import { documentWindows, type PositionMode, reconstructionChunks } from './corpus.js';
import { ProgressBar, type ProgressIO } from './progress.js';
import { reconstructBatch, type ReconstructionCounts, reconstructionSummary } from './reconstruction.js';

export type EvalMetric = 'brier' | 'reconstruction';

export interface EvalOptions {
  data: string;
  modelDir: string;
  metric: EvalMetric;
  /** evaluate the first N documents only; 0: all */
  maxDocs: number;
  seed: number;
  /** window length in tokens; 0: the smaller of 256 (the training length) and the model's context */
  block: number;
  positions: PositionMode;
  promptPolicy: PromptPolicy;
  temperature: number;
  sampler: ChunkSamplerKind;
  poolSize: number;
  exactMaxDraws: number;
  device: Device;
  threads: number;
  /** windows per teacher-forced CALM backbone call */
  batchWindows: number;
}

export const EVAL_DEFAULTS = {
  metric: 'brier',
  maxDocs: 0,
  seed: 0,
  block: 0,
  positions: 'aligned',
  promptPolicy: ENGINE_DEFAULTS.promptPolicy,
  temperature: 1,
  sampler: 'batch',
  poolSize: 200,
  exactMaxDraws: 4096,
  device: 'cpu',
  threads: 0,
  batchWindows: 16,
} as const satisfies Partial<EvalOptions>;

/** Brier-1..4 as brier1..brier4 with brier1_se..: the same keys as models/calmtk/evaluate.py. */
export type BrierFigures = Record<string, number>;

export interface EvalReport {
  model: string;
  kind: 'calm' | 'ar';
  metric: EvalMetric;
  data: string;
  documents: number;
  settings: Record<string, string | number>;
  elapsed_s: number;
  windows?: number;
  /** the two-sample estimator (CALM and AR) */
  brier?: BrierFigures;
  /** --positions all: the two-sample figures of the positions p with p mod 4 = offset (0: the aligned ones) */
  brier_by_offset?: (BrierFigures & { offset: number })[];
  /** AR only: the estimator from the model's probabilities */
  brier_exact?: BrierFigures;
  reconstruction?: { token_accuracy: number; token_accuracy_se: number; chunk_accuracy: number; chunk_accuracy_se: number; tokens: number; chunks: number };
}

export class EvalError extends Error {}

export function brierFigures(s: BrierSummary): BrierFigures {
  const out: BrierFigures = { brierlm: s.brierLM };
  s.brier.forEach((b, n) => {
    out[`brier${n + 1}`] = b;
    out[`brier${n + 1}_se`] = s.se[n]!;
  });
  out.positions = s.positions;
  return out;
}

function byOffset(accumulators: readonly BrierAccumulator[]): (BrierFigures & { offset: number })[] {
  return accumulators.map((a, offset) => ({ offset, ...brierFigures(a.summary()) }));
}

const ROLLOUT_CACHE_BYTES = 256 * 2 ** 20;
const RECONSTRUCTION_BATCH = 4096;

/** Windows are cut in chunks of K for CALM and of 4 tokens for a token model, so both score the same positions. */
function windowUnit(bundle: Bundle): number {
  return bundle.manifest.kind === 'calm' ? bundle.manifest.patch_size : BRIER_ORDERS;
}

function windowLength(o: EvalOptions, bundle: Bundle): number {
  const m = bundle.manifest;
  const k = windowUnit(bundle);
  const block = o.block > 0 ? o.block : Math.min(256, m.context_tokens - (m.context_tokens % k));
  if (block % k !== 0 || block < 2 * k) throw new EvalError(`--block must be a multiple of K = ${k} of at least ${2 * k}, got ${block}`);
  if (block > m.context_tokens) throw new EvalError(`--block ${block} exceeds the model's context of ${m.context_tokens} tokens`);
  return block;
}

export async function runEval(o: EvalOptions, io: ProgressIO | null): Promise<EvalReport> {
  const started = performance.now();
  const bundle = loadBundle(o.modelDir);
  const m = bundle.manifest;
  const k = m.patch_size;
  if (o.metric === 'reconstruction' && m.kind !== 'calm') throw new EvalError(`--metric reconstruction needs a CALM bundle (one with an autoencoder); ${m.name} is kind ${m.kind}`);
  if (m.kind === 'calm' && !(o.temperature >= 0 && o.temperature <= 1)) throw new EvalError(`--temperature must be between 0 and 1 for CALM (likelihood-free samplers sharpen, never flatten), got ${o.temperature}`);
  if (m.kind === 'ar' && !(o.temperature >= 0 && o.temperature <= 2)) throw new EvalError(`--temperature must be between 0 and 2 for a token model, got ${o.temperature}`);
  if (o.metric === 'brier' && m.kind === 'calm' && k < BRIER_ORDERS) {
    throw new EvalError(`BrierLM scores the next ${BRIER_ORDERS} tokens, which this evaluator reads from one chunk; ${m.name} has K = ${k}`);
  }
  const block = windowLength(o, bundle);
  let texts: string[];
  try {
    texts = readJsonlTexts(o.data);
  } catch (err) {
    throw new EvalError((err as Error).message);
  }
  if (o.maxDocs > 0) texts = texts.slice(0, o.maxDocs);
  const tokenizer = new TextTokenizer(bundle.paths.tokenizer!, m.special_tokens);
  const documents = texts.map((t) => tokenizer.encode(t));
  if (o.device === 'webgpu') {
    try {
      await probeWebGpu();
    } catch (err) {
      if (err instanceof WebGpuUnavailable) throw new EvalError(err.message);
      throw err;
    }
  }
  // Evaluation's calls are all large (whole windows, thousands of samples): every core, no spinning.
  const threads = o.threads > 0 ? o.threads : availableParallelism();
  const sessions = await openSessions(bundle, { device: o.device, interOpThreads: 0, intraOpThreads: threads, spinning: false }, o.metric === 'reconstruction');
  const report: EvalReport = { model: m.name, kind: m.kind, metric: o.metric, data: o.data, documents: documents.length, settings: {}, elapsed_s: 0 };
  const title = `${m.name} ${o.metric}`;

  if (o.metric === 'reconstruction') {
    const chunks = reconstructionChunks(documents, k, m.special_tokens.eos, m.special_tokens.pad);
    const total = chunks.length / k;
    const counts: ReconstructionCounts = { tokens: 0, tokensCorrect: 0, chunks: 0, chunksCorrect: 0 };
    const runner = new ModelRunner(m, sessions);
    const progress = new ProgressBar(io, title, total, 'chunks');
    for (let c = 0; c < total; c += RECONSTRUCTION_BATCH) {
      const n = Math.min(RECONSTRUCTION_BATCH, total - c);
      await reconstructBatch(runner, chunks.subarray(c * k, (c + n) * k), m.special_tokens.pad, counts);
      progress.advance(n);
    }
    progress.end();
    const r = reconstructionSummary(counts);
    report.reconstruction = {
      token_accuracy: r.tokenAccuracy, token_accuracy_se: r.tokenAccuracySe, chunk_accuracy: r.chunkAccuracy,
      chunk_accuracy_se: r.chunkAccuracySe, tokens: r.tokens, chunks: r.chunks,
    };
  } else {
    const unit = windowUnit(bundle);
    const windows = documentWindows(documents, m.add_bos ? m.special_tokens.bos : null, unit, block);
    if (windows.length === 0) throw new EvalError(`${o.data} has no document of at least ${2 * unit} tokens to evaluate`);
    report.windows = windows.length;
    report.settings = { seed: o.seed, block, positions: o.positions, temperature: o.temperature };
    const progress = new ProgressBar(io, title, windows.length, 'windows');
    if (m.kind === 'calm') {
      Object.assign(report.settings, { prompt_policy: o.promptPolicy, sampler: o.sampler, pool_size: o.poolSize });
      const sampling = { temperature: o.temperature, sampler: o.sampler, poolSize: o.poolSize, exactMaxDraws: o.exactMaxDraws };
      const calm = new CalmEvaluator(m, sessions, { seed: o.seed, positions: o.positions, promptPolicy: o.promptPolicy, sampling, batchWindows: o.batchWindows }, block);
      for (let i = 0; i < windows.length; i += o.batchWindows) {
        const batch = windows.slice(i, i + o.batchWindows);
        await calm.addWindows(batch);
        progress.advance(batch.length);
      }
      report.brier = brierFigures(calm.summary());
      if (o.positions === 'all') report.brier_by_offset = byOffset(calm.byOffset);
    } else {
      const ar = new ArEvaluator(m, sessions, { seed: o.seed, positions: o.positions, orders: BRIER_ORDERS, temperature: o.temperature, rolloutCacheBytes: ROLLOUT_CACHE_BYTES }, block);
      for (const w of windows) {
        await ar.addWindow(w);
        progress.advance(1);
      }
      report.brier = brierFigures(ar.twoSample());
      report.brier_exact = brierFigures(ar.exact.summary());
      if (o.positions === 'all') report.brier_by_offset = byOffset(ar.byOffset);
    }
    progress.end();
  }
  for (const s of Object.values(sessions)) await s.release();
  report.elapsed_s = (performance.now() - started) / 1000;
  return report;
}
