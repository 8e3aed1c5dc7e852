// Prometheus metrics (docs/metrics.md): request latencies and token counts from the request path
// (RequestMetrics), engine step timings from the engine threads (EngineClient.onStep), queue and
// cache gauges read from each engine's latest stats at scrape time, and the process defaults.
// One registry for the server; every calm_* series but calm_server_draining carries a `model`
// label, so several models share the names. The metric names are a contract with dashboards and
// autoscalers: never rename one.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineClient } from '../engine/client.js';
import type { StepTiming } from '../engine/engine.js';
import type { EngineStats } from '../engine/types.js';
import type { ServerContext } from './context.js';
import type { Admission, ModelLoad } from './generation.js';
import type { RequestMetrics, RequestObserver } from './metrics-api.js';

/** error: failed on the server; refused: turned away before it started (invalid, over a limit, queue full, draining). */
export const FINISH_REASONS = ['stop', 'length', 'cancelled', 'timeout', 'error', 'refused'] as const;
export const STEP_STAGES = ['backbone', 'head', 'decoder', 'sampler'] as const;

/** Seconds, for a CPU server: a few ms (a short step) to minutes (a long generation). */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 20, 30, 60, 120];
const E2E_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];
const QUEUE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const STEP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const TOKEN_BUCKETS = [1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192];
const DRAW_BUCKETS = [1, 10, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 50_000];

/**
 * prom-client's defaults include three gauges named `*_total`, which Prometheus reserves for
 * counters (`promtool check metrics` flags them). The same numbers are the sums of the
 * `nodejs_active_{handles,requests,resources}` gauges by type, so these are dropped.
 */
const DROPPED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export interface MetricsOptions {
  /** process_* and nodejs_* metrics (CPU, memory, event-loop lag, GC); default true */
  defaultMetrics?: boolean;
}

/** One model's sources for the gauges and engine counters read at scrape time. */
interface ModelSource {
  engine: EngineClient;
  load: ModelLoad;
  /** engine counters already added, by metric name (the engine reports running totals) */
  seen: Map<string, number>;
}

/** One model's view of the metrics: its series carry its `model` label. */
export interface ModelMetrics extends RequestMetrics {
  /** One engine step (public for tests and benchmarks; addModel subscribes it to the engine). */
  observeStep(t: StepTiming): void;
}

export class Metrics {
  readonly registry = new Registry();
  private admission: Admission | null = null;
  private readonly models = new Map<string, ModelSource>();

  private readonly promptTokens: Counter<'model'>;
  private readonly generationTokens: Counter<'model'>;
  private readonly finishedTotal: Counter<'model' | 'reason'>;
  private readonly ttfc: Histogram<'model'>;
  private readonly interChunk: Histogram<'model'>;
  private readonly e2e: Histogram<'model'>;
  private readonly queueTime: Histogram<'model'>;
  private readonly requestPromptTokens: Histogram<'model'>;
  private readonly requestGenerationTokens: Histogram<'model'>;
  private readonly stepStage: Histogram<'model' | 'stage'>;
  private readonly stepTotal: Histogram<'model'>;
  private readonly batchSize: Histogram<'model'>;
  private readonly stepsTotal: Counter<'model'>;
  private readonly drawsTotal: Counter<'model'>;
  private readonly fallbacksTotal: Counter<'model'>;
  private readonly transferBytes: Counter<'model' | 'direction'>;
  private readonly drawsPerStep: Histogram<'model'>;
  private readonly modelInfo: Gauge<'model' | 'kind' | 'device' | 'dtype' | 'patch_size'>;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    const labelNames = ['model'] as const;
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of DROPPED_DEFAULTS) this.registry.removeSingleMetric(name);
    }

    // Gauges read at scrape time, one series per model.
    const models = this.models;
    const perModel = (name: string, help: string, read: (m: ModelSource) => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          for (const [model, m] of models) this.set({ model }, read(m));
        },
      });
    perModel('calm_requests_running', 'Sequences in the running batch (decoding or prefilling) at the last engine step.', (m) => m.engine.stats.running);
    perModel('calm_requests_waiting', 'Requests queued in the engine waiting for a batch slot at the last engine step.', (m) => m.engine.stats.waiting);
    perModel('calm_kv_cache_usage_ratio', 'KV pool blocks referenced by running sequences over blocks in the pool (0 to 1), at the last engine step.', (m) => {
      const s = m.engine.stats;
      return s.blocksTotal > 0 ? s.blocksUsed / s.blocksTotal : 0;
    });
    new Gauge({
      name: 'calm_kv_cache_blocks',
      help: 'KV pool blocks in use by running sequences (state="used") and in the pool (state="total"); a block holds --block-size positions.',
      labelNames: ['model', 'state'],
      registers,
      collect() {
        for (const [model, m] of models) {
          this.set({ model, state: 'used' }, m.engine.stats.blocksUsed);
          this.set({ model, state: 'total' }, m.engine.stats.blocksTotal);
        }
      },
    });
    // Cumulative engine counts, carried by the engine's stats: each scrape adds what is new.
    const engineCounter = (name: string, help: string, read: (s: EngineStats) => number) => {
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          for (const [model, m] of models) {
            const now = read(m.engine.stats);
            const seen = m.seen.get(name) ?? 0;
            this.inc({ model }, Math.max(0, now - seen));
            m.seen.set(name, Math.max(seen, now));
          }
        },
      });
    };
    engineCounter('calm_preemptions_total', 'Times a running sequence gave its KV blocks back because the pool ran dry (it is recomputed later, its text unchanged).',
      (s) => s.preemptions);
    engineCounter('calm_prefix_cache_queries_total', 'Prompt tokens looked up in the prefix cache at admission (full KV blocks only).', (s) => s.prefixQueries);
    engineCounter('calm_prefix_cache_hits_total', 'Prompt tokens found in the prefix cache at admission, so not computed again.', (s) => s.prefixHits);
    perModel('calm_requests_inflight', 'Requests admitted by the server and not finished (running + waiting + in transit to the engine); the admission limit applies to it.',
      (m) => m.load.inflight);
    const admission = (): Admission | null => this.admission;
    new Gauge({
      name: 'calm_server_draining',
      help: '1 while the server is draining (shutting down, refusing new requests), else 0.',
      registers,
      collect() {
        this.set(admission()?.draining ? 1 : 0);
      },
    });
    perModel('calm_engine_heartbeat_age_seconds', "Seconds since the engine loop's last sign of life (a step or an idle heartbeat); large values mean a stuck engine.",
      (m) => Math.max(0, (Date.now() - m.engine.lastHeartbeat) / 1000));
    perModel('calm_engine_alive', '1 while the engine thread runs, 0 after it exited.', (m) => (m.engine.alive ? 1 : 0));
    this.modelInfo = new Gauge({
      name: 'calm_model_info',
      help: 'The served models (always 1; the labels carry the information).',
      labelNames: ['model', 'kind', 'device', 'dtype', 'patch_size'],
      registers,
    });

    // Request path.
    this.promptTokens = new Counter({ name: 'calm_prompt_tokens_total', help: 'Prompt tokens of finished requests.', labelNames, registers });
    this.generationTokens = new Counter({ name: 'calm_generation_tokens_total', help: 'Generated (completion) tokens of finished requests.', labelNames, registers });
    this.finishedTotal = new Counter({
      name: 'calm_requests_finished_total',
      help: 'Requests by how they ended: stop (stop string or EOS), length (max_tokens or context), cancelled (by the client, a disconnect or a drain), ' +
        'timeout (--request-timeout-ms), error (failed on the server), refused (turned away before starting: invalid, over a limit, queue full, draining).',
      labelNames: ['model', 'reason'],
      registers,
    });
    this.ttfc = new Histogram({
      name: 'calm_time_to_first_chunk_seconds',
      help: 'Time from the server accepting a request (after validation and tokenization) to its first chunk with output reaching the server: ' +
        'queueing, prefill and the first sample (the time to first token; a CALM chunk holds K tokens).',
      buckets: REQUEST_BUCKETS,
      labelNames,
      registers,
    });
    this.interChunk = new Histogram({
      name: 'calm_inter_chunk_latency_seconds',
      help: 'Time between successive chunks of one request.',
      buckets: REQUEST_BUCKETS,
      labelNames,
      registers,
    });
    this.e2e = new Histogram({
      name: 'calm_e2e_request_latency_seconds',
      help: 'Time from admission to the end of the request, whatever the reason.',
      buckets: E2E_BUCKETS,
      labelNames,
      registers,
    });
    this.queueTime = new Histogram({
      name: 'calm_request_queue_time_seconds',
      help: 'Time a request waited in the engine queue before joining the running batch.',
      buckets: QUEUE_BUCKETS,
      labelNames,
      registers,
    });
    this.requestPromptTokens = new Histogram({
      name: 'calm_request_prompt_tokens',
      help: 'Prompt tokens per finished request.',
      buckets: TOKEN_BUCKETS,
      labelNames,
      registers,
    });
    this.requestGenerationTokens = new Histogram({
      name: 'calm_request_generation_tokens',
      help: 'Generated tokens per finished request.',
      buckets: TOKEN_BUCKETS,
      labelNames,
      registers,
    });

    // Engine steps.
    this.stepStage = new Histogram({
      name: 'calm_step_duration_seconds',
      help: 'Time of one engine step by stage: backbone, head (energy head), decoder (latent to tokens), sampler. Only stages that ran in the step are recorded.',
      labelNames: ['model', 'stage'],
      buckets: STEP_BUCKETS,
      registers,
    });
    this.stepTotal = new Histogram({
      name: 'calm_step_total_duration_seconds',
      help: 'Wall time of one engine step, all stages and bookkeeping included.',
      buckets: STEP_BUCKETS,
      labelNames,
      registers,
    });
    this.batchSize = new Histogram({
      name: 'calm_batch_size',
      help: 'Sequences in the batch of one engine step.',
      buckets: BATCH_BUCKETS,
      labelNames,
      registers,
    });
    this.stepsTotal = new Counter({ name: 'calm_engine_steps_total', help: 'Engine steps run.', labelNames, registers });
    this.drawsTotal = new Counter({ name: 'calm_sampler_draws_total', help: 'Energy-head samples drawn by the CALM samplers.', labelNames, registers });
    this.fallbacksTotal = new Counter({
      name: 'calm_sampler_fallbacks_total',
      help: 'Chunks whose T < 1 sampler could not apply its temperature: the exact sampler exhausted its draw budget (and used the batch cascade), ' +
        'or no chunk of the batch pool occurred floor(1/T) times (the cascade fell to a lower level).',
      labelNames,
      registers,
    });
    this.transferBytes = new Counter({
      name: 'calm_device_transfer_bytes_total',
      help: 'Bytes copied between host and device by the model calls (direction upload: host to device, download: device to host); 0 on the CPU.',
      labelNames: ['model', 'direction'],
      registers,
    });
    this.drawsPerStep = new Histogram({
      name: 'calm_sampler_draws_per_step',
      help: 'Energy-head samples drawn in one engine step (steps that drew none are not recorded).',
      buckets: DRAW_BUCKETS,
      labelNames,
      registers,
    });
  }

  /**
   * Adds a served model: its gauges and engine counters are read from `engine` and `load` at
   * scrape time, its engine steps are observed, and the returned view records its requests.
   */
  addModel(model: string, engine: EngineClient, load: ModelLoad): ModelMetrics {
    if (this.models.has(model)) throw new Error(`the model ${model} has metrics already`);
    this.models.set(model, { engine, load, seen: new Map() });
    const info = engine.info;
    this.modelInfo.set({ model, kind: info.kind, device: info.device, dtype: info.dtype, patch_size: String(info.patchSize) }, 1);
    // Series that exist from the start, at 0, so rates and alerts have something to read.
    for (const reason of FINISH_REASONS) this.finishedTotal.inc({ model, reason }, 0);
    this.transferBytes.inc({ model, direction: 'upload' }, 0);
    this.transferBytes.inc({ model, direction: 'download' }, 0);
    const view: ModelMetrics = {
      refused: () => this.finishedTotal.inc({ model, reason: 'refused' }),
      startRequest: () => this.startRequest(model),
      observeStep: (t) => this.observeStep(model, t),
    };
    engine.onStep((t) => view.observeStep(t));
    return view;
  }

  /** Reads the admission state at scrape time (calm_server_draining). */
  watchAdmission(admission: Admission): void {
    this.admission = admission;
  }

  private startRequest(model: string): RequestObserver {
    const start = performance.now();
    const labels = { model };
    let last = start;
    let done = false;
    return {
      firstChunk: () => {
        const now = performance.now();
        this.ttfc.observe(labels, (now - start) / 1000);
        last = now;
      },
      chunk: () => {
        const now = performance.now();
        this.interChunk.observe(labels, (now - last) / 1000);
        last = now;
      },
      finished: (reason, usage, queueMs) => {
        if (done) return;
        done = true;
        this.finishedTotal.inc({ model, reason });
        this.e2e.observe(labels, (performance.now() - start) / 1000);
        if (reason === 'error') return;
        this.promptTokens.inc(labels, usage.promptTokens);
        this.generationTokens.inc(labels, usage.completionTokens);
        this.requestPromptTokens.observe(labels, usage.promptTokens);
        this.requestGenerationTokens.observe(labels, usage.completionTokens);
        this.queueTime.observe(labels, Math.max(0, queueMs) / 1000);
      },
    };
  }

  private observeStep(model: string, t: StepTiming): void {
    const labels = { model };
    this.stepsTotal.inc(labels);
    this.stepTotal.observe(labels, t.totalMs / 1000);
    const stages: Record<(typeof STEP_STAGES)[number], number> = {
      backbone: t.backboneMs,
      head: t.headMs,
      decoder: t.decoderMs,
      sampler: t.samplerMs,
    };
    for (const stage of STEP_STAGES) {
      const ms = stages[stage];
      if (ms > 0) this.stepStage.observe({ model, stage }, ms / 1000);
    }
    if (t.batch > 0) this.batchSize.observe(labels, t.batch);
    if (t.draws > 0) {
      this.drawsTotal.inc(labels, t.draws);
      this.drawsPerStep.observe(labels, t.draws);
    }
    if (t.fallbacks > 0) this.fallbacksTotal.inc(labels, t.fallbacks);
    if (t.uploadBytes > 0) this.transferBytes.inc({ model, direction: 'upload' }, t.uploadBytes);
    if (t.downloadBytes > 0) this.transferBytes.inc({ model, direction: 'download' }, t.downloadBytes);
  }

  /** The exposition for a scrape. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** `GET /metrics` in the Prometheus text format. Not authenticated (the auth hook exempts it). */
export function registerMetricsRoute(app: FastifyInstance, ctx: ServerContext, metrics: Metrics): void {
  metrics.watchAdmission(ctx.admission);
  // (its scrapes log at debug, like the probes: logging.ts)
  app.get('/metrics', async (_request, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });
}
