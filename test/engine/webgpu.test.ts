// --device webgpu: every graph against the CPU, the engine's text against the CPU's for the same
// seeds, what a step transfers, and a clear refusal where there is no adapter. Without a GPU
// these run on Mesa's lavapipe (test/support/tools.mjs names the package); CI installs it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import ort from '../../src/model/ort.js';
import { ENGINE_DEFAULTS, type EngineConfig } from '../../src/engine/config.js';
import type { StepTiming } from '../../src/engine/engine.js';
import { createEngine } from '../../src/engine/setup.js';
import type { GenerateRequest } from '../../src/engine/types.js';
import { type GraphName, loadBundle } from '../../src/model/bundle.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
import { type Device, openGraph } from '../../src/model/sessions.js';
import { inferAdapter, WebGpuUnavailable } from '../../src/model/webgpu.js';
import { skipWithout, TOOLS } from '../support/tools.mjs';

const skip = skipWithout(TOOLS.webgpu);

describe('no WebGPU adapter', () => {
  test('no Vulkan driver at all: refused with what to install', () => {
    assert.throws(() => inferAdapter({ VK_DRIVER_FILES: '/nonexistent/none.json' }), (err: Error) =>
      err instanceof WebGpuUnavailable && /no WebGPU adapter/.test(err.message) && /mesa-vulkan-drivers/.test(err.message));
  });

  test('a driver the provider cannot load: generate exits 1 with the reason, not a crash', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'generate', '--prompt', 'x', '--max-tokens', '4', '--device', 'webgpu'], {
      encoding: 'utf8', env: { ...process.env, VK_DRIVER_FILES: '/nonexistent/lvp_icd.json' }, timeout: 60_000,
    });
    assert.equal(res.status, 1, res.stderr);
    assert.match(res.stderr, /no WebGPU adapter/);
  });
});

function feedsFor(graph: GraphName, dir: string): Record<string, ort.Tensor> {
  const m = loadBundle(dir).manifest;
  const wave = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + s));
  const ids = (n: number) => BigInt64Array.from({ length: n }, (_, i) => BigInt(3 + ((i * 7919) % (m.vocab_size - 3))));
  if (graph === 'head') return { hidden: new ort.Tensor('float32', wave(3 * m.hidden_size, 1), [3, m.hidden_size]), noise: new ort.Tensor('float32', wave(3 * 5 * m.noise_size!, 2).map((v) => v / 2), [3, 5, m.noise_size!]) };
  if (graph === 'decoder') return { latent: new ort.Tensor('float32', wave(6 * m.latent_size!, 3), [6, m.latent_size!]) };
  if (graph === 'encoder') return { token_ids: new ort.Tensor('int64', ids(6 * m.patch_size), [6, m.patch_size]) };
  // backbone: two rows continuing pasts of 5 and 18 positions in a pool of 8 blocks of 16 with non-zero contents
  const blocks = 8;
  const feeds: Record<string, ort.Tensor> = {
    past_len: new ort.Tensor('int64', BigInt64Array.of(5n, 18n), [2]),
    block_table: new ort.Tensor('int64', BigInt64Array.of(3n, 0n, 6n, 1n), [2, 2]),
  };
  const newLen = 3;
  if (m.kind === 'calm') feeds.chunk_ids = new ort.Tensor('int64', ids(2 * newLen * m.patch_size), [2, newLen, m.patch_size]);
  else feeds.input_ids = new ort.Tensor('int64', ids(2 * newLen), [2, newLen]);
  const size = blocks * m.num_kv_heads * 16 * m.head_dim;
  for (let i = 0; i < m.num_layers; i++) {
    feeds[`key_cache.${i}`] = new ort.Tensor('float32', wave(size, 10 + i).map((v) => v / 4), [blocks, m.num_kv_heads, 16, m.head_dim]);
    feeds[`value_cache.${i}`] = new ort.Tensor('float32', wave(size, 20 + i).map((v) => v / 4), [blocks, m.num_kv_heads, 16, m.head_dim]);
  }
  return feeds;
}

async function runOn(device: Device, dir: string, graph: GraphName, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await openGraph(loadBundle(dir), graph, { device, intraOpThreads: 1, interOpThreads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

describe('every graph on WebGPU against the CPU', { skip }, () => {
  for (const [dir, graphs] of [[DEFAULT_MODEL_DIR, ['backbone', 'head', 'decoder', 'encoder']], [DEFAULT_AR_MODEL_DIR, ['backbone']]] as const) {
    for (const graph of graphs) {
      test(`${dir.split('/').pop()} ${graph}: every output within 1e-4`, async (t) => {
        const feeds = feedsFor(graph, dir);
        const [gpu, cpu] = [await runOn('webgpu', dir, graph, feeds), await runOn('cpu', dir, graph, feeds)];
        assert.deepEqual(Object.keys(gpu).sort(), Object.keys(cpu).sort());
        for (const name of Object.keys(cpu)) {
          const a = gpu[name]!.data;
          const b = cpu[name]!.data;
          if (a instanceof BigInt64Array) {
            assert.deepEqual(Array.from(a), Array.from(b as BigInt64Array), `${name}: token ids`);
            continue;
          }
          let diff = 0;
          for (let i = 0; i < b.length; i++) diff = Math.max(diff, Math.abs((a as Float32Array)[i]! - (b as Float32Array)[i]!));
          assert.ok(diff < 1e-4, `${name}: max |webgpu - cpu| = ${diff}`);
          t.diagnostic(`${name}: max |webgpu - cpu| = ${diff.toExponential(2)}`);
        }
      });
    }
  }
});

interface Run {
  texts: Map<string, string>;
  timings: StepTiming[];
}

async function generate(device: Device, dir: string, requests: GenerateRequest[], overrides: Partial<EngineConfig> = {}): Promise<Run> {
  const texts = new Map<string, string>();
  const timings: StepTiming[] = [];
  const { engine, input } = await createEngine({ ...ENGINE_DEFAULTS, modelDir: dir, device, intraOpThreads: 1, kvCacheBytes: 64 << 20, ...overrides }, (r) => {
    if (r.timing) timings.push(r.timing);
    for (const e of r.events) {
      if (e.type === 'chunk') texts.set(e.id, (texts.get(e.id) ?? '') + e.text);
      if (e.type === 'error') throw new Error(`${e.id}: ${e.message}`);
    }
  });
  try {
    for (const r of requests) engine.submit(input.prepare(r));
    while (await engine.step());
  } finally {
    await engine.release();
  }
  return { texts, timings };
}

describe('the engine on WebGPU', { skip }, () => {
  const requests = (extra: Partial<GenerateRequest>): GenerateRequest[] => [
    { id: 'a', prompt: 'In the beginning God created', maxTokens: 24, temperature: 1, seed: 7, ...extra },
    { id: 'b', prompt: 'And the LORD spake unto Moses, saying,', maxTokens: 12, temperature: 1, seed: 8, ...extra },
    { id: 'c', prompt: 'hacker: n.', maxTokens: 16, temperature: 1, seed: 9, ...extra },
  ];
  for (const [name, dir, extra] of [
    ['calm T=1', DEFAULT_MODEL_DIR, {}],
    ['calm T=0.5, batch pool of 16', DEFAULT_MODEL_DIR, { temperature: 0.5, poolSize: 16 }],
    ['ar T=0.8', DEFAULT_AR_MODEL_DIR, { temperature: 0.8 }],
  ] as const) {
    test(`${name}: three requests in one batch give the CPU's text for the same seeds`, async () => {
      const gpu = await generate('webgpu', dir, requests(extra));
      const cpu = await generate('cpu', dir, requests(extra));
      for (const id of ['a', 'b', 'c']) assert.equal(gpu.texts.get(id), cpu.texts.get(id), `request ${id}`);
      assert.ok(cpu.timings.every((t) => t.uploadBytes === 0 && t.downloadBytes === 0), 'the CPU transfers nothing');
      assert.ok(gpu.timings.every((t) => t.uploadBytes > 0 && t.downloadBytes > 0));
    });
  }

  test('what a step transfers does not grow with the context (the pool and all but the sampled rows stay on the device)', async () => {
    const downloads: number[][] = [];
    const decodeBytes = async (promptWords: number) => {
      const prompt = Array.from({ length: promptWords }, (_, i) => ['light', 'and', 'day', 'night'][i % 4]).join(' ');
      const run = await generate('webgpu', DEFAULT_MODEL_DIR, [{ id: 'x', prompt, maxTokens: 16, temperature: 1, seed: 1, ignoreEos: true }]);
      // the steps after the prefill: one new position each
      const decode = run.timings.filter((t) => t.positions === 1);
      assert.ok(decode.length >= 3);
      downloads.push(run.timings.map((t) => t.downloadBytes));
      return decode.map((t) => t.uploadBytes + t.downloadBytes);
    };
    const short = await decodeBytes(40);
    const long = await decodeBytes(1000);
    // the block table grows by 8 bytes per 16 positions; everything else is the same
    const growth = Math.max(...long) - Math.max(...short);
    assert.ok(growth >= 0 && growth <= 8 * Math.ceil(1000 / 16), `short ${short}, long ${long}`);
    // a prefill of hundreds of positions downloads no more than a decode step: the sampled row only
    assert.equal(Math.max(...downloads[1]!), Math.max(...downloads[0]!), `downloads per step: ${downloads.map((d) => d.join(' '))}`);
  });
});
