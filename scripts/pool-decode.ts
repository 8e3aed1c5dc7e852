// What a pool of N samples costs to decode, and what cheaper decoders would save and change
// (issue 12, item 1; docs/sampling.md "Pool decoding"). Hidden states are the shipped CALM
// bundle's own, over a fixed passage; each variant decodes the same pools, interleaved, after a
// warm-up. Variants are built by `cd models && /usr/bin/python3 -m calmtk.pool_variants
// bundles/calm-k4 ../tmp/pool-variants`.
//
//   node --import tsx scripts/pool-decode.ts [variants-dir] [N] [reps]
import { existsSync } from 'node:fs';
import ort from '../src/model/ort.js';
import { loadBundle } from '../src/model/bundle.js';
import { KvPool } from '../src/model/kv-pool.js';
import { ModelRunner } from '../src/model/runner.js';
import { openSessions } from '../src/model/sessions.js';
import { TextTokenizer } from '../src/model/tokenizer.js';
import { Rng } from '../src/sampling/rng.js';

const dir = process.argv[2] ?? 'tmp/pool-variants';
const N = Number(process.argv[3] ?? 200);
const reps = Number(process.argv[4] ?? 60);
const bundle = loadBundle('models/bundles/calm-k4');
const m = bundle.manifest;
const cores = 2;
const opts = (threads: number): ort.InferenceSession.SessionOptions => ({
  executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: threads, logSeverityLevel: 3,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});

// The engine's plan at one stream: a T = 1 step on one thread, a pool on every core.
const narrow = await openSessions(bundle, { device: 'cpu', intraOpThreads: 1, interOpThreads: 1 });
const pool = new KvPool({ layers: m.num_layers, kvHeads: m.num_kv_heads, headDim: m.head_dim, dtype: 'float32' }, 1024, 16);
const runner = new ModelRunner(m, narrow, pool);
const text =
  'In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon ' +
  'the face of the deep. And the Spirit of God moved upon the face of the waters. And God said, Let there be light: and there ' +
  'was light. And God saw the light, that it was good: and God divided the light from the darkness. And God called the light ' +
  'Day, and the darkness he called Night. And the evening and the morning were the first day.';
const tok = new TextTokenizer(bundle.paths.tokenizer!, m.special_tokens);
const ids = [m.special_tokens.bos, ...tok.encode(text)];
const L = Math.floor(ids.length / m.patch_size);
const width = Math.ceil(L / 16);
const hidden = await runner.backbone({
  ids: BigInt64Array.from(ids.slice(0, L * m.patch_size), BigInt), rows: 1, newLen: L, pastLen: [0], valid: [L],
  blockTable: BigInt64Array.from({ length: width }, (_, i) => BigInt(i)), width,
});
const d = m.hidden_size;
const state = (p: number) => hidden.slice(p * d, (p + 1) * d);

const session = (path: string) => ort.InferenceSession.create(path, opts(cores));
const heads: Record<string, ort.InferenceSession> = { head: await session(bundle.paths.head!) };
const decoders: Record<string, ort.InferenceSession> = { decoder: await session(bundle.paths.decoder!) };
for (const name of ['head_int8']) if (existsSync(`${dir}/${name}.onnx`)) heads[name] = await session(`${dir}/${name}.onnx`);
for (const name of ['decoder_body', 'decoder_r32_m16', 'decoder_r64_m16', 'decoder_r64_m64', 'decoder_r128_m16', 'decoder_int8']) {
  if (existsSync(`${dir}/${name}.onnx`)) decoders[name] = await session(`${dir}/${name}.onnx`);
}

const times: Record<string, number[]> = {};
const same: Record<string, [number, number]> = {};
const add = (name: string, ms: number) => (times[name] ??= []).push(ms);
function agree(name: string, got: BigInt64Array, ref: BigInt64Array) {
  const s = (same[name] ??= [0, 0]);
  for (let i = 0; i < N; i++) {
    let eq = true;
    for (let j = 0; j < m.patch_size; j++) if (got[i * m.patch_size + j] !== ref[i * m.patch_size + j]) eq = false;
    s[0] += eq ? 1 : 0;
    s[1]++;
  }
}
async function timed<T>(name: string, warm: boolean, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const out = await f();
  if (!warm) add(name, performance.now() - t0);
  return out;
}

const rng = new Rng(1);
const warmup = 5;
for (let rep = 0; rep < warmup + reps; rep++) {
  const warm = rep < warmup;
  const h = state(1 + (rep % (L - 1)));
  // One stream's T = 1 step: a backbone call for one new position, one head sample, one decode.
  await timed('T=1 step', warm, async () => {
    await runner.backbone({ ids: BigInt64Array.from(ids.slice(0, 4), BigInt), rows: 1, newLen: 1, pastLen: [L - 1], valid: [1], blockTable: BigInt64Array.from({ length: width }, (_, i) => BigInt(i)), width });
    await runner.draw(h, 1, 1, new Float32Array(m.noise_size!).fill(0.1));
  });
  const noise = new Float32Array(N * m.noise_size!);
  rng.fillUniform(noise, -0.5, 0.5);
  const latents: Record<string, ort.Tensor> = {};
  for (const [name, s] of Object.entries(heads)) {
    const out = await timed(name, warm, () => s.run({ hidden: new ort.Tensor('float32', h, [1, d]), noise: new ort.Tensor('float32', noise, [1, N, m.noise_size!]) }));
    latents[name] = new ort.Tensor('float32', out.latent!.data as Float32Array, [N, m.latent_size!]);
  }
  const names = Object.keys(decoders);
  const order = names.map((_, i) => names[(i + rep) % names.length]!);
  const outs: Record<string, BigInt64Array> = {};
  for (const name of order) {
    const out = await timed(name, warm, () => decoders[name]!.run({ latent: latents.head! }));
    if (out.token_ids) outs[name] = out.token_ids.data as BigInt64Array;
  }
  if (warm) continue;
  for (const [name, got] of Object.entries(outs)) if (name !== 'decoder') agree(name, got, outs.decoder!);
  if (heads.head_int8) agree('head_int8 -> decoder', (await decoders.decoder!.run({ latent: latents.head_int8! })).token_ids!.data as BigInt64Array, outs.decoder!);
}

const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const step = q(times['T=1 step']!, 0.5);
console.log(`pool N = ${N}, ${reps} pools over ${L} positions of the shipped CALM bundle; pool calls on ${cores} threads, the T = 1 step on 1`);
console.log('graph'.padEnd(22) + 'median ms'.padStart(10) + '   p10-p90'.padEnd(16) + 'x T=1 step'.padStart(11) + '  chunks as the shipped decoder');
for (const [name, xs] of Object.entries(times)) {
  const s = same[name] ?? same[`${name} -> decoder`];
  const agreeText = s ? `${((100 * s[0]) / s[1]).toFixed(2)} % of ${s[1]}` : '';
  console.log(name.padEnd(22) + q(xs, 0.5).toFixed(2).padStart(10) + `   ${q(xs, 0.1).toFixed(2)}-${q(xs, 0.9).toFixed(2)}`.padEnd(16) + (q(xs, 0.5) / step).toFixed(2).padStart(11) + `  ${agreeText}`);
}
