// The step loop: every step admits waiting requests, prefills a piece of each new prompt,
// decodes one position for every running sequence in one batched backbone call, samples
// (CALM: energy head + decoder + the likelihood-free samplers; AR: softmax), and streams
// what each sequence produced. Runs wherever it is constructed: the server puts it in a
// worker thread (worker.ts) so that onnxruntime's synchronous work never blocks HTTP.
import type { Bundle } from '../model/bundle.js';
import type { ModelRunner } from '../model/runner.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import type { ChunkSampler } from '../sampling/chunks.js';
import { SamplingError } from '../sampling/errors.js';
import { createChunkSampler } from '../sampling/factory.js';
import { Rng, randomSeed } from '../sampling/rng.js';
import { SoftmaxSampler } from '../sampling/softmax.js';
import { drawChunks } from './chunk-draws.js';
import type { KvCache } from './kv-cache.js';
import { alignPrompt, type PromptPolicy } from './prompt.js';
import { Scheduler } from './scheduler.js';
import { Sequence } from './sequence.js';
import { cutChunk } from './stopping.js';
import type { EngineErrorCode, EngineEvent, EngineStats, FinishReason, GenerateRequest } from './types.js';

export interface EngineOptions {
  maxRunning: number;
  maxWaiting: number;
  /** prompt positions one sequence prefills per step (chunked prefill) */
  prefillChunk: number;
  promptPolicy: PromptPolicy;
  defaultPoolSize: number;
  exactMaxDraws: number;
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
  batch: number;
  /** sequences that produced output this step */
  sampled: number;
  /** CALM: energy-head samples drawn, and exact-sampler steps that hit their draw budget */
  draws: number;
  fallbacks: number;
}

export class EngineRequestError extends Error {
  constructor(readonly code: EngineErrorCode, message: string, readonly param?: string) {
    super(message);
  }
}

export class Engine {
  readonly scheduler: Scheduler;
  private readonly byId = new Map<string, Sequence>();
  private readonly softmax = new SoftmaxSampler();
  private readonly k: number;
  private readonly pad: number;
  private readonly eos: number;
  private steps = 0;
  private draws = 0;
  private fallbacks = 0;
  private wake: (() => void) | null = null;
  private stopped = false;
  /** time of the last loop iteration, for liveness (a stuck step stops updating it) */
  heartbeat = performance.now();

  constructor(
    private readonly bundle: Bundle,
    private readonly runner: ModelRunner,
    private readonly kv: KvCache,
    private readonly tokenizer: TextTokenizer,
    readonly options: EngineOptions,
    private readonly emit: (event: EngineEvent) => void,
    private readonly onStep: (timing: StepTiming) => void = () => {},
  ) {
    const m = bundle.manifest;
    this.k = m.patch_size;
    this.pad = m.special_tokens.pad;
    this.eos = m.special_tokens.eos;
    this.scheduler = new Scheduler(kv, Math.min(options.maxRunning, kv.maxRows));
  }

  get stats(): EngineStats {
    return {
      running: this.scheduler.running.length,
      waiting: this.scheduler.waiting.length,
      kvUsage: this.scheduler.usedPositions / (this.kv.maxRows * this.kv.maxPositions),
      steps: this.steps,
    };
  }

  /** Validates and queues a request; refusals come back as an `error` event, never a throw. */
  submit(req: GenerateRequest): void {
    try {
      const seq = this.prepare(req);
      this.byId.set(req.id, seq);
      this.scheduler.enqueue(seq);
      this.wake?.();
    } catch (err) {
      if (err instanceof EngineRequestError) {
        this.emit({ type: 'error', id: req.id, code: err.code, message: err.message, ...(err.param ? { param: err.param } : {}) });
      } else if (err instanceof SamplingError) {
        const code = err.code === 'temperature_above_one' ? 'temperature_above_one' : 'invalid_request';
        this.emit({ type: 'error', id: req.id, code, message: err.message, param: 'temperature' });
      } else {
        this.emit({ type: 'error', id: req.id, code: 'engine_error', message: (err as Error).message });
      }
    }
  }

  /** Cancels a request; its cache row is free by the end of the current step. */
  cancel(id: string): void {
    const seq = this.byId.get(id);
    if (!seq) return;
    if (this.scheduler.dropWaiting(seq)) this.finish(seq, 'cancelled');
    else seq.cancelled = true;
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

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private prepare(req: GenerateRequest): Sequence {
    const m = this.bundle.manifest;
    const isCalm = m.kind === 'calm';
    if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1) {
      throw new EngineRequestError('invalid_request', `max_tokens must be a positive integer, got ${req.maxTokens}`, 'max_tokens');
    }
    const t = req.temperature;
    if (typeof t !== 'number' || Number.isNaN(t) || t < 0) {
      throw new EngineRequestError('invalid_request', `temperature must be a number from 0 to 1, got ${t}`, 'temperature');
    }
    if (t > 1 && (isCalm || t > 2)) {
      throw new EngineRequestError(
        'temperature_above_one',
        isCalm
          ? `temperature ${t} is above 1: a likelihood-free model can only sharpen its distribution (T <= 1), not flatten it`
          : `temperature must be at most 2, got ${t}`,
        'temperature',
      );
    }
    if (this.scheduler.waiting.length >= this.options.maxWaiting) {
      throw new EngineRequestError('queue_full', `the queue is full (${this.options.maxWaiting} waiting requests)`);
    }
    if (this.byId.has(req.id)) throw new EngineRequestError('invalid_request', `request id ${req.id} is already in use`, 'id');
    let tokens: number[];
    if (typeof req.prompt === 'string') tokens = this.tokenizer.encode(req.prompt);
    else {
      const bad = req.prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= m.vocab_size);
      if (bad !== undefined) throw new EngineRequestError('invalid_request', `token id ${bad} is outside the vocabulary (0..${m.vocab_size - 1})`, 'prompt');
      tokens = req.prompt;
    }
    const promptTokens = tokens.length;
    const withBos = m.add_bos ? [m.special_tokens.bos, ...tokens] : tokens;
    if (withBos.length === 0) throw new EngineRequestError('invalid_request', 'the prompt is empty and this model has no BOS token to start from', 'prompt');
    const aligned = isCalm ? alignPrompt(withBos, this.k, this.pad, req.promptPolicy ?? this.options.promptPolicy).ids : withBos;
    const promptPositions = aligned.length / this.k;
    const positions = promptPositions + Math.ceil(req.maxTokens / this.k);
    if (positions > this.kv.maxPositions) {
      const limit = this.kv.maxPositions * this.k;
      throw new EngineRequestError(
        'context_length_exceeded',
        `this model's context is ${limit} tokens; the prompt has ${promptTokens} tokens and max_tokens is ${req.maxTokens} ` +
          `(${positions * this.k} tokens with BOS and chunk alignment). Shorten the prompt or lower max_tokens.`,
        'max_tokens',
      );
    }
    const seed = req.seed ?? randomSeed();
    let sampler: ChunkSampler | null = null;
    if (isCalm) {
      sampler = createChunkSampler(this.k, {
        temperature: t, sampler: req.sampler ?? 'batch', poolSize: req.poolSize ?? this.options.defaultPoolSize, exactMaxDraws: this.options.exactMaxDraws,
      });
    }
    return new Sequence(req, Int32Array.from(aligned), promptPositions, promptTokens, new Rng(seed, req.seedStream ?? 0), seed, sampler, this.tokenizer, performance.now());
  }

  /** One engine step; false when there was nothing to do. */
  async step(): Promise<boolean> {
    const start = performance.now();
    this.runner.clock.reset();
    for (const seq of this.scheduler.running) if (seq.cancelled) this.finish(seq, 'cancelled');
    this.scheduler.settle();
    this.scheduler.admit(start);
    const decoding = this.scheduler.decoding;
    const prefilling = this.scheduler.prefilling;
    if (decoding.length === 0 && prefilling.length === 0) return false;

    const pieces = prefilling.map((s) => Math.min(this.options.prefillChunk, s.promptPositions - s.prefilled));
    const needed = Math.max(0, ...decoding.map((s) => s.pastLen + 1), ...prefilling.map((s, i) => s.pastLen + pieces[i]!));
    this.kv.ensureCapacity(needed, this.scheduler.running.length);

    const width = this.bundle.manifest.kind === 'calm' ? this.bundle.manifest.hidden_size : this.bundle.manifest.vocab_size;
    const ready: { seq: Sequence; out: Float32Array }[] = [];
    if (prefilling.length > 0) {
      const newLen = Math.max(...pieces);
      const ids = new BigInt64Array(prefilling.length * newLen * this.k).fill(BigInt(this.pad));
      prefilling.forEach((s, r) => {
        const from = s.prefilled * this.k;
        const piece = s.input.subarray(from, from + pieces[r]! * this.k);
        for (let i = 0; i < piece.length; i++) ids[r * newLen * this.k + i] = BigInt(piece[i]!);
      });
      const out = await this.runner.backbone(decoding.length, prefilling.length, ids, newLen, prefilling.map((s) => s.pastLen), pieces);
      prefilling.forEach((s, r) => {
        s.pastLen += pieces[r]!;
        s.prefilled += pieces[r]!;
        if (s.prefillDone) {
          const at = (r * newLen + pieces[r]! - 1) * width;
          ready.push({ seq: s, out: out.subarray(at, at + width) });
        }
      });
    }
    if (decoding.length > 0) {
      const ids = new BigInt64Array(decoding.length * this.k);
      decoding.forEach((s, r) => {
        for (let i = 0; i < this.k; i++) ids[r * this.k + i] = BigInt(s.pending![i]!);
      });
      const out = await this.runner.backbone(0, decoding.length, ids, 1, decoding.map((s) => s.pastLen), decoding.map(() => 1));
      decoding.forEach((s, r) => {
        s.pastLen += 1;
        ready.push({ seq: s, out: out.subarray(r * width, (r + 1) * width) });
      });
    }

    const samplerStart = performance.now();
    const onnxBeforeSampling = this.runner.clock.total;
    this.draws = this.fallbacks = 0;
    const chosen = this.bundle.manifest.kind === 'calm' ? await this.sampleChunks(ready) : this.sampleTokens(ready);
    const samplerMs = performance.now() - samplerStart - (this.runner.clock.total - onnxBeforeSampling);

    const stepMs = performance.now() - start;
    for (const [seq, chunk] of chosen) {
      if (seq.state === 'prefill') seq.state = 'decode';
      this.deliver(seq, chunk, stepMs);
    }
    this.scheduler.settle();
    this.steps++;
    const c = this.runner.clock.ms;
    this.onStep({
      totalMs: performance.now() - start,
      backboneMs: c.backbone,
      headMs: c.head,
      decoderMs: c.decoder,
      samplerMs,
      batch: decoding.length + prefilling.length,
      sampled: chosen.length,
      draws: this.draws,
      fallbacks: this.fallbacks,
    });
    return true;
  }

  /** CALM: draw from the energy head until every sequence's sampler has decided. */
  private async sampleChunks(ready: { seq: Sequence; out: Float32Array }[]): Promise<[Sequence, Int32Array][]> {
    const results = await drawChunks(this.runner, ready.map(({ seq, out }) => ({ hidden: out, sampler: seq.sampler!, rng: seq.rng })));
    return results.map((result, i) => {
      this.draws += result.draws;
      if (result.fallback) this.fallbacks++;
      return [ready[i]!.seq, result.chunk];
    });
  }

  /** AR: softmax with temperature over each sequence's last logits. */
  private sampleTokens(ready: { seq: Sequence; out: Float32Array }[]): [Sequence, Int32Array][] {
    return ready.map(({ seq, out }) => [seq, Int32Array.of(this.softmax.sample(out, seq.request.temperature, seq.rng))]);
  }

  /** Applies one sampled chunk to a sequence: stopping rules, text, events. */
  private deliver(seq: Sequence, chunk: Int32Array, stepMs: number): void {
    seq.pending = chunk;
    const cut = cutChunk(chunk, this.pad, this.eos, seq.request.maxTokens - seq.generated, seq.request.ignoreEos === true);
    const ids = cut.ids;
    let finish = cut.finish;
    seq.generated += ids.length;
    let { text, stopped } = seq.stop.push(seq.detokenizer.push(ids));
    if (stopped !== null) finish = 'stop';
    if (finish === null && seq.pastLen >= this.kv.maxPositions) finish = 'length';
    if (finish !== null && stopped === null) {
      // The last chunk carries everything still held back, and the finish reason, so that
      // streams end on a content event rather than an extra empty one.
      const tail = seq.stop.push(seq.detokenizer.flush());
      text += tail.stopped === null ? tail.text + seq.stop.flush() : tail.text;
    }
    this.emit({
      type: 'chunk', id: seq.id, tokenIds: ids, text, elapsedMs: performance.now() - seq.submittedAt, stepMs,
      ...(finish !== null ? { finishReason: finish } : {}),
    });
    if (finish !== null) this.finish(seq, finish);
  }

  private finish(seq: Sequence, reason: FinishReason): void {
    seq.state = 'finished';
    this.byId.delete(seq.id);
    const now = performance.now();
    this.emit({
      type: 'done',
      id: seq.id,
      finishReason: reason,
      usage: { promptTokens: seq.promptTokens, completionTokens: seq.generated },
      queueMs: (seq.admittedAt || now) - seq.submittedAt,
      totalMs: now - seq.submittedAt,
      seed: seq.seed,
    });
  }
}
