// Statistics and the summary of a serving benchmark, with vLLM `bench serve`'s definitions
// (/work/shared/docs/serving.md, "Benchmark definitions"):
//   TTFT = first event with non-empty choices - send time
//   ITL  = gaps between successive events with non-empty choices
//   E2EL = last event with non-empty choices - send time
//   TPOT = (E2EL - TTFT) / (output_tokens - 1), output_tokens from the usage chunk
// Per run: request, output-token and total-token throughput over the benchmark's wall time,
// goodput (requests meeting every given TTFT/TPOT/E2EL target, per second), and the mean,
// median, standard deviation and percentiles of each latency. Times are milliseconds.

/** What one streamed request produced: absolute times (ms, same clock) and token counts. */
export interface RequestTiming {
  /** when the request was sent */
  sendMs: number;
  /** arrival time of every event with non-empty `choices`, in order */
  contentEventMs: number[];
  /** completion tokens (from the usage chunk) */
  outputTokens: number;
}

/** The per-request latencies derived from its event times. */
export interface RequestLatencies {
  ttftMs: number;
  itlMs: number[];
  e2elMs: number;
  /** (E2EL - TTFT) / (outputTokens - 1); null when outputTokens <= 1 (vLLM leaves it out of TPOT stats, counts it as 0 for goodput) */
  tpotMs: number | null;
}

/** Latencies of one request by the definitions above; null when no content event arrived (the request failed). */
export function requestLatencies(t: RequestTiming): RequestLatencies | null {
  const first = t.contentEventMs[0];
  const last = t.contentEventMs.at(-1);
  if (first === undefined || last === undefined) return null;
  const itlMs: number[] = [];
  for (let i = 1; i < t.contentEventMs.length; i++) itlMs.push(t.contentEventMs[i]! - t.contentEventMs[i - 1]!);
  const ttftMs = first - t.sendMs;
  const e2elMs = last - t.sendMs;
  const tpotMs = t.outputTokens > 1 ? (e2elMs - ttftMs) / (t.outputTokens - 1) : null;
  return { ttftMs, itlMs, e2elMs, tpotMs };
}

/**
 * The p-th percentile (0..100) of sorted values, interpolated linearly between the closest
 * ranks: numpy's default (`np.percentile(..., method="linear")`), which vLLM uses.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  if (p <= 0) return sorted[0]!;
  if (p >= 100) return sorted.at(-1)!;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

export interface Distribution {
  count: number;
  mean: number;
  median: number;
  /** population standard deviation (numpy's np.std) */
  std: number;
  min: number;
  max: number;
  /** percentile -> value, for the requested percentiles */
  percentiles: Record<string, number>;
}

/** Mean, median, std, min, max and percentiles; all 0 for no values (as vLLM's `np.mean(x or 0)`). */
export function distribution(values: readonly number[], percentiles: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = n ? sorted.reduce((s, v) => s + v, 0) / n : 0;
  const std = n ? Math.sqrt(sorted.reduce((s, v) => s + (v - mean) ** 2, 0) / n) : 0;
  const out: Record<string, number> = {};
  for (const p of percentiles) out[percentileKey(p)] = percentile(sorted, p);
  return { count: n, mean, median: percentile(sorted, 50), std, min: n ? sorted[0]! : 0, max: n ? sorted[n - 1]! : 0, percentiles: out };
}

/** "99" for 99, "99.9" for 99.9: the key of a percentile in `percentiles` and in JSON names (p99_ttft_ms). */
export function percentileKey(p: number): string {
  return String(p);
}

/** Service-level targets (ms) for goodput; a request is good when it meets every one given. */
export interface GoodputTargets {
  ttft?: number;
  tpot?: number;
  e2el?: number;
}

export const GOODPUT_METRICS = ['ttft', 'tpot', 'e2el'] as const;

/** One request as the benchmark recorded it. */
export interface RequestRecord {
  index: number;
  success: boolean;
  error: string | null;
  /** ms since the start of the run when the request was sent (after waiting for a concurrency slot) */
  startMs: number;
  /** prompt tokens (usage.prompt_tokens; 0 when the server reported no usage) */
  promptTokens: number;
  /** completion tokens (usage.completion_tokens, or the number of content events when usage is missing) */
  outputTokens: number;
  /** true when the usage chunk was seen */
  usageReported: boolean;
  contentEvents: number;
  ttftMs: number | null;
  tpotMs: number | null;
  e2elMs: number | null;
  itlMs: number[];
}

export interface RunMetrics {
  completed: number;
  failed: number;
  /** wall time of the run, first arrival to last completion (s) */
  durationS: number;
  totalInputTokens: number;
  totalOutputTokens: number;
  /** completed / duration */
  requestThroughput: number;
  /** good requests / duration; null when no targets were given */
  requestGoodput: number | null;
  goodRequests: number | null;
  /** output tokens of completed requests / duration */
  outputThroughput: number;
  /** (input + output tokens of completed requests) / duration */
  totalTokenThroughput: number;
  /** most requests in flight at once */
  peakConcurrency: number;
  /** mean output tokens per content event (K for a CALM server that sends one event per chunk) */
  tokensPerEvent: number;
  ttft: Distribution;
  tpot: Distribution;
  itl: Distribution;
  e2el: Distribution;
}

export function runMetrics(records: readonly RequestRecord[], durationS: number, percentiles: readonly number[],
  goodput: GoodputTargets = {}, peakConcurrency = 0): RunMetrics {
  const ok = records.filter((r) => r.success);
  const ttfts = ok.map((r) => r.ttftMs!);
  const e2els = ok.map((r) => r.e2elMs!);
  const tpots = ok.filter((r) => r.tpotMs !== null).map((r) => r.tpotMs!);
  const itls = ok.flatMap((r) => r.itlMs);
  const totalInputTokens = ok.reduce((s, r) => s + r.promptTokens, 0);
  const totalOutputTokens = ok.reduce((s, r) => s + r.outputTokens, 0);
  const events = ok.reduce((s, r) => s + r.contentEvents, 0);
  const targets = GOODPUT_METRICS.filter((k) => goodput[k] !== undefined);
  let good: number | null = null;
  if (targets.length > 0) {
    good = ok.filter((r) => targets.every((k) => {
      const value = k === 'ttft' ? r.ttftMs! : k === 'e2el' ? r.e2elMs! : (r.tpotMs ?? 0);
      return value <= goodput[k]!;
    })).length;
  }
  const per = (x: number) => (durationS > 0 ? x / durationS : 0);
  return {
    completed: ok.length,
    failed: records.length - ok.length,
    durationS,
    totalInputTokens,
    totalOutputTokens,
    requestThroughput: per(ok.length),
    requestGoodput: good === null ? null : per(good),
    goodRequests: good,
    outputThroughput: per(totalOutputTokens),
    totalTokenThroughput: per(totalInputTokens + totalOutputTokens),
    peakConcurrency,
    tokensPerEvent: events > 0 ? totalOutputTokens / events : 0,
    ttft: distribution(ttfts, percentiles),
    tpot: distribution(tpots, percentiles),
    itl: distribution(itls, percentiles),
    e2el: distribution(e2els, percentiles),
  };
}

/** vLLM's JSON names: mean_ttft_ms, median_ttft_ms, std_ttft_ms, p99_ttft_ms, ... */
export function metricsJson(m: RunMetrics): Record<string, number | null> {
  const out: Record<string, number | null> = {
    completed: m.completed,
    failed: m.failed,
    duration: m.durationS,
    total_input_tokens: m.totalInputTokens,
    total_output_tokens: m.totalOutputTokens,
    request_throughput: m.requestThroughput,
    request_goodput: m.requestGoodput,
    output_throughput: m.outputThroughput,
    total_token_throughput: m.totalTokenThroughput,
    max_concurrent_requests: m.peakConcurrency,
    output_tokens_per_event: m.tokensPerEvent,
  };
  for (const name of ['ttft', 'tpot', 'itl', 'e2el'] as const) {
    const d = m[name];
    out[`mean_${name}_ms`] = d.mean;
    out[`median_${name}_ms`] = d.median;
    out[`std_${name}_ms`] = d.std;
    for (const [p, v] of Object.entries(d.percentiles)) out[`p${p}_${name}_ms`] = v;
  }
  return out;
}

const WIDTH = 50;

/** Centred in 50 columns as Python's '{:=^50}' centres it (vLLM's headings). */
function banner(t: string, fill: string): string {
  const left = Math.floor((WIDTH - t.length) / 2);
  return fill.repeat(Math.max(0, left)) + t + fill.repeat(Math.max(0, WIDTH - left - t.length));
}

function row(label: string, value: number | string, digits = 2): string {
  const v = typeof value === 'number' ? (Number.isInteger(value) && digits === 0 ? String(value) : value.toFixed(digits)) : value;
  return `${label.padEnd(40)} ${v}`;
}

export interface SummaryContext {
  maxConcurrency: number | null;
  requestRate: number;
  burstiness: number;
  goodput: GoodputTargets;
}

/** The readable table, laid out like vLLM's "Serving Benchmark Result". */
export function formatSummary(m: RunMetrics, c: SummaryContext): string {
  const lines = [banner(' Serving Benchmark Result ', '=')];
  lines.push(row('Successful requests:', m.completed, 0));
  lines.push(row('Failed requests:', m.failed, 0));
  if (c.maxConcurrency !== null) lines.push(row('Maximum request concurrency:', c.maxConcurrency, 0));
  lines.push(row('Request rate configured (RPS):', Number.isFinite(c.requestRate) ? c.requestRate.toFixed(2) : 'inf'));
  if (Number.isFinite(c.requestRate) && c.burstiness !== 1) lines.push(row('Burstiness:', c.burstiness));
  lines.push(row('Benchmark duration (s):', m.durationS));
  lines.push(row('Total input tokens:', m.totalInputTokens, 0));
  lines.push(row('Total generated tokens:', m.totalOutputTokens, 0));
  lines.push(row('Request throughput (req/s):', m.requestThroughput));
  if (m.requestGoodput !== null) {
    const t = GOODPUT_METRICS.filter((k) => c.goodput[k] !== undefined).map((k) => `${k}<=${c.goodput[k]}ms`).join(' ');
    lines.push(row(`Request goodput (req/s):`, m.requestGoodput));
    lines.push(row('  targets:', t));
  }
  lines.push(row('Output token throughput (tok/s):', m.outputThroughput));
  lines.push(row('Peak concurrent requests:', m.peakConcurrency, 0));
  lines.push(row('Total token throughput (tok/s):', m.totalTokenThroughput));
  const section = (title: string, name: 'ttft' | 'tpot' | 'itl' | 'e2el', short: string) => {
    lines.push(banner(title, '-'));
    const d = m[name];
    lines.push(row(`Mean ${short} (ms):`, d.mean));
    lines.push(row(`Median ${short} (ms):`, d.median));
    for (const [p, v] of Object.entries(d.percentiles)) lines.push(row(`P${p} ${short} (ms):`, v));
  };
  section('Time to First Token', 'ttft', 'TTFT');
  section('Time per Output Token (excl. 1st token)', 'tpot', 'TPOT');
  section('Inter-token Latency', 'itl', 'ITL');
  lines.push(row('Output tokens per event (mean):', m.tokensPerEvent));
  section('End-to-end Latency', 'e2el', 'E2EL');
  lines.push(banner('', '='));
  return lines.join('\n');
}

export interface SweepRow {
  label: string;
  metrics: RunMetrics;
}

/** One line per load level: the numbers the chart plots. */
export function formatSweep(rows: readonly SweepRow[], xName: string): string {
  const pick = (d: Distribution, p: string) => d.percentiles[p] ?? (p === '50' ? d.median : NaN);
  const head = [xName, 'ok', 'fail', 'req/s', 'out tok/s', 'TTFT p50', 'TTFT p99', 'TPOT p50', 'TPOT p99', 'ITL p50', 'E2EL p50'];
  const body = rows.map((r) => [
    r.label, String(r.metrics.completed), String(r.metrics.failed), r.metrics.requestThroughput.toFixed(2), r.metrics.outputThroughput.toFixed(1),
    r.metrics.ttft.median.toFixed(1), pick(r.metrics.ttft, '99').toFixed(1), r.metrics.tpot.median.toFixed(2), pick(r.metrics.tpot, '99').toFixed(2),
    r.metrics.itl.median.toFixed(2), r.metrics.e2el.median.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [banner(' Sweep (latencies in ms) ', '='), fmt(head), ...body.map(fmt), banner('', '=')].join('\n');
}
