// Prometheus metrics (docs/metrics.md): request latencies and token counts from the request path
// (RequestMetrics), engine step timings from the engine thread (EngineClient.onStep), queue and
// cache gauges read from the engine's latest stats at scrape time, and the process defaults.
// The metric names are a contract with dashboards and autoscalers: never rename one.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineClient } from '../engine/client.js';
import type { StepTiming } from '../engine/engine.js';
import type { EngineStats } from '../engine/types.js';
import type { ServerContext } from './context.js';
import type { Admission } from './generation.js';
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

export class Metrics implements RequestMetrics {
  readonly registry = new Registry();
  private admission: Admission | null = null;

  private readonly promptTokens: Counter;
  private readonly generationTokens: Counter;
  private readonly finishedTotal: Counter<'reason'>;
  private readonly ttfc: Histogram;
  private readonly interChunk: Histogram;
  private readonly e2e: Histogram;
  private readonly queueTime: Histogram;
  private readonly requestPromptTokens: Histogram;
  private readonly requestGenerationTokens: Histogram;
  private readonly stepStage: Histogram<'stage'>;
  private readonly stepTotal: Histogram;
  private readonly batchSize: Histogram;
  private readonly stepsTotal: Counter;
  private readonly drawsTotal: Counter;
  private readonly fallbacksTotal: Counter;
  private readonly transferBytes: Counter<'direction'>;
  private readonly drawsPerStep: Histogram;

  constructor(private readonly engine: EngineClient, readonly modelName: string, options: MetricsOptions = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of DROPPED_DEFAULTS) this.registry.removeSingleMetric(name);
    }

    // Gauges read at scrape time.
    const stats = (): EngineStats => this.engine.stats;
    new Gauge({
      name: 'calm_requests_running',
      help: 'Sequences in the running batch (decoding or prefilling) at the last engine step.',
      registers,
      collect() {
        this.set(stats().running);
      },
    });
    new Gauge({
      name: 'calm_requests_waiting',
      help: 'Requests queued in the engine waiting for a batch slot at the last engine step.',
      registers,
      collect() {
        this.set(stats().waiting);
      },
    });
    new Gauge({
      name: 'calm_kv_cache_usage_ratio',
      help: 'KV pool blocks referenced by running sequences over blocks in the pool (0 to 1), at the last engine step.',
      registers,
      collect() {
        const s = stats();
        this.set(s.blocksTotal > 0 ? s.blocksUsed / s.blocksTotal : 0);
      },
    });
    new Gauge({
      name: 'calm_kv_cache_blocks',
      help: 'KV pool blocks in use by running sequences (state="used") and in the pool (state="total"); a block holds --block-size positions.',
      labelNames: ['state'],
      registers,
      collect() {
        const s = stats();
        this.set({ state: 'used' }, s.blocksUsed);
        this.set({ state: 'total' }, s.blocksTotal);
      },
    });
    // Cumulative engine counts, carried by the engine's stats: each scrape adds what is new.
    const engineCounter = (name: string, help: string, read: (s: EngineStats) => number) => {
      let seen = 0;
      new Counter({
        name,
        help,
        registers,
        collect() {
          const now = read(stats());
          if (now > seen) this.inc(now - seen);
          seen = Math.max(seen, now);
        },
      });
    };
    engineCounter('calm_preemptions_total', 'Times a running sequence gave its KV blocks back because the pool ran dry (it is recomputed later, its text unchanged).',
      (s) => s.preemptions);
    engineCounter('calm_prefix_cache_queries_total', 'Prompt tokens looked up in the prefix cache at admission (full KV blocks only).', (s) => s.prefixQueries);
    engineCounter('calm_prefix_cache_hits_total', 'Prompt tokens found in the prefix cache at admission, so not computed again.', (s) => s.prefixHits);
    const admission = (): Admission | null => this.admission;
    const engineRef = this.engine;
    new Gauge({
      name: 'calm_requests_inflight',
      help: 'Requests admitted by the server and not finished (running + waiting + in transit to the engine); the admission limit applies to it.',
      registers,
      collect() {
        this.set(admission()?.inflight ?? 0);
      },
    });
    new Gauge({
      name: 'calm_server_draining',
      help: '1 while the server is draining (shutting down, refusing new requests), else 0.',
      registers,
      collect() {
        this.set(admission()?.draining ? 1 : 0);
      },
    });
    new Gauge({
      name: 'calm_engine_heartbeat_age_seconds',
      help: "Seconds since the engine loop's last sign of life (a step or an idle heartbeat); large values mean a stuck engine.",
      registers,
      collect() {
        this.set(Math.max(0, (Date.now() - engineRef.lastHeartbeat) / 1000));
      },
    });
    new Gauge({
      name: 'calm_engine_alive',
      help: '1 while the engine thread runs, 0 after it exited.',
      registers,
      collect() {
        this.set(engineRef.alive ? 1 : 0);
      },
    });
    const info = engine.info;
    new Gauge({
      name: 'calm_model_info',
      help: 'The served model (always 1; the labels carry the information).',
      labelNames: ['model', 'kind', 'device', 'dtype', 'patch_size'],
      registers,
    }).set({ model: modelName, kind: info.kind, device: info.device, dtype: info.dtype, patch_size: String(info.patchSize) }, 1);

    // Request path.
    this.promptTokens = new Counter({ name: 'calm_prompt_tokens_total', help: 'Prompt tokens of finished requests.', registers });
    this.generationTokens = new Counter({ name: 'calm_generation_tokens_total', help: 'Generated (completion) tokens of finished requests.', registers });
    this.finishedTotal = new Counter({
      name: 'calm_requests_finished_total',
      help: 'Requests by how they ended: stop (stop string or EOS), length (max_tokens or context), cancelled (by the client, a disconnect or a drain), ' +
        'timeout (--request-timeout-ms), error (failed on the server), refused (turned away before starting: invalid, over a limit, queue full, draining).',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of FINISH_REASONS) this.finishedTotal.inc({ reason }, 0);
    this.ttfc = new Histogram({
      name: 'calm_time_to_first_chunk_seconds',
      help: 'Time from the server accepting a request (after validation and tokenization) to its first chunk with output reaching the server: ' +
        'queueing, prefill and the first sample (the time to first token; a CALM chunk holds K tokens).',
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.interChunk = new Histogram({
      name: 'calm_inter_chunk_latency_seconds',
      help: 'Time between successive chunks of one request.',
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.e2e = new Histogram({
      name: 'calm_e2e_request_latency_seconds',
      help: 'Time from admission to the end of the request, whatever the reason.',
      buckets: E2E_BUCKETS,
      registers,
    });
    this.queueTime = new Histogram({
      name: 'calm_request_queue_time_seconds',
      help: 'Time a request waited in the engine queue before joining the running batch.',
      buckets: QUEUE_BUCKETS,
      registers,
    });
    this.requestPromptTokens = new Histogram({
      name: 'calm_request_prompt_tokens',
      help: 'Prompt tokens per finished request.',
      buckets: TOKEN_BUCKETS,
      registers,
    });
    this.requestGenerationTokens = new Histogram({
      name: 'calm_request_generation_tokens',
      help: 'Generated tokens per finished request.',
      buckets: TOKEN_BUCKETS,
      registers,
    });

    // Engine steps.
    this.stepStage = new Histogram({
      name: 'calm_step_duration_seconds',
      help: 'Time of one engine step by stage: backbone, head (energy head), decoder (latent to tokens), sampler. Only stages that ran in the step are recorded.',
      labelNames: ['stage'],
      buckets: STEP_BUCKETS,
      registers,
    });
    this.stepTotal = new Histogram({
      name: 'calm_step_total_duration_seconds',
      help: 'Wall time of one engine step, all stages and bookkeeping included.',
      buckets: STEP_BUCKETS,
      registers,
    });
    this.batchSize = new Histogram({
      name: 'calm_batch_size',
      help: 'Sequences in the batch of one engine step.',
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.stepsTotal = new Counter({ name: 'calm_engine_steps_total', help: 'Engine steps run.', registers });
    this.drawsTotal = new Counter({ name: 'calm_sampler_draws_total', help: 'Energy-head samples drawn by the CALM samplers.', registers });
    this.fallbacksTotal = new Counter({
      name: 'calm_sampler_fallbacks_total',
      help: 'Chunks whose T < 1 sampler could not apply its temperature: the exact sampler exhausted its draw budget (and used the batch cascade), ' +
        'or no chunk of the batch pool occurred floor(1/T) times (the cascade fell to a lower level).',
      registers,
    });
    this.transferBytes = new Counter({
      name: 'calm_device_transfer_bytes_total',
      help: 'Bytes copied between host and device by the model calls (direction upload: host to device, download: device to host); 0 on the CPU.',
      labelNames: ['direction'],
      registers,
    });
    this.transferBytes.inc({ direction: 'upload' }, 0);
    this.transferBytes.inc({ direction: 'download' }, 0);
    this.drawsPerStep = new Histogram({
      name: 'calm_sampler_draws_per_step',
      help: 'Energy-head samples drawn in one engine step (steps that drew none are not recorded).',
      buckets: DRAW_BUCKETS,
      registers,
    });
    engine.onStep((t) => this.observeStep(t));
  }

  /** Reads the admission state at scrape time (calm_requests_inflight, calm_server_draining). */
  watchAdmission(admission: Admission): void {
    this.admission = admission;
  }

  refused(): void {
    this.finishedTotal.inc({ reason: 'refused' });
  }

  startRequest(): RequestObserver {
    const start = performance.now();
    let last = start;
    let done = false;
    return {
      firstChunk: () => {
        const now = performance.now();
        this.ttfc.observe((now - start) / 1000);
        last = now;
      },
      chunk: () => {
        const now = performance.now();
        this.interChunk.observe((now - last) / 1000);
        last = now;
      },
      finished: (reason, usage, queueMs) => {
        if (done) return;
        done = true;
        this.finishedTotal.inc({ reason });
        this.e2e.observe((performance.now() - start) / 1000);
        if (reason === 'error') return;
        this.promptTokens.inc(usage.promptTokens);
        this.generationTokens.inc(usage.completionTokens);
        this.requestPromptTokens.observe(usage.promptTokens);
        this.requestGenerationTokens.observe(usage.completionTokens);
        this.queueTime.observe(Math.max(0, queueMs) / 1000);
      },
    };
  }

  /** One engine step (public for tests and benchmarks; the constructor subscribes it). */
  observeStep(t: StepTiming): void {
    this.stepsTotal.inc();
    this.stepTotal.observe(t.totalMs / 1000);
    const stages: Record<(typeof STEP_STAGES)[number], number> = {
      backbone: t.backboneMs,
      head: t.headMs,
      decoder: t.decoderMs,
      sampler: t.samplerMs,
    };
    for (const stage of STEP_STAGES) {
      const ms = stages[stage];
      if (ms > 0) this.stepStage.observe({ stage }, ms / 1000);
    }
    if (t.batch > 0) this.batchSize.observe(t.batch);
    if (t.draws > 0) {
      this.drawsTotal.inc(t.draws);
      this.drawsPerStep.observe(t.draws);
    }
    if (t.fallbacks > 0) this.fallbacksTotal.inc(t.fallbacks);
    if (t.uploadBytes > 0) this.transferBytes.inc({ direction: 'upload' }, t.uploadBytes);
    if (t.downloadBytes > 0) this.transferBytes.inc({ direction: 'download' }, t.downloadBytes);
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
