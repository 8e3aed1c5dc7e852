// Builds an engine from its config: bundle, graphs, tokenizer, the KV pool sized by the budget.
import { availableParallelism } from 'node:os';
import { loadBundle } from '../model/bundle.js';
import { DeviceKvPool } from '../model/device-pool.js';
import { bytesPerPosition, KvPool } from '../model/kv-pool.js';
import { ModelRunner } from '../model/runner.js';
import { openBuiltGraph, openPlanned, threadPlan } from '../model/sessions.js';
import { TextTokenizer } from '../model/tokenizer.js';
import { describeAdapter, probeWebGpu } from '../model/webgpu.js';
import { BlockManager } from './block-manager.js';
import type { EngineConfig } from './config.js';
import { Engine, type StepReport } from './engine.js';
import { type InputLimits, InputProcessor } from './input.js';

export interface EngineInfo {
  model: string;
  kind: 'calm' | 'ar';
  device: string;
  /** WebGPU: the adapter (src/model/webgpu.ts); null on other devices */
  adapter: string | null;
  /** onnxruntime threads per graph, and of the second sessions for large calls (0: none) */
  threads: number;
  wideThreads: number;
  dtype: string;
  patchSize: number;
  contextTokens: number;
  maxRunning: number;
  /** the KV pool: blocks of blockSize positions, bytes in all */
  blocks: number;
  blockSize: number;
  kvCacheBytes: number;
  loadMs: number;
  /** what the frontend checks requests against (src/engine/input.ts) */
  input: InputLimits;
}

/** The engine, what it reports about itself, and a frontend on the same tokenizer for in-process callers (benchmarks, tests). */
export async function createEngine(config: EngineConfig, report: (r: StepReport) => void): Promise<{ engine: Engine; info: EngineInfo; input: InputProcessor }> {
  const t0 = performance.now();
  const bundle = loadBundle(config.modelDir);
  const m = bundle.manifest;
  const threads = threadPlan(config.intraOpThreads, availableParallelism(), config.device);
  if (config.spinning !== undefined) threads.spinning = config.spinning;
  // On WebGPU the pool lives on the device (device-pool.ts); elsewhere in host memory.
  const onDevice = config.device === 'webgpu';
  const adapter = onDevice ? describeAdapter(await probeWebGpu()) : null;
  const { sessions, wide } = await openPlanned(bundle, config.device, config.interOpThreads, threads, onDevice);
  const tokenizer = new TextTokenizer(bundle.paths.tokenizer!, m.special_tokens);
  const contextTokens = Math.min(m.context_tokens, config.maxContextTokens > 0 ? config.maxContextTokens : m.context_tokens);
  const maxPositions = Math.floor(contextTokens / m.patch_size);
  const geometry = { layers: m.num_layers, kvHeads: m.num_kv_heads, headDim: m.head_dim, dtype: m.dtype };
  const blockBytes = config.blockSize * bytesPerPosition(geometry);
  const blocks = Math.floor(config.kvCacheBytes / blockBytes);
  if (blocks < 2) {
    throw new Error(`kv cache budget ${config.kvCacheBytes} bytes holds fewer than 2 blocks of ${config.blockSize} positions ` +
      `(${blockBytes} bytes each); raise --kv-cache-bytes or lower --block-size`);
  }
  const runtime = { device: config.device, intraOpThreads: threads.intraOpThreads, interOpThreads: config.interOpThreads, spinning: threads.spinning };
  const pool = onDevice
    ? await DeviceKvPool.create(geometry, blocks, config.blockSize, (model, deviceOutputs) => openBuiltGraph(model, { ...runtime, deviceOutputs }))
    : new KvPool(geometry, blocks, config.blockSize);
  const blockManager = new BlockManager(blocks, config.blockSize);
  const runner = new ModelRunner(m, sessions, pool, wide, config.device);
  const engine = new Engine(m, runner, blockManager, tokenizer, {
    maxRunning: config.maxRunning,
    maxBatchedPositions: config.maxBatchedPositions,
    maxPrefillPositions: config.maxPrefillPositions,
    maxPositions,
    draws: { perStep: config.maxStepDraws, perCall: config.maxCallDraws },
    exactMaxDraws: config.exactMaxDraws,
    ...(config.faults ? { faults: config.faults } : {}),
  }, report);
  const reserve = engine.scheduler.reserveBlocks;
  const info: EngineInfo = {
    model: m.name, kind: m.kind, device: config.device, adapter, threads: threads.intraOpThreads, wideThreads: Object.keys(wide).length > 0 ? threads.wideThreads : 0, dtype: m.dtype, patchSize: m.patch_size, contextTokens: maxPositions * m.patch_size,
    maxRunning: config.maxRunning, blocks, blockSize: config.blockSize, kvCacheBytes: pool.bytes, loadMs: performance.now() - t0,
    input: {
      kind: m.kind, patchSize: m.patch_size, vocabSize: m.vocab_size, pad: m.special_tokens.pad, bos: m.special_tokens.bos, addBos: m.add_bos,
      maxPositions, poolPositions: (blocks - reserve) * config.blockSize, defaultPoolSize: config.defaultPoolSize, maxPoolSize: config.maxPoolSize,
      promptPolicy: config.promptPolicy, maxTokenBytes: tokenizer.maxTokenBytes,
    },
  };
  return { engine, info, input: new InputProcessor(info.input, tokenizer) };
}
