// `calm bench`: a serving benchmark client for any OpenAI-compatible completions endpoint,
// measuring what vLLM `bench serve` measures (TTFT, TPOT, ITL, E2EL, throughput, goodput).
// docs/load-testing.md describes every option and metric.
import { parseArgs } from 'node:util';
import { BENCH_DEFAULTS, type BenchIO, type BenchOptions, runBenchmark } from '../bench/runner.js';
import { GOODPUT_METRICS, type GoodputTargets } from '../bench/report.js';
import { PROCESS_IO, UsageError } from './io.js';

export const BENCH_HELP = `usage: calm bench [options]

Sends streamed completions (stream_options.include_usage) to an OpenAI-compatible server and
reports TTFT, TPOT, ITL and E2EL (mean, median, percentiles), request / output-token /
total-token throughput and goodput, as vLLM's \`bench serve\` defines them.

server
  --base-url URL           server root (default ${BENCH_DEFAULTS.baseUrl}; a trailing /v1 is dropped)
  --endpoint PATH          completions path (default ${BENCH_DEFAULTS.endpoint})
  --api-key KEY            sent as Authorization: Bearer KEY (default: $CALM_API_KEY or $OPENAI_API_KEY)
  --model ID               model id (default: the first of GET /v1/models)

prompts
  --dataset synthetic|FILE.jsonl
                           synthetic: random common English words; FILE: one {"text": ...} per
                           line, cut into windows of --prompt-len words (default synthetic)
  --prompt-len N           prompt length in WORDS, not tokens (default ${BENCH_DEFAULTS.promptLen})
  --num-prompts N          requests per load level (default ${BENCH_DEFAULTS.numPrompts})
  --max-tokens N           output length: max_tokens sent, no stop strings (default ${BENCH_DEFAULTS.maxTokens})
  --extra-body JSON        fields merged into every request body, e.g. '{"temperature":0.7}'
                           or '{"ignore_eos":true}' for vLLM
  --temperature T          shorthand for --extra-body '{"temperature":T}' (default: not sent)
  --seed N                 seed of the prompts and the arrival times (default ${BENCH_DEFAULTS.seed})

load (one benchmark per value of a comma-separated list; sweep one option at a time)
  --request-rate R[,R..]   requests per second, Poisson arrivals; inf: all at once (default inf)
  --burstiness B           gamma shape of the arrival gaps: 1 Poisson, <1 burstier (default 1)
  --max-concurrency N[,N..]  at most N requests in flight; e.g. 1,4,16,64 (default: no limit)
  --warmup N               requests sent one at a time first, not counted (default ${BENCH_DEFAULTS.warmup})
  --timeout S              per-request timeout in seconds (default ${BENCH_DEFAULTS.timeoutMs / 1000})

results
  --goodput KEY:MS ...     targets for goodput: ttft:MS tpot:MS e2el:MS (space- or comma-separated,
                           or repeated); a request is good when it meets all of them
  --percentiles P[,P..]    percentiles to report besides the median (default 90,99; 99 is always computed)
  --output FILE.json       write the configuration, the metrics of every level and every request
  --svg FILE.svg           write a chart: output tok/s, TTFT p50/p99 and TPOT p50/p99 per level
  --label TEXT             a name for this run, kept in the JSON and the chart title
  --no-progress            no progress bar on stderr
  -h, --help               this text

exit status: 0 when every request succeeded, 1 when any failed, 2 for bad options.

example:
  calm bench --base-url http://localhost:8000 --dataset ../shared/data/wikitext103-test-documents.jsonl \\
    --prompt-len 64 --max-tokens 64 --max-concurrency 1,4,16,64 --num-prompts 64 --output bench.json --svg bench.svg`;

function positiveInt(name: string, v: string, min = 1): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer of at least ${min}, got ${JSON.stringify(v)}`);
  return n;
}

function positiveNumber(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got ${JSON.stringify(v)}`);
  return n;
}

function list(v: string): string[] {
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

/** "ttft:500" style targets, from every --goodput value and the words that follow it. */
export function parseGoodput(values: readonly string[]): GoodputTargets {
  const out: GoodputTargets = {};
  for (const item of values.flatMap((v) => v.split(/[\s,]+/)).filter(Boolean)) {
    const m = /^([a-z0-9]+):(.+)$/i.exec(item);
    const key = m?.[1]?.toLowerCase();
    if (!m || !GOODPUT_METRICS.includes(key as (typeof GOODPUT_METRICS)[number])) {
      throw new UsageError(`--goodput takes ttft:MS, tpot:MS and e2el:MS, got ${JSON.stringify(item)}`);
    }
    const ms = Number(m[2]);
    if (!Number.isFinite(ms) || ms <= 0) throw new UsageError(`--goodput ${key} must be a positive number of milliseconds, got ${JSON.stringify(m[2])}`);
    out[key as keyof GoodputTargets] = ms;
  }
  return out;
}

/** Reads the command line into benchmark options (throws UsageError on bad input); null for --help. */
export function parseBenchArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): BenchOptions | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      tokens: true,
      options: {
        'base-url': { type: 'string' }, endpoint: { type: 'string' }, 'api-key': { type: 'string' }, model: { type: 'string' },
        dataset: { type: 'string' }, 'prompt-len': { type: 'string' }, 'num-prompts': { type: 'string' }, 'max-tokens': { type: 'string' },
        'extra-body': { type: 'string' }, temperature: { type: 'string' }, seed: { type: 'string' },
        'request-rate': { type: 'string' }, burstiness: { type: 'string' }, 'max-concurrency': { type: 'string' }, warmup: { type: 'string' },
        timeout: { type: 'string' }, goodput: { type: 'string', multiple: true }, percentiles: { type: 'string' },
        output: { type: 'string' }, svg: { type: 'string' }, label: { type: 'string' }, 'no-progress': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, tokens } = parsed;
  if (values.help) return null;
  // vLLM writes `--goodput ttft:500 tpot:50`: the words after --goodput belong to it
  const goodputWords = [...(values.goodput ?? [])];
  let afterGoodput = false;
  for (const t of tokens ?? []) {
    if (t.kind === 'option') afterGoodput = t.name === 'goodput';
    else if (t.kind === 'positional') {
      if (!afterGoodput) throw new UsageError(`unexpected argument ${JSON.stringify(t.value)} (see calm bench --help)`);
      goodputWords.push(t.value);
    } else afterGoodput = false;
  }
  const o: BenchOptions = { ...BENCH_DEFAULTS, goodput: {}, extraBody: {} };
  if (values['base-url'] !== undefined) o.baseUrl = values['base-url'];
  o.baseUrl = o.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
  if (!/^https?:\/\//.test(o.baseUrl)) throw new UsageError(`--base-url must start with http:// or https://, got ${JSON.stringify(o.baseUrl)}`);
  if (values.endpoint !== undefined) o.endpoint = values.endpoint.startsWith('/') ? values.endpoint : `/${values.endpoint}`;
  const apiKey = values['api-key'] ?? env.CALM_API_KEY ?? env.OPENAI_API_KEY;
  if (apiKey) o.apiKey = apiKey;
  if (values.model !== undefined) o.model = values.model;
  if (values.dataset !== undefined) o.dataset = values.dataset;
  if (values['prompt-len'] !== undefined) o.promptLen = positiveInt('prompt-len', values['prompt-len']);
  if (values['num-prompts'] !== undefined) o.numPrompts = positiveInt('num-prompts', values['num-prompts']);
  if (values['max-tokens'] !== undefined) o.maxTokens = positiveInt('max-tokens', values['max-tokens']);
  if (values['extra-body'] !== undefined) {
    let extra: unknown;
    try {
      extra = JSON.parse(values['extra-body']);
    } catch {
      throw new UsageError(`--extra-body must be a JSON object, got ${JSON.stringify(values['extra-body'])}`);
    }
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new UsageError('--extra-body must be a JSON object');
    o.extraBody = extra as Record<string, unknown>;
  }
  if (values.temperature !== undefined) {
    const t = Number(values.temperature);
    if (!Number.isFinite(t) || t < 0) throw new UsageError(`--temperature must be a non-negative number, got ${JSON.stringify(values.temperature)}`);
    o.extraBody = { ...o.extraBody, temperature: t };
  }
  if (values.seed !== undefined) o.seed = positiveInt('seed', values.seed, 0);
  if (values['request-rate'] !== undefined) {
    o.requestRates = list(values['request-rate']).map((v) => (/^inf(inity)?$/i.test(v) ? Infinity : positiveNumber('request-rate', v)));
    if (o.requestRates.length === 0) throw new UsageError('--request-rate needs a value');
  }
  if (values.burstiness !== undefined) o.burstiness = positiveNumber('burstiness', values.burstiness);
  if (values['max-concurrency'] !== undefined) {
    o.maxConcurrencies = list(values['max-concurrency']).map((v) => (/^(none|inf)$/i.test(v) ? null : positiveInt('max-concurrency', v)));
    if (o.maxConcurrencies.length === 0) throw new UsageError('--max-concurrency needs a value');
  }
  if (o.requestRates.length > 1 && o.maxConcurrencies.length > 1) {
    throw new UsageError('sweep either --request-rate or --max-concurrency, not both (give one of them a single value)');
  }
  if (values.warmup !== undefined) o.warmup = positiveInt('warmup', values.warmup, 0);
  if (values.timeout !== undefined) o.timeoutMs = positiveNumber('timeout', values.timeout) * 1000;
  if (goodputWords.length > 0) o.goodput = parseGoodput(goodputWords);
  if (values.percentiles !== undefined) {
    o.percentiles = list(values.percentiles).map((v) => {
      const p = Number(v);
      if (!Number.isFinite(p) || p <= 0 || p >= 100) throw new UsageError(`--percentiles takes numbers between 0 and 100, got ${JSON.stringify(v)}`);
      return p;
    });
  }
  if (values.output !== undefined) o.output = values.output;
  if (values.svg !== undefined) o.svg = values.svg;
  if (values.label !== undefined) o.label = values.label;
  if (values['no-progress']) o.progress = false;
  return o;
}

/** `calm bench [options]`: returns the exit status (0 all requests succeeded, 1 some failed or the run failed, 2 bad options). */
export async function benchCommand(argv: string[], io: BenchIO = PROCESS_IO): Promise<number> {
  let options: BenchOptions | null;
  try {
    options = parseBenchArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`calm bench: ${err.message}\n`);
    return 2;
  }
  if (options === null) {
    io.stdout(`${BENCH_HELP}\n`);
    return 0;
  }
  const result = await runBenchmark(options, io);
  return result.levels.some((l) => l.metrics.failed > 0) ? 1 : 0;
}
