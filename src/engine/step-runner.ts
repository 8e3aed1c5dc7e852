// The run phase of a step: the plan's backbone calls (one for the decoding sequences, one for
// the prefill pieces), then sampling for every sequence whose known positions are all computed.
// A failing model call fails exactly the sequences it carried; the others go on.
import type { BundleManifest } from '../model/bundle.js';
import type { BackboneBatch, ModelRunner } from '../model/runner.js';
import type { PoolConfidence, SampleResult } from '../sampling/chunks.js';
import { SoftmaxSampler } from '../sampling/softmax.js';
import { type ChunkDraw, type DrawLimits, drawChunks } from './chunk-draws.js';
import type { StepPlan } from './scheduler.js';
import type { Sequence } from './sequence.js';

/** Draws a step gives pooled samplers however busy it is, so that they always progress. */
const MIN_POOLED_DRAWS = 16;

export interface Sampled {
  seq: Sequence;
  chunk: Int32Array;
  confidence?: PoolConfidence;
}

export interface Failure {
  seqs: Sequence[];
  error: Error;
}

export interface RunResult {
  sampled: Sampled[];
  failures: Failure[];
  draws: number;
  fallbacks: number;
  /** JS time choosing chunks or tokens, onnxruntime excluded */
  samplerMs: number;
}

/**
 * Test hooks, keyed by a token id in a backbone call's input: `failOnToken` makes that call
 * throw (a step fault), `crashOnToken` kills the engine thread (an uncaught exception), and
 * `wedgeOnToken` blocks it for good, as a hung native call would.
 */
export interface FaultInjection {
  failOnToken?: number;
  crashOnToken?: number;
  wedgeOnToken?: number;
}

export class StepRunner {
  private readonly softmax = new SoftmaxSampler();
  private readonly width: number;
  /** moving average of the head + decoder time of one sample */
  private msPerDraw = 0;
  /** test faults configured (src/engine/config.ts `faults`): checked per call only then */
  private readonly faulty: boolean;

  constructor(
    private readonly runner: ModelRunner,
    private readonly manifest: BundleManifest,
    private readonly blockSize: number,
    private readonly limits: DrawLimits,
    /** called after a backbone call wrote `positions` new positions of `seq` */
    private readonly written: (seq: Sequence, positions: number) => void,
    private readonly faults: FaultInjection = {},
  ) {
    this.width = manifest.kind === 'calm' ? manifest.hidden_size : manifest.vocab_size;
    this.faulty = Object.values(faults).some((v) => v !== undefined);
  }

  async run(plan: StepPlan): Promise<RunResult> {
    const failures: Failure[] = [];
    const toSample: { seq: Sequence; out: Float32Array | null }[] = plan.drawing.map((seq) => ({ seq, out: null }));
    const calls: [Sequence[], number[]][] = [
      [plan.decode, plan.decode.map(() => 1)],
      [plan.prefill.map((p) => p.seq), plan.prefill.map((p) => p.positions)],
    ];
    for (const [seqs, counts] of calls) {
      if (seqs.length === 0) continue;
      try {
        // each row's last new position: what its sampler draws from
        const out = await this.backbone(seqs, counts);
        seqs.forEach((seq, r) => {
          this.written(seq, counts[r]!);
          if (seq.pending > 0) return;
          toSample.push({ seq, out: out.subarray(r * this.width, (r + 1) * this.width) });
        });
      } catch (err) {
        failures.push({ seqs, error: asError(err) });
      }
    }
    const sampled: Sampled[] = [];
    const t0 = performance.now();
    const onnx0 = this.runner.clock.total;
    let draws = 0;
    let fallbacks = 0;
    if (this.manifest.kind === 'calm') {
      // A sequence that was drawing before (carried over, or preempted mid-draw and recomputed)
      // continues from its held hidden state and its sampler's pool so far.
      const items: ChunkDraw[] = toSample.map(({ seq, out }) => ({
        hidden: seq.drawing ?? out!, sampler: seq.sampler!, rng: seq.rng, fresh: seq.drawing === null,
      }));
      const limits = { perStep: this.drawBudget(plan, toSample.map((t) => t.seq)), perCall: this.limits.perCall };
      const drawMs0 = this.runner.clock.ms.head + this.runner.clock.ms.decoder;
      const result = await drawChunks(this.runner, items, limits);
      draws = result.draws;
      if (draws > 0) {
        const ms = (this.runner.clock.ms.head + this.runner.clock.ms.decoder - drawMs0) / draws;
        this.msPerDraw = this.msPerDraw === 0 ? ms : 0.9 * this.msPerDraw + 0.1 * ms;
      }
      const failedByError = new Map<Error, Sequence[]>();
      result.outcomes.forEach((outcome, i) => {
        const seq = toSample[i]!.seq;
        if (outcome instanceof Error) {
          failedByError.set(outcome, [...(failedByError.get(outcome) ?? []), seq]);
        } else if (outcome !== undefined) {
          if (outcome.fallback) fallbacks++;
          seq.drawing = null;
          const { chunk, confidence } = outcome as SampleResult;
          sampled.push({ seq, chunk, ...(confidence ? { confidence } : {}) });
        } else if (seq.drawing === null) {
          // out of this step's draw budget: keep what the sampler draws from (a copy: the
          // backbone's output goes away with the step)
          seq.drawing = items[i]!.hidden.slice();
        }
      });
      for (const [error, seqs] of failedByError) failures.push({ seqs, error });
    } else {
      for (const { seq, out } of toSample) {
        try {
          sampled.push({ seq, chunk: Int32Array.of(this.softmax.sample(out!, seq.request.temperature, seq.rng, seq.request.topP)) });
        } catch (err) {
          failures.push({ seqs: [seq], error: asError(err) });
        }
      }
    }
    const samplerMs = performance.now() - t0 - (this.runner.clock.total - onnx0);
    return { sampled, failures, draws, fallbacks, samplerMs };
  }

  /**
   * This step's draws for samplers that want more than one. With nobody else in the step, the
   * configured maximum. With others (sequences prefilling, or sampling at T = 1), about as much
   * time as the rest of the step takes (its backbone calls and single draws), so that a pool
   * at most doubles their step; the rest of the pool waits for the next steps.
   */
  private drawBudget(plan: StepPlan, sampling: Sequence[]): number {
    const max = this.limits.perStep;
    const pooled = (s: Sequence) => s.request.temperature !== 1;
    const others = [...plan.decode, ...plan.prefill.map((p) => p.seq)].filter((s) => !pooled(s) || s.pending > 0).length;
    if (others === 0 || this.msPerDraw === 0) return max;
    const singles = sampling.filter((s) => !pooled(s)).length;
    const restMs = this.runner.clock.ms.backbone + singles * this.msPerDraw;
    return Math.max(MIN_POOLED_DRAWS, Math.min(max, Math.floor(restMs / this.msPerDraw)));
  }

  /** One backbone call over `seqs`, each with its next `counts[r]` known positions; returns each row's last one. */
  private backbone(seqs: Sequence[], counts: number[]): Promise<Float32Array> {
    const k = this.manifest.patch_size;
    const bs = this.blockSize;
    const newLen = Math.max(...counts);
    const ids = new BigInt64Array(seqs.length * newLen * k).fill(BigInt(this.manifest.special_tokens.pad));
    const width = Math.max(...seqs.map((s, r) => Math.ceil((s.computed + counts[r]!) / bs)));
    const table = new BigInt64Array(seqs.length * width);
    seqs.forEach((seq, r) => {
      const inputs = seq.inputs(seq.computed, counts[r]!);
      if (this.faulty) this.injectFaults(inputs);
      for (let i = 0; i < inputs.length; i++) ids[r * newLen * k + i] = BigInt(inputs[i]!);
      const blocks = Math.ceil((seq.computed + counts[r]!) / bs);
      for (let j = 0; j < blocks; j++) table[r * width + j] = BigInt(seq.blocks[j]!);
    });
    const batch: BackboneBatch = {
      ids, rows: seqs.length, newLen, pastLen: seqs.map((s) => s.computed), valid: counts, blockTable: table, width,
    };
    return this.runner.backboneLast(batch);
  }

  private injectFaults(inputs: Int32Array): void {
    const f = this.faults;
    if (f.failOnToken !== undefined && inputs.includes(f.failOnToken)) throw new Error(`injected fault: token ${f.failOnToken} in the batch`);
    if (f.crashOnToken !== undefined && inputs.includes(f.crashOnToken)) setImmediate(() => { throw new Error('injected crash of the engine thread'); });
    if (f.wedgeOnToken !== undefined && inputs.includes(f.wedgeOnToken)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
