// The engine-v2 scenarios of `npm run bench:engine --scenario` run against the engine before
// the paged KV pool (commit 1784a52), for the "before" column of docs/benchmarks.md:
//   git worktree add /tmp/v1 1784a52 && (cd /tmp/v1 && npm ci) && cd /tmp/v1 && node /path/to/scripts/bench-engine-v1.mjs [threads]
// It imports that checkout's dist/ (the v1 engine API: createEngine(config, emit, onStep)).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = process.cwd();
const { createEngine } = await import(pathToFileURL(resolve(root, 'dist/engine/setup.js')).href);
const { ENGINE_DEFAULTS } = await import(pathToFileURL(resolve(root, 'dist/engine/config.js')).href);
const threads = Number(process.argv[2] ?? 0);
const MODEL = resolve(root, 'models/bundles/calm-k4');
const PROMPTS = ['In the beginning God created the heaven and the earth.', 'And the LORD spake unto Moses, saying,',
  'hacker: n. A person who enjoys exploring the details of programmable systems', 'CYNIC, n. A blackguard whose faulty vision sees things as they are',
  'Blessed are the poor in spirit: for theirs is the kingdom of heaven.', 'The quick brown fox jumps over the lazy dog.'];

async function bench(overrides = {}) {
  const steps = [];
  const chunks = new Map();
  const done = new Set();
  let maxRunning = 0;
  const { engine } = await createEngine({ ...ENGINE_DEFAULTS, modelDir: MODEL, intraOpThreads: threads, ...overrides }, (e) => {
    if (e.type === 'error') throw new Error(e.message);
    if (e.type === 'done') done.add(e.id);
    else if (e.tokenIds.length > 0) chunks.get(e.id)?.push(performance.now());
  }, (t) => { steps.push(t); maxRunning = Math.max(maxRunning, engine.stats.running); });
  const b = {
    engine, steps, chunks, done, get maxRunning() { return maxRunning; },
    submit(r) { chunks.set(r.id, []); engine.submit({ ignoreEos: true, ...r }); },
    async until(ids = [...chunks.keys()]) { while (ids.some((id) => !done.has(id))) if (!(await engine.step())) throw new Error('idle'); },
  };
  for (let i = 0; i < 4; i++) b.submit({ id: `warm${i}`, prompt: PROMPTS[i], maxTokens: 16, temperature: 1, seed: i });
  await b.until();
  return b;
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const longPrompt = (n) => Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % 4000));
async function shortStreams(b, tag, n, extra = {}) {
  const ids = Array.from({ length: 8 }, (_, i) => `${tag}${i}`);
  ids.forEach((id, i) => b.submit({ id, prompt: PROMPTS[i % PROMPTS.length], maxTokens: 4 * (n + 8), temperature: 1, seed: i, ...extra }));
  for (let i = 0; i < 4; i++) await b.engine.step();
  const from = b.steps.length;
  for (let i = 0; i < n; i++) await b.engine.step();
  const ms = mean(b.steps.slice(from).map((t) => t.totalMs));
  ids.forEach((id) => b.engine.cancel(id));
  await b.engine.step();
  return ms;
}
const out = (o) => console.log(Object.entries(o).map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(3) : v}`).join(' '));

{ // after-long
  const b = await bench();
  const before = await shortStreams(b, 'before', 40);
  b.submit({ id: 'long', prompt: longPrompt(4500 - 64), maxTokens: 64, temperature: 1, seed: 1 });
  await b.until(['long']);
  const after = await shortStreams(b, 'after', 40);
  out({ scenario: 'after-long', step_ms_before: before, step_ms_after: after, ratio: after / before });
}
{ // prefill-burst
  const b = await bench();
  const streams = ['s0', 's1', 's2', 's3'];
  streams.forEach((id, i) => b.submit({ id, prompt: PROMPTS[i], maxTokens: 4000, temperature: 1, seed: i }));
  for (let i = 0; i < 4; i++) await b.engine.step();
  const from = b.steps.length;
  for (let i = 0; i < 30; i++) await b.engine.step();
  const alone = mean(b.steps.slice(from).map((t) => t.totalMs));
  const mark = performance.now();
  const burst = Array.from({ length: 24 }, (_, i) => `p${i}`);
  burst.forEach((id, i) => b.submit({ id, prompt: longPrompt(1024).map((t) => t + i), maxTokens: 8, temperature: 1, seed: i }));
  await b.until(burst);
  const gaps = streams.flatMap((id) => { const t = b.chunks.get(id).filter((x) => x >= mark); return t.slice(1).map((x, i) => x - t[i]); });
  out({ scenario: 'prefill-burst', stream_step_ms_alone: alone, p50_gap_ms_during_burst: q(gaps, 0.5), p99_gap_ms_during_burst: q(gaps, 0.99), ratio_p50: q(gaps, 0.5) / alone, ratio_p99: q(gaps, 0.99) / alone });
}
{ // large-pool: v1 allowed pool_size up to 10,000
  const b = await bench();
  const alone = await shortStreams(b, 'alone', 30);
  b.submit({ id: 'pool', prompt: PROMPTS[0], maxTokens: 4000, temperature: 0.5, poolSize: 10000, seed: 9 });
  const shared = await shortStreams(b, 'shared', 6);
  out({ scenario: 'large-pool', pool_size: 10000, step_ms_alone: alone, step_ms_beside_pool: shared, ratio: shared / alone });
}
{ // admission (the queue made long enough to hold all 600)
  const b = await bench({ maxWaiting: 1000 });
  for (let i = 0; i < 600; i++) b.submit({ id: `a${i}`, prompt: PROMPTS[i % PROMPTS.length], maxTokens: 128, temperature: 1, seed: i });
  for (let i = 0; i < 40; i++) await b.engine.step();
  out({ scenario: 'admission', max_running: b.maxRunning });
}
{ // prefix: n copies of one prompt
  const ttft = async (n) => {
    const b = await bench();
    const ids = Array.from({ length: n }, (_, i) => `c${i}`);
    const start = performance.now();
    ids.forEach((id, i) => b.submit({ id, prompt: longPrompt(1024), maxTokens: 16, temperature: 1, seed: 5, seedStream: i }));
    await b.until(ids);
    return Math.max(...ids.map((id) => b.chunks.get(id)[0] - start));
  };
  const one = await ttft(1);
  const eight = await ttft(8);
  out({ scenario: 'prefix', ttft_ms_n1: one, ttft_ms_n8_last: eight, ratio_last: eight / one });
}
