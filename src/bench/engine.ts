// `npm run bench:engine`: drives the engine in-process (no HTTP, no worker thread) on the
// default bundles.
//   (default)             output tokens/s by concurrency, onnxruntime vs JS share, stage times
//   --scenario NAME       the engine's behaviour under sharing (docs/benchmarks.md, "Engine v2"):
//     after-long          8 short streams' step time before and after a 4,500-token request ran
//     prefill-burst       4 decoding streams while 24 prompts of 1,024 tokens arrive: their p99 gap vs their step alone
//     large-pool          8 T = 1 streams alone, then beside one T = 0.5 request at the largest allowed pool
//     admission           how many 128-token requests run at once under the default KV budget
//     prefix              time to first chunk of n = 8 choices of one prompt against n = 1
//     memory              the process's RSS and heap over 10,000 short requests (the engine alone)
//     transfer            --device webgpu: host <-> device bytes of a decode step at 256 and 2,048 positions of context
//     sampler-rates       T < 1 on the shipped model: how often each sampler reaches its temperature
//                         (the batch pool has a chunk repeated floor(1/T) times; the exact sampler decides
//                         within its draw budget), draws and time per chunk
//   --device cpu|webgpu   where the graphs run (webgpu: the KV pool on the device; src/model/device-pool.ts)
//   --config JSON         engine settings to override (e.g. '{"maxPrefillPositions": 32}')
//   --calm DIR, --ar DIR  the bundles of the throughput table (default: the shipped ones), e.g. the
//                         random-weight CALM-M and its same-backbone token model (calmtk.random_bundle)
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { ENGINE_DEFAULTS, type EngineConfig } from '../engine/config.js';
import type { Engine, StepReport, StepTiming } from '../engine/engine.js';
import type { InputProcessor } from '../engine/input.js';
import { createEngine } from '../engine/setup.js';
import type { GenerateRequest } from '../engine/types.js';
import { loadBundle } from '../model/bundle.js';
import { ModelRunner } from '../model/runner.js';
import { DEVICES, isDevice, openSessions } from '../model/sessions.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../model/defaults.js';

interface Scenario {
  name: string;
  modelDir: string;
  request: Pick<GenerateRequest, 'temperature' | 'poolSize'>;
}

interface Row {
  scenario: string;
  concurrency: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  steps: number;
  onnxShare: number;
  jsShare: number;
  msPerStep: Record<'backbone' | 'head' | 'decoder' | 'sampler' | 'other', number>;
  /** host -> device and device -> host KB per step (0 on the CPU) */
  kbPerStep: { up: number; down: number };
  /** weight multiply-accumulates per output token (manifest "macs"; attention's own left out), and the rate achieved */
  mmacPerToken: number;
  gmacPerSecond: number;
}

const PROMPTS = [
  'In the beginning God created the heaven and the earth.',
  'And the LORD spake unto Moses, saying,',
  'hacker: n. A person who enjoys exploring the details of programmable systems',
  'CYNIC, n. A blackguard whose faulty vision sees things as they are',
  'Blessed are the poor in spirit: for theirs is the kingdom of heaven.',
  'The quick brown fox jumps over the lazy dog.',
];

/** An in-process engine with a record of every step and of when each request's chunks came. */
class Bench {
  readonly steps: StepTiming[] = [];
  /** per request id: ms (performance.now) of each chunk with output */
  readonly chunks = new Map<string, number[]>();
  readonly done = new Set<string>();
  maxRunning = 0;

  private constructor(readonly engine: Engine, readonly input: InputProcessor) {}

  /** engine settings every bench engine gets (--config) */
  static base: Partial<EngineConfig> = {};

  static async create(modelDir: string, threads: number, overrides: Partial<EngineConfig> = {}): Promise<Bench> {
    let self: Bench | null = null;
    const onReport = (r: StepReport) => self!.record(r);
    const { engine, input } = await createEngine({ ...ENGINE_DEFAULTS, modelDir, intraOpThreads: threads, ...Bench.base, ...overrides }, onReport);
    self = new Bench(engine, input);
    return self;
  }

  submit(req: GenerateRequest): void {
    this.chunks.set(req.id, []);
    this.engine.submit(this.input.prepare({ ignoreEos: true, ...req }));
  }

  /** Steps until every id in `ids` is done (all submitted ones by default). */
  async until(ids: readonly string[] = [...this.chunks.keys()]): Promise<void> {
    while (ids.some((id) => !this.done.has(id))) if (!(await this.engine.step())) throw new Error('the engine went idle with requests unfinished');
  }

  private record(r: StepReport): void {
    if (r.timing) this.steps.push(r.timing);
    this.maxRunning = Math.max(this.maxRunning, r.stats.running);
    const now = performance.now();
    for (const e of r.events) {
      if (e.type === 'error') throw new Error(`${e.id}: ${e.message}`);
      if (e.type === 'done') this.done.add(e.id);
      else if (e.tokenIds.length > 0) this.chunks.get(e.id)?.push(now);
    }
  }
}

const median = (xs: number[]) => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** Mean step time over the steps recorded since `from`. */
function meanStep(b: Bench, from: number): number {
  const steps = b.steps.slice(from);
  return steps.reduce((n, t) => n + t.totalMs, 0) / steps.length;
}

async function warm(b: Bench): Promise<void> {
  for (let i = 0; i < 4; i++) b.submit({ id: `warm${i}`, prompt: PROMPTS[i]!, maxTokens: 16, temperature: 1, seed: i });
  await b.until();
}

/** Each level runs at least `rounds` waves, and enough waves for `minTokens` tokens (a level of one stream is otherwise too short to time). */
async function measure(s: Scenario, concurrency: number, maxTokens: number, threads: number, minRounds: number, minTokens: number): Promise<Row> {
  const rounds = Math.max(minRounds, Math.ceil(minTokens / (concurrency * maxTokens)));
  const b = await Bench.create(s.modelDir, threads, { maxRunning: Math.max(ENGINE_DEFAULTS.maxRunning, concurrency) });
  await warm(b);
  const from = b.steps.length;
  const start = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < concurrency * rounds; i++) {
    const id = `r${i}`;
    ids.push(id);
    b.submit({ id, prompt: PROMPTS[i % PROMPTS.length]!, maxTokens, seed: i, ...s.request });
    // `rounds` waves of `concurrency` requests, each wave submitted when the previous is done
    if ((i + 1) % concurrency === 0) await b.until(ids);
  }
  const seconds = (performance.now() - start) / 1000;
  const steps = b.steps.slice(from);
  const sum = (f: (t: StepTiming) => number) => steps.reduce((n, t) => n + f(t), 0);
  const total = sum((t) => t.totalMs);
  const onnx = sum((t) => t.backboneMs + t.headMs + t.decoderMs);
  const per = (ms: number) => ms / steps.length;
  const tokens = ids.length * maxTokens;
  const macs = loadBundle(s.modelDir).manifest.macs;
  const totalMacs = macs ? steps.reduce((n, t) => n + t.positions * macs.backbone + t.draws * ((macs.head ?? 0) + (macs.decoder ?? 0)), 0) : NaN;
  return {
    scenario: s.name, concurrency, tokens, seconds, tokensPerSecond: tokens / seconds, steps: steps.length,
    onnxShare: onnx / total, jsShare: 1 - onnx / total,
    msPerStep: {
      backbone: per(sum((t) => t.backboneMs)), head: per(sum((t) => t.headMs)), decoder: per(sum((t) => t.decoderMs)),
      sampler: per(sum((t) => t.samplerMs)), other: per(total - onnx - sum((t) => t.samplerMs)),
    },
    kbPerStep: { up: per(sum((t) => t.uploadBytes)) / 1024, down: per(sum((t) => t.downloadBytes)) / 1024 },
    mmacPerToken: totalMacs / tokens / 1e6,
    gmacPerSecond: totalMacs / seconds / 1e9,
  };
}

function table(rows: Row[]): string {
  const head = '| scenario | concurrency | output tok/s | steps | ms/step backbone | head | decoder | sampler (JS) | other JS | onnxruntime share | JS share | KB/step up / down | MMAC/token | GMAC/s |';
  const sep = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const lines = rows.map((r) => {
    const m = r.msPerStep;
    return `| ${r.scenario} | ${r.concurrency} | ${r.tokensPerSecond.toFixed(1)} | ${r.steps} | ${m.backbone.toFixed(2)} | ${m.head.toFixed(2)} | ` +
      `${m.decoder.toFixed(2)} | ${m.sampler.toFixed(2)} | ${m.other.toFixed(2)} | ${(100 * r.onnxShare).toFixed(1)} % | ${(100 * r.jsShare).toFixed(1)} % | ` +
      `${r.kbPerStep.up.toFixed(2)} / ${r.kbPerStep.down.toFixed(2)} | ` +
      `${r.mmacPerToken.toFixed(2)} | ${r.gmacPerSecond.toFixed(2)} |`;
  });
  return [head, sep, ...lines].join('\n');
}

/** Eight short streams decode for `steps` steps; returns their mean step time. */
async function shortStreams(b: Bench, tag: string, steps: number, extra: Partial<GenerateRequest> = {}): Promise<number> {
  const ids = Array.from({ length: 8 }, (_, i) => `${tag}${i}`);
  ids.forEach((id, i) => b.submit({ id, prompt: PROMPTS[i % PROMPTS.length]!, maxTokens: 4 * (steps + 8), temperature: 1, seed: i, ...extra }));
  for (let i = 0; i < 4; i++) await b.engine.step(); // admission and prefill
  const from = b.steps.length;
  for (let i = 0; i < steps; i++) await b.engine.step();
  const ms = meanStep(b, from);
  for (const id of ids) b.engine.cancel(id);
  await b.engine.step();
  return ms;
}

const longPrompt = (tokens: number) => Array.from({ length: tokens }, (_, i) => 3 + ((i * 7919) % 4000));

async function scenario(name: string, threads: number): Promise<Record<string, unknown>> {
  switch (name) {
    case 'transfer': {
      const b = await Bench.create(DEFAULT_MODEL_DIR, threads);
      const k = b.input.limits.patchSize;
      const out: Record<string, unknown> = { scenario: name, device: Bench.base.device ?? 'cpu' };
      for (const positions of [256, 2048]) {
        // a prompt that leaves room for 8 chunks of output within the context
        b.submit({ id: `ctx${positions}`, prompt: longPrompt((positions - 9) * k), maxTokens: 8 * k, temperature: 1, seed: 1 });
        const from = b.steps.length;
        await b.until([`ctx${positions}`]);
        const decode = b.steps.slice(from).filter((t) => t.positions === 1);
        out[`bytes_per_decode_step_at_${positions}`] = median(decode.map((t) => t.uploadBytes + t.downloadBytes));
        out[`up_at_${positions}`] = median(decode.map((t) => t.uploadBytes));
        out[`down_at_${positions}`] = median(decode.map((t) => t.downloadBytes));
        out[`step_ms_at_${positions}`] = median(decode.map((t) => t.totalMs));
      }
      return out;
    }
    case 'after-long': {
      const b = await Bench.create(DEFAULT_MODEL_DIR, threads);
      await warm(b);
      const before = await shortStreams(b, 'before', 40);
      b.submit({ id: 'long', prompt: longPrompt(4500 - 64), maxTokens: 64, temperature: 1, seed: 1 });
      await b.until(['long']);
      const after = await shortStreams(b, 'after', 40);
      return { scenario: name, step_ms_before: before, step_ms_after: after, ratio: after / before };
    }
    case 'prefill-burst': {
      const b = await Bench.create(DEFAULT_MODEL_DIR, threads);
      await warm(b);
      const streams = Array.from({ length: 4 }, (_, i) => `s${i}`);
      streams.forEach((id, i) => b.submit({ id, prompt: PROMPTS[i]!, maxTokens: 4000, temperature: 1, seed: i }));
      for (let i = 0; i < 4; i++) await b.engine.step();
      let from = b.steps.length;
      for (let i = 0; i < 30; i++) await b.engine.step();
      const alone = meanStep(b, from);
      const mark = performance.now();
      const burst = Array.from({ length: 24 }, (_, i) => `p${i}`);
      burst.forEach((id, i) => b.submit({ id, prompt: longPrompt(1024).map((t) => t + i), maxTokens: 8, temperature: 1, seed: i }));
      from = b.steps.length;
      await b.until(burst);
      const gaps = streams.flatMap((id) => {
        const t = b.chunks.get(id)!.filter((x) => x >= mark);
        return t.slice(1).map((x, i) => x - t[i]!);
      });
      const p99 = quantile(gaps, 0.99);
      return {
        scenario: name, stream_step_ms_alone: alone, p50_gap_ms_during_burst: median(gaps), p99_gap_ms_during_burst: p99, max_gap_ms: Math.max(...gaps),
        ratio_p50: median(gaps) / alone, ratio_p99: p99 / alone, steps_during_burst: b.steps.length - from,
      };
    }
    case 'large-pool': {
      const b = await Bench.create(DEFAULT_MODEL_DIR, threads);
      await warm(b);
      const alone = await shortStreams(b, 'alone', 30);
      const maxPool = b.input.limits.maxPoolSize;
      b.submit({ id: 'pool', prompt: PROMPTS[0]!, maxTokens: 4000, temperature: 0.5, poolSize: maxPool, seed: 9 });
      const shared = await shortStreams(b, 'shared', 30);
      return { scenario: name, pool_size: maxPool, step_ms_alone: alone, step_ms_beside_pool: shared, ratio: shared / alone };
    }
    case 'admission': {
      const b = await Bench.create(DEFAULT_MODEL_DIR, threads);
      const ids = Array.from({ length: 600 }, (_, i) => `a${i}`);
      ids.forEach((id, i) => b.submit({ id, prompt: PROMPTS[i % PROMPTS.length]!, maxTokens: 128, temperature: 1, seed: i }));
      for (let i = 0; i < 40; i++) await b.engine.step();
      return { scenario: name, max_running: b.maxRunning, blocks_total: b.engine.blocks.blocks, max_running_setting: b.engine.options.maxRunning };
    }
    case 'prefix': {
      const ttft = async (n: number) => {
        const b = await Bench.create(DEFAULT_MODEL_DIR, threads);
        await warm(b);
        const prompt = longPrompt(1024);
        const ids = Array.from({ length: n }, (_, i) => `c${i}`);
        const start = performance.now();
        ids.forEach((id, i) => b.submit({ id, prompt, maxTokens: 16, temperature: 1, seed: 5, seedStream: i }));
        await b.until(ids);
        return { first: median(ids.map((id) => b.chunks.get(id)![0]! - start)), last: Math.max(...ids.map((id) => b.chunks.get(id)![0]! - start)) };
      };
      const one = await ttft(1);
      const eight = await ttft(8);
      return { scenario: name, ttft_ms_n1: one.first, ttft_ms_n8_median: eight.first, ttft_ms_n8_last: eight.last, ratio_last: eight.last / one.first };
    }
    case 'memory': {
      const b = await Bench.create(DEFAULT_MODEL_DIR, threads);
      const words = 'And God said let there be light and there was light and God saw the light that it was good'.split(' ');
      const mb = (n: number) => Math.round(n / 2 ** 20);
      const out: Record<string, unknown> = { scenario: name, rss_mb_idle: mb(process.memoryUsage().rss) };
      for (let i = 0; i < 10_000; i += 8) {
        const ids = Array.from({ length: 8 }, (_, j) => `m${i + j}`);
        ids.forEach((id, j) => b.submit({ id, prompt: `${words.slice(0, 1 + ((i + j) % words.length)).join(' ')} ${i + j}`, maxTokens: 8, temperature: 1 }));
        await b.until(ids);
        for (const id of ids) b.chunks.delete(id);
        if ((i + 8) % 1000 === 0) {
          const m = process.memoryUsage();
          out[`rss_mb_${i + 8}`] = mb(m.rss);
          out[`heap_mb_${i + 8}`] = mb(m.heapUsed);
        }
      }
      return out;
    }
    case 'sampler-rates': {
      const out: Record<string, unknown> = { scenario: name };
      for (const t of [0.5, 1 / 3]) {
        for (const sampler of ['batch', 'exact'] as const) {
          const b = await Bench.create(DEFAULT_MODEL_DIR, threads);
          await warm(b);
          const from = b.steps.length;
          const start = performance.now();
          PROMPTS.forEach((prompt, i) => b.submit({ id: `r${i}`, prompt, maxTokens: 64, temperature: t, sampler, poolSize: 200, seed: i }));
          await b.until(PROMPTS.map((_, i) => `r${i}`));
          const steps = b.steps.slice(from);
          const chunks = steps.reduce((n, x) => n + x.sampled, 0);
          const tag = `T${t.toFixed(2)}_${sampler}`;
          out[`${tag}_reached`] = 1 - steps.reduce((n, x) => n + x.fallbacks, 0) / chunks;
          out[`${tag}_draws_per_chunk`] = steps.reduce((n, x) => n + x.draws, 0) / chunks;
          out[`${tag}_ms_per_chunk`] = (performance.now() - start) / chunks;
        }
      }
      return out;
    }
    default:
      throw new Error(`unknown scenario ${name}: after-long, prefill-burst, large-pool, admission, prefix, memory, sampler-rates`);
  }
}

/**
 * What this machine's cores do on a large matrix product through onnxruntime: the shipped CALM
 * decoder on 1,024 latents (whatever bundles the table measures) (its 4 x 4,096 x 256 output projection and its MLPs are nearly all
 * of its arithmetic), best of 5, every core. The benchmark rows are reported as a share of it.
 */
async function referenceRate(): Promise<number> {
  const bundle = loadBundle(DEFAULT_MODEL_DIR);
  const m = bundle.manifest;
  const sessions = await openSessions(bundle, { device: 'cpu', intraOpThreads: availableParallelism(), interOpThreads: 1, spinning: false });
  const runner = new ModelRunner(m, sessions);
  const n = 1024;
  const latent = Float32Array.from({ length: n * m.latent_size! }, (_, i) => Math.sin(i));
  let best = Infinity;
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    await runner.decoder(latent, n);
    if (i > 0) best = Math.min(best, performance.now() - t0);
  }
  return (n * m.macs!.decoder!) / (best / 1000) / 1e9;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '1,4,16,64' },
      'max-tokens': { type: 'string', default: '64' },
      rounds: { type: 'string', default: '2' },
      'min-tokens': { type: 'string', default: '2048' },
      threads: { type: 'string', default: '0' },
      only: { type: 'string' },
      scenario: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
      config: { type: 'string' },
      calm: { type: 'string', default: DEFAULT_MODEL_DIR },
      device: { type: 'string', default: 'cpu' },
      ar: { type: 'string', default: DEFAULT_AR_MODEL_DIR },
    },
  });
  const threads = Number(values.threads);
  if (values.config) Bench.base = JSON.parse(values.config) as Partial<EngineConfig>;
  if (!isDevice(values.device)) throw new Error(`--device must be one of ${DEVICES.join(', ')}, got ${values.device}`);
  Bench.base.device = values.device;
  if (values.scenario) {
    const names = values.scenario.flatMap((s) => s.split(','));
    const all = names.includes('all') ? ['after-long', 'prefill-burst', 'large-pool', 'admission', 'prefix', 'memory', 'sampler-rates'] : names;
    for (const name of all) {
      const result = await scenario(name, threads);
      console.log(values.json ? JSON.stringify(result) : Object.entries(result).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(3) : v}`).join(' '));
    }
    return;
  }
  const scenarios: Scenario[] = [
    { name: 'CALM T=1', modelDir: values.calm, request: { temperature: 1 } },
    { name: 'CALM T=0.5 N=200', modelDir: values.calm, request: { temperature: 0.5, poolSize: 200 } },
    { name: 'AR T=1', modelDir: values.ar, request: { temperature: 1 } },
  ].filter((s) => !values.only || s.name.toLowerCase().includes(values.only.toLowerCase()));
  const levels = values.concurrency.split(',').map(Number);
  const rows: Row[] = [];
  for (const s of scenarios) {
    for (const c of levels) {
      const row = await measure(s, c, Number(values['max-tokens']), threads, Number(values.rounds), Number(values['min-tokens']));
      rows.push(row);
      process.stderr.write(`${s.name} x${c}: ${row.tokensPerSecond.toFixed(1)} tok/s\n`);
    }
  }
  if (values.json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  console.log(table(rows));
  const ref = await referenceRate();
  console.log(`\nreference rate: ${ref.toFixed(1)} GMAC/s (the CALM decoder graph on 1,024 latents, every core: a large matrix product through onnxruntime)`);
  for (const r of rows) console.log(`  ${r.scenario} x${r.concurrency}: ${(100 * r.gmacPerSecond / ref).toFixed(1)} % of it`);
  const tps = (name: string, c: number) => rows.find((r) => r.scenario === name && r.concurrency === c)?.tokensPerSecond;
  console.log('\nratios measured in this run:');
  for (const c of levels) {
    const calm = tps('CALM T=1', c);
    const ar = tps('AR T=1', c);
    if (calm && ar) console.log(`  concurrency ${c}: CALM T=1 / AR T=1 = ${(calm / ar).toFixed(2)}x`);
  }
  for (const name of ['CALM T=1', 'CALM T=0.5 N=200', 'AR T=1']) {
    const one = tps(name, 1);
    const sixteen = tps(name, 16);
    if (one && sixteen) console.log(`  ${name}: 16 concurrent / 1 = ${(sixteen / one).toFixed(2)}x`);
  }
}

await main();
