// `npm run bench:engine`: drives the engine in-process (no HTTP, no worker thread) on the
// default bundles and reports output tokens/s by concurrency, the share of step time inside
// onnxruntime versus JavaScript, and time per stage.
import { parseArgs } from 'node:util';
import { ENGINE_DEFAULTS } from '../engine/config.js';
import type { StepTiming } from '../engine/engine.js';
import { createEngine } from '../engine/setup.js';
import type { GenerateRequest } from '../engine/types.js';
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
}

const PROMPTS = [
  'In the beginning God created the heaven and the earth.',
  'And the LORD spake unto Moses, saying,',
  'hacker: n. A person who enjoys exploring the details of programmable systems',
  'CYNIC, n. A blackguard whose faulty vision sees things as they are',
  'Blessed are the poor in spirit: for theirs is the kingdom of heaven.',
  'The quick brown fox jumps over the lazy dog.',
];

async function measure(s: Scenario, concurrency: number, maxTokens: number, threads: number): Promise<Row> {
  const steps: StepTiming[] = [];
  let tokens = 0;
  let pending = concurrency;
  const { engine } = await createEngine({ ...ENGINE_DEFAULTS, modelDir: s.modelDir, intraOpThreads: threads, maxRunning: Math.max(64, concurrency) },
    (e) => {
      if (e.type === 'error') throw new Error(e.message);
      if (e.type === 'done' && e.id !== 'warm') {
        tokens += e.usage.completionTokens;
        pending--;
      }
    },
    (t) => steps.push(t));
  // Warm-up: first runs allocate and JIT.
  engine.submit({ id: 'warm', prompt: PROMPTS[0]!, maxTokens: 8, temperature: 1 });
  while (await engine.step());
  steps.length = 0;
  tokens = 0;
  const start = performance.now();
  for (let i = 0; i < concurrency; i++) {
    engine.submit({ id: `r${i}`, prompt: PROMPTS[i % PROMPTS.length]!, maxTokens, seed: i, ...s.request });
  }
  while (pending > 0 && (await engine.step()));
  const seconds = (performance.now() - start) / 1000;
  const sum = (f: (t: StepTiming) => number) => steps.reduce((n, t) => n + f(t), 0);
  const total = sum((t) => t.totalMs);
  const onnx = sum((t) => t.backboneMs + t.headMs + t.decoderMs);
  const per = (ms: number) => ms / steps.length;
  return {
    scenario: s.name,
    concurrency,
    tokens,
    seconds,
    tokensPerSecond: tokens / seconds,
    steps: steps.length,
    onnxShare: onnx / total,
    jsShare: 1 - onnx / total,
    msPerStep: {
      backbone: per(sum((t) => t.backboneMs)),
      head: per(sum((t) => t.headMs)),
      decoder: per(sum((t) => t.decoderMs)),
      sampler: per(sum((t) => t.samplerMs)),
      other: per(total - onnx - sum((t) => t.samplerMs)),
    },
  };
}

function table(rows: Row[]): string {
  const head = '| scenario | concurrency | output tok/s | steps | ms/step backbone | head | decoder | sampler (JS) | other JS | onnxruntime share | JS share |';
  const sep = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const lines = rows.map((r) => {
    const m = r.msPerStep;
    return `| ${r.scenario} | ${r.concurrency} | ${r.tokensPerSecond.toFixed(1)} | ${r.steps} | ${m.backbone.toFixed(2)} | ${m.head.toFixed(2)} | ` +
      `${m.decoder.toFixed(2)} | ${m.sampler.toFixed(2)} | ${m.other.toFixed(2)} | ${(100 * r.onnxShare).toFixed(1)} % | ${(100 * r.jsShare).toFixed(1)} % |`;
  });
  return [head, sep, ...lines].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '1,4,16,64' },
      'max-tokens': { type: 'string', default: '64' },
      threads: { type: 'string', default: '0' },
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const scenarios: Scenario[] = [
    { name: 'CALM T=1', modelDir: DEFAULT_MODEL_DIR, request: { temperature: 1 } },
    { name: 'CALM T=0.5 N=200', modelDir: DEFAULT_MODEL_DIR, request: { temperature: 0.5, poolSize: 200 } },
    { name: 'AR T=1', modelDir: DEFAULT_AR_MODEL_DIR, request: { temperature: 1 } },
  ].filter((s) => !values.only || s.name.toLowerCase().includes(values.only.toLowerCase()));
  const levels = values.concurrency.split(',').map(Number);
  const rows: Row[] = [];
  for (const s of scenarios) {
    for (const c of levels) {
      const row = await measure(s, c, Number(values['max-tokens']), Number(values.threads));
      rows.push(row);
      process.stderr.write(`${s.name} x${c}: ${row.tokensPerSecond.toFixed(1)} tok/s\n`);
    }
  }
  if (values.json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  console.log(table(rows));
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
