// `calm bench`: runs the serving benchmark at one or several load levels and writes the
// summary (stdout), the JSON results and the SVG chart.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Agent } from 'undici';
import { renderChart, type ChartPoint } from './chart.js';
import { firstModel, streamCompletion, toRecord } from './client.js';
import { arrivalSchedule, createRng, runLoad } from './load.js';
import { readJsonlTexts } from '../text/jsonl.js';
import { documentPrompts, syntheticPrompts } from './prompts.js';
import {
  formatSummary, formatSweep, GOODPUT_METRICS, type GoodputTargets, metricsJson, type RequestRecord, type RunMetrics, runMetrics,
} from './report.js';

export interface BenchOptions {
  /** server root without /v1, e.g. http://localhost:8000 */
  baseUrl: string;
  endpoint: string;
  apiKey?: string;
  /** default: the first model of GET /v1/models */
  model?: string;
  /** "synthetic" or a JSONL file of {"text": ...} */
  dataset: string;
  /** prompt length in words */
  promptLen: number;
  numPrompts: number;
  maxTokens: number;
  /** one level per value (Infinity: all at once) */
  requestRates: number[];
  /** one level per value (null: no limit) */
  maxConcurrencies: (number | null)[];
  burstiness: number;
  goodput: GoodputTargets;
  percentiles: number[];
  extraBody: Record<string, unknown>;
  seed: number;
  /** requests sent one by one before the first level, not counted */
  warmup: number;
  timeoutMs: number;
  output?: string;
  svg?: string;
  label?: string;
  /** progress on stderr: a bar on a terminal, a line per level otherwise; false: nothing */
  progress: boolean;
}

export interface BenchIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  stderrIsTTY: boolean;
}

export interface LevelResult {
  maxConcurrency: number | null;
  requestRate: number;
  metrics: RunMetrics;
  records: RequestRecord[];
}

export interface BenchResult {
  model: string;
  xName: string;
  levels: LevelResult[];
  json: Record<string, unknown>;
}

export const BENCH_DEFAULTS: BenchOptions = {
  baseUrl: 'http://localhost:8000',
  endpoint: '/v1/completions',
  dataset: 'synthetic',
  promptLen: 32,
  numPrompts: 100,
  maxTokens: 64,
  requestRates: [Infinity],
  maxConcurrencies: [null],
  burstiness: 1,
  goodput: {},
  percentiles: [90, 99],
  extraBody: {},
  seed: 0,
  warmup: 1,
  timeoutMs: 600_000,
  progress: true,
};

const rateLabel = (r: number) => (Number.isFinite(r) ? String(r) : 'inf');

/** Which option the levels sweep, for the x axis and the sweep table. */
function sweepAxis(o: BenchOptions): { name: string; label: (l: { maxConcurrency: number | null; requestRate: number }) => string } {
  if (o.maxConcurrencies.length > 1 || (o.requestRates.length === 1 && o.maxConcurrencies[0] !== null)) {
    return { name: 'max concurrency', label: (l) => (l.maxConcurrency === null ? 'none' : String(l.maxConcurrency)) };
  }
  return { name: 'request rate (req/s)', label: (l) => rateLabel(l.requestRate) };
}

class Progress {
  private last = 0;
  private done = 0;
  private failed = 0;
  private inflight = 0;
  private readonly started = performance.now();

  constructor(private readonly io: BenchIO, private readonly enabled: boolean, private readonly title: string, private readonly total: number) {
    if (!enabled) return;
    if (io.stderrIsTTY) this.draw(true);
    else io.stderr(`${title}: ${total} requests\n`);
  }

  setInflight(n: number): void {
    this.inflight = n;
    this.draw(false);
  }

  finish(ok: boolean): void {
    this.done++;
    if (!ok) this.failed++;
    this.draw(this.done === this.total);
  }

  end(): void {
    if (!this.enabled) return;
    const secs = ((performance.now() - this.started) / 1000).toFixed(1);
    this.inflight = 0;
    this.draw(true);
    if (this.io.stderrIsTTY) this.io.stderr('\n');
    else this.io.stderr(`${this.title}: ${this.done - this.failed} ok, ${this.failed} failed in ${secs} s\n`);
  }

  private draw(force: boolean): void {
    if (!this.enabled || !this.io.stderrIsTTY) return;
    const t = performance.now();
    if (!force && t - this.last < 100) return;
    this.last = t;
    const width = 30;
    const filled = this.total > 0 ? Math.round((this.done / this.total) * width) : width;
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const secs = ((t - this.started) / 1000).toFixed(1);
    this.io.stderr(`\r${this.title} [${bar}] ${this.done}/${this.total} ok ${this.done - this.failed} fail ${this.failed} in flight ${this.inflight} ${secs}s   `);
  }
}

function loadPrompts(o: BenchOptions): string[] {
  if (o.dataset === 'synthetic') return syntheticPrompts(o.numPrompts, o.promptLen, o.seed);
  return documentPrompts(readJsonlTexts(o.dataset), o.numPrompts, o.promptLen, o.seed);
}

function recordJson(r: RequestRecord) {
  return {
    index: r.index, success: r.success, error: r.error, start_ms: r.startMs, prompt_tokens: r.promptTokens, output_tokens: r.outputTokens,
    usage_reported: r.usageReported, content_events: r.contentEvents, ttft_ms: r.ttftMs, tpot_ms: r.tpotMs, e2el_ms: r.e2elMs, itl_ms: r.itlMs,
  };
}

function writeFile(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

export async function runBenchmark(o: BenchOptions, io: BenchIO): Promise<BenchResult> {
  if (o.requestRates.length > 1 && o.maxConcurrencies.length > 1) {
    throw new Error('sweep either --request-rate or --max-concurrency, not both (give one of them a single value)');
  }
  // 99 is always computed: the sweep table and the chart show p99
  const percentiles = [...new Set([...o.percentiles, 99])].sort((a, b) => a - b);
  const prompts = loadPrompts(o);
  const dispatcher = new Agent({ headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs, keepAliveTimeout: 30_000 });
  try {
    const model = o.model ?? (await firstModel(o.baseUrl, o.apiKey, dispatcher));
    const send = (prompt: string) => streamCompletion({
      baseUrl: o.baseUrl, endpoint: o.endpoint, ...(o.apiKey ? { apiKey: o.apiKey } : {}), model, prompt, maxTokens: o.maxTokens,
      extraBody: o.extraBody, dispatcher, timeoutMs: o.timeoutMs,
    });
    for (let i = 0; i < o.warmup; i++) {
      const res = await send(prompts[i % prompts.length]!);
      if (!res.success) throw new Error(`the warm-up request failed: ${res.error} (base URL ${o.baseUrl}, model ${model})`);
      if (i === 0 && !res.usageReported && o.progress) {
        io.stderr('warning: the server sent no usage chunk (stream_options.include_usage); output tokens are counted as content events\n');
      }
    }
    const axis = sweepAxis(o);
    const levels: LevelResult[] = [];
    const plan = o.requestRates.flatMap((requestRate) => o.maxConcurrencies.map((maxConcurrency) => ({ requestRate, maxConcurrency })));
    for (const [li, level] of plan.entries()) {
      const schedule = arrivalSchedule(o.numPrompts, { requestRate: level.requestRate, burstiness: o.burstiness }, createRng(o.seed + 1));
      const title = `${plan.length > 1 ? `[${li + 1}/${plan.length}] ` : ''}${axis.name} ${axis.label(level)}`;
      const progress = new Progress(io, o.progress, title, o.numPrompts);
      const run = await runLoad({ schedule, maxConcurrency: level.maxConcurrency, onInflight: (n) => progress.setInflight(n) }, async (i) => {
        const res = await send(prompts[i]!);
        progress.finish(res.success);
        return res;
      });
      progress.end();
      const records = run.results.map((res, i) => toRecord(i, res, run.startMs));
      const metrics = runMetrics(records, run.durationMs / 1000, percentiles, o.goodput, run.peakConcurrency);
      levels.push({ ...level, metrics, records });
      io.stdout(`${formatSummary(metrics, { ...level, burstiness: o.burstiness, goodput: o.goodput })}\n`);
      const errors = new Map<string, number>();
      for (const r of records) if (!r.success) errors.set(r.error ?? 'unknown error', (errors.get(r.error ?? 'unknown error') ?? 0) + 1);
      for (const [e, n] of [...errors].slice(0, 5)) io.stdout(`failed ${n}x: ${e}\n`);
    }
    if (levels.length > 1) io.stdout(`${formatSweep(levels.map((l) => ({ label: axis.label(l), metrics: l.metrics })), axis.name)}\n`);
    const json = {
      tool: 'calm bench',
      date: new Date().toISOString(),
      ...(o.label ? { label: o.label } : {}),
      base_url: o.baseUrl,
      endpoint: o.endpoint,
      model,
      dataset: o.dataset,
      prompt_len_words: o.promptLen,
      num_prompts: o.numPrompts,
      max_tokens: o.maxTokens,
      burstiness: o.burstiness,
      seed: o.seed,
      goodput: Object.fromEntries(GOODPUT_METRICS.filter((k) => o.goodput[k] !== undefined).map((k) => [`${k}_ms`, o.goodput[k]])),
      percentiles,
      extra_body: o.extraBody,
      sweep: axis.name,
      runs: levels.map((l) => ({
        max_concurrency: l.maxConcurrency,
        request_rate: Number.isFinite(l.requestRate) ? l.requestRate : 'inf',
        ...metricsJson(l.metrics),
        requests: l.records.map(recordJson),
      })),
    };
    if (o.output) {
      writeFile(o.output, `${JSON.stringify(json, null, 2)}\n`);
      if (o.progress) io.stderr(`results written to ${o.output}\n`);
    }
    if (o.svg) {
      const points: ChartPoint[] = levels.map((l) => ({
        label: axis.label(l),
        outputThroughput: l.metrics.outputThroughput,
        ttftP50: l.metrics.ttft.median,
        ttftP99: l.metrics.ttft.percentiles['99'] ?? 0,
        tpotP50: l.metrics.tpot.median,
        tpotP99: l.metrics.tpot.percentiles['99'] ?? 0,
      }));
      const data = o.dataset === 'synthetic' ? 'synthetic' : o.dataset.split('/').at(-1)!;
      writeFile(o.svg, renderChart(points, {
        title: `calm bench: ${model}${o.label ? ` (${o.label})` : ''}`,
        subtitle: `${o.numPrompts} prompts of ${o.promptLen} words (${data}), ${o.maxTokens} output tokens` +
          (o.maxConcurrencies.length > 1 ? `, request rate ${rateLabel(o.requestRates[0]!)}` : ''),
        xLabel: axis.name,
      }));
      if (o.progress) io.stderr(`chart written to ${o.svg}\n`);
    }
    return { model, xName: axis.name, levels, json };
  } finally {
    await dispatcher.close();
  }
}
