// Engine settings: where the model comes from, how it runs, how much it may hold.
import type { Device } from '../model/sessions.js';
import type { PromptPolicy } from './prompt.js';

export interface EngineConfig {
  modelDir: string;
  device: Device;
  /** onnxruntime threads inside one operator (0: one per core) */
  intraOpThreads: number;
  interOpThreads: number;
  /** running sequences at most (rows of the KV cache) */
  maxRunning: number;
  /** queued requests at most; beyond it submissions are refused */
  maxWaiting: number;
  /** KV cache memory budget */
  kvCacheBytes: number;
  /** context limit in tokens (0: the model's own) */
  maxContextTokens: number;
  /** prompt positions prefilled per sequence per step */
  prefillChunk: number;
  promptPolicy: PromptPolicy;
  defaultPoolSize: number;
  exactMaxDraws: number;
}

export const ENGINE_DEFAULTS: Omit<EngineConfig, 'modelDir'> = {
  device: 'cpu',
  intraOpThreads: 0,
  interOpThreads: 1,
  maxRunning: 64,
  maxWaiting: 256,
  kvCacheBytes: 1 << 30,
  maxContextTokens: 0,
  prefillChunk: 64,
  // left, not the authors' pad: at prompts that end inside a chunk it keeps the model's Brier-1
  // at its aligned level, where pad loses two thirds of it (docs/quality.md, "Prompt alignment")
  promptPolicy: 'left',
  defaultPoolSize: 200,
  exactMaxDraws: 4096,
};
