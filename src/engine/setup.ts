// Builds an engine from its config: bundle, graphs, tokenizer, KV cache sized by the budget.
import { loadBundle } from '../model/bundle.js';
import { ModelRunner } from '../model/runner.js';
import { openSessions } from '../model/sessions.js';
import { TextTokenizer } from '../model/tokenizer.js';
import type { EngineConfig } from './config.js';
import { Engine, type StepTiming } from './engine.js';
import { bytesPerPosition, KvCache } from './kv-cache.js';
import type { EngineEvent } from './types.js';

export interface EngineInfo {
  model: string;
  kind: 'calm' | 'ar';
  device: string;
  dtype: string;
  patchSize: number;
  contextTokens: number;
  maxRunning: number;
  kvCacheBytes: number;
  loadMs: number;
}

export async function createEngine(
  config: EngineConfig,
  emit: (e: EngineEvent) => void,
  onStep?: (t: StepTiming) => void,
): Promise<{ engine: Engine; info: EngineInfo }> {
  const t0 = performance.now();
  const bundle = loadBundle(config.modelDir);
  const m = bundle.manifest;
  const sessions = await openSessions(bundle, { device: config.device, intraOpThreads: config.intraOpThreads, interOpThreads: config.interOpThreads });
  const tokenizer = new TextTokenizer(bundle.paths.tokenizer!, m.special_tokens);
  const contextTokens = Math.min(m.context_tokens, config.maxContextTokens > 0 ? config.maxContextTokens : m.context_tokens);
  const maxPositions = Math.floor(contextTokens / m.patch_size);
  const geometry = { layers: m.num_layers, kvHeads: m.num_kv_heads, headDim: m.head_dim, dtype: m.dtype };
  // The budget buys rows of full context; the cache allocates them lazily as sequences grow.
  const rowsByBudget = Math.floor(config.kvCacheBytes / (maxPositions * bytesPerPosition(geometry)));
  if (rowsByBudget < 1) {
    throw new Error(`kv cache budget ${config.kvCacheBytes} bytes cannot hold one sequence of ${contextTokens} tokens ` +
      `(${maxPositions * bytesPerPosition(geometry)} bytes); raise it or lower the context limit`);
  }
  const maxRows = Math.min(config.maxRunning, rowsByBudget);
  const kv = new KvCache(geometry, { maxRows, maxPositions });
  const runner = new ModelRunner(m, sessions, kv);
  const engine = new Engine(bundle, runner, kv, tokenizer, {
    maxRunning: maxRows,
    maxWaiting: config.maxWaiting,
    prefillChunk: config.prefillChunk,
    promptPolicy: config.promptPolicy,
    defaultPoolSize: config.defaultPoolSize,
    exactMaxDraws: config.exactMaxDraws,
  }, emit, onStep);
  return {
    engine,
    info: {
      model: m.name, kind: m.kind, device: config.device, dtype: m.dtype, patchSize: m.patch_size, contextTokens: maxPositions * m.patch_size,
      maxRunning: maxRows, kvCacheBytes: maxRows * maxPositions * bytesPerPosition(geometry), loadMs: performance.now() - t0,
    },
  };
}
