// The step loop. Each step is schedule (scheduler.ts: admission, blocks, budgets) -> run
// (step-runner.ts: backbone calls and sampling) -> postprocess (output.ts: cut, detokenize,
// stop), and ends with one report carrying every event of the step. It runs wherever it is
// constructed: the server puts it in a worker thread (worker.ts) so that onnxruntime's
// synchronous work never blocks HTTP. Requests arrive validated and tokenized (input.ts).
//
// Failure domain: an error in a model call fails the sequences that call carried (an `error`
// event each) and the loop goes on; an unexpected error anywhere in a step fails the sequences
// that step touched, never the loop.
import type { BundleManifest } from '../model/bundle.js';
import type { ModelRunner } from '../model/runner.js';
import type { Decoder } from '../text/detokenizer.js';
import { createChunkSampler } from '../sampling/factory.js';
import { Rng } from '../sampling/rng.js';
import type { BlockManager } from './block-manager.js';
import type { DrawLimits } from './chunk-draws.js';
import { doneEvent, processChunk } from './output.js';
import { Scheduler, type SchedulerLimits, type StepPlan } from './scheduler.js';
import { Sequence } from './sequence.js';
import { type FaultInjection, StepRunner } from './step-runner.js';
import type { EngineEvent, EngineRequest, EngineStats, FinishReason } from './types.js';

export interface EngineOptions extends SchedulerLimits {
  /** positions per sequence: the context limit, in backbone positions */
  maxPositions: number;
  draws: DrawLimits;
  exactMaxDraws: number;
  faults?: FaultInjection;
}

export interface StepTiming {
  /** wall time of the step */
  totalMs: number;
  /** inside onnxruntime, per stage */
  backboneMs: number;
  headMs: number;
  decoderMs: number;
  /** choosing chunks/tokens from the drawn samples or logits */
  samplerMs: number;
  /** sequences given a backbone position this step, and positions in all */
  batch: number;
  positions: number;
  /** sequences that produced output this step */
  sampled: number;
  /** CALM: energy-head samples drawn, and exact-sampler steps that hit their draw budget */
  draws: number;
  fallbacks: number;
  /** host -> device and device -> host bytes of the step's model calls (WebGPU; 0 on the CPU) */
  uploadBytes: number;
  downloadBytes: number;
}

/** What the engine reports after each step (and after a submission or cancel that ended a request at once). */
export interface StepReport {
  events: EngineEvent[];
  /** null for a report outside a step */
  timing: StepTiming | null;
  stats: EngineStats;
}

export class Engine {
  readonly scheduler: Scheduler;
  private readonly stepRunner: StepRunner;
  private readonly byId = new Map<string, Sequence>();
  private readonly special: { pad: number; eos: number };
  private steps = 0;
  private wake: (() => void) | null = null;
  private stopped = false;
  /** time of the last loop iteration, for liveness (a stuck step stops updating it) */
  heartbeat = performance.now();

  constructor(
    private readonly manifest: BundleManifest,
    private readonly runner: ModelRunner,
    readonly blocks: BlockManager,
    private readonly decoder: Decoder,
    readonly options: EngineOptions,
    private readonly report: (r: StepReport) => void,
  ) {
    this.special = { pad: manifest.special_tokens.pad, eos: manifest.special_tokens.eos };
    this.scheduler = new Scheduler(blocks, options);
    this.stepRunner = new StepRunner(runner, manifest, blocks.blockSize, options.draws,
      (seq, n) => this.scheduler.computed(seq, n), options.faults);
  }

  get stats(): EngineStats {
    const k = this.manifest.patch_size;
    return {
      running: this.scheduler.running.length,
      waiting: this.scheduler.waiting.length,
      blocksUsed: this.blocks.used,
      blocksTotal: this.blocks.blocks,
      steps: this.steps,
      preemptions: this.scheduler.preemptions,
      prefixQueries: this.scheduler.prefixQueried * k,
      prefixHits: this.scheduler.prefixHits * k,
    };
  }

  /** Queues a validated request (src/engine/input.ts); refusals come back as an `error` event, never a throw. */
  submit(req: EngineRequest): void {
    if (this.byId.has(req.id)) {
      this.report({ events: [{ type: 'error', id: req.id, code: 'invalid_request', message: `request id ${req.id} is already in use`, param: 'id' }], timing: null, stats: this.stats });
      return;
    }
    let seq: Sequence;
    try {
      const sampler = this.manifest.kind === 'calm'
        ? createChunkSampler(this.manifest.patch_size, {
          temperature: req.temperature, sampler: req.sampler, poolSize: req.poolSize, exactMaxDraws: this.options.exactMaxDraws,
          topP: req.topP, confidence: req.confidence,
        })
        : null;
      seq = new Sequence(req, this.manifest.patch_size, new Rng(req.seed, req.seedStream), sampler, this.decoder, performance.now());
    } catch (err) {
      this.report({ events: [{ type: 'error', id: req.id, code: 'engine_error', message: (err as Error).message }], timing: null, stats: this.stats });
      return;
    }
    this.byId.set(req.id, seq);
    this.scheduler.enqueue(seq);
    this.wake?.();
  }

  /** Cancels a request: at once while it waits, at the start of the next step while it runs. */
  cancel(id: string): void {
    const seq = this.byId.get(id);
    if (!seq) return;
    seq.cancelled = true;
    if (seq.state === 'waiting') this.report({ events: [this.end(seq, 'cancelled')], timing: null, stats: this.stats });
    this.wake?.();
  }

  /** Runs steps until stop(); sleeps while there is nothing to do. */
  async run(): Promise<void> {
    while (!this.stopped) {
      this.heartbeat = performance.now();
      const worked = await this.step();
      if (!worked && !this.stopped) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          // Wake periodically anyway so the heartbeat shows the loop is alive while idle.
          setTimeout(resolve, 1000);
        });
        this.wake = null;
      }
    }
  }

  /** Frees the graphs and the KV pool (device memory on a GPU) of an engine that is not running. */
  async release(): Promise<void> {
    this.stop();
    await this.runner.release();
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /** One engine step; false when there was nothing to do. */
  async step(): Promise<boolean> {
    const start = performance.now();
    this.runner.clock.reset();
    const { up: up0, down: down0 } = this.runner.transfer;
    const events: EngineEvent[] = [];
    for (const seq of [...this.scheduler.running]) if (seq.cancelled) events.push(this.end(seq, 'cancelled'));
    let plan: StepPlan | null = null;
    let timing: StepTiming | null = null;
    try {
      plan = this.scheduler.schedule(start);
      const work = plan.decode.length + plan.prefill.length + plan.drawing.length;
      if (work > 0) {
        const result = await this.stepRunner.run(plan);
        for (const failure of result.failures) {
          for (const seq of failure.seqs) if (seq.state !== 'finished') events.push(this.fail(seq, failure.error));
        }
        for (const { seq, chunk, confidence } of result.sampled) {
          if (seq.state !== 'running') continue;
          const { event, finish } = processChunk(seq, chunk, this.special, this.options.maxPositions, confidence);
          events.push(event);
          if (finish !== null) events.push(this.end(seq, finish));
          else seq.append(chunk);
        }
        const c = this.runner.clock.ms;
        timing = {
          totalMs: performance.now() - start,
          backboneMs: c.backbone,
          headMs: c.head,
          decoderMs: c.decoder,
          samplerMs: result.samplerMs,
          batch: plan.decode.length + plan.prefill.length,
          positions: plan.decode.length + plan.prefill.reduce((n, p) => n + p.positions, 0),
          sampled: result.sampled.length,
          draws: result.draws,
          fallbacks: result.fallbacks,
          uploadBytes: this.runner.transfer.up - up0,
          downloadBytes: this.runner.transfer.down - down0,
        };
        this.steps++;
      }
    } catch (err) {
      // Not a model call's failure (those are contained above): a fault in the step itself. Fail
      // what the step touched, or everything running if it failed before it had a plan.
      const touched = plan ? [...plan.decode, ...plan.prefill.map((p) => p.seq), ...plan.drawing] : [...this.scheduler.running];
      for (const seq of touched) if (seq.state !== 'finished') events.push(this.fail(seq, err as Error));
    }
    if (events.length > 0 || timing) this.report({ events, timing, stats: this.stats });
    return timing !== null || events.length > 0;
  }

  private end(seq: Sequence, reason: FinishReason): EngineEvent {
    this.scheduler.remove(seq);
    this.byId.delete(seq.id);
    return doneEvent(seq, reason, performance.now());
  }

  private fail(seq: Sequence, error: Error): EngineEvent {
    this.scheduler.remove(seq);
    this.byId.delete(seq.id);
    return { type: 'error', id: seq.id, code: 'engine_error', message: `the model step failed for this request: ${error.message}` };
  }
}
