// Engine settings: where the model comes from, how it runs, how much it may hold and do per step.
import type { Device } from '../model/sessions.js';
import type { PromptPolicy } from './prompt.js';
import type { FaultInjection } from './step-runner.js';

export interface EngineConfig {
  modelDir: string;
  device: Device;
  /** onnxruntime threads inside one operator (0: automatic per model kind, see threadPlan) */
  intraOpThreads: number;
  interOpThreads: number;
  /** let onnxruntime's idle threads spin after each run (its own default; off here, see threadPlan) */
  spinning?: boolean;
  /** sequences in the running batch at most */
  maxRunning: number;
  /** queued requests at most; beyond it submissions are refused */
  maxWaiting: number;
  /** KV pool memory budget, bytes */
  kvCacheBytes: number;
  /** backbone positions per KV block */
  blockSize: number;
  /** context limit in tokens (0: the model's own) */
  maxContextTokens: number;
  /** backbone positions per step at most, decode and prefill together */
  maxBatchedPositions: number;
  /** prompt positions prefilled per step while other sequences decode (chunked prefill) */
  maxPrefillPositions: number;
  promptPolicy: PromptPolicy;
  defaultPoolSize: number;
  /** largest pool_size a request may ask for */
  maxPoolSize: number;
  /** energy-head samples per step for samplers that want more than one (a larger pool continues next step) */
  maxStepDraws: number;
  /** samples per head + decoder call (bounds the memory of one call) */
  maxCallDraws: number;
  exactMaxDraws: number;
  /** tests only: make model calls fail (no command-line flag) */
  faults?: FaultInjection;
}

export const ENGINE_DEFAULTS: Omit<EngineConfig, 'modelDir'> = {
  device: 'cpu',
  intraOpThreads: 0,
  interOpThreads: 1,
  maxRunning: 256,
  maxWaiting: 256,
  kvCacheBytes: 1 << 30,
  blockSize: 16,
  maxContextTokens: 0,
  maxBatchedPositions: 512,
  maxPrefillPositions: 16,
  // left, not the authors' pad: at prompts that end inside a chunk it keeps the model's Brier-1
  // at its aligned level, where pad loses two thirds of it (docs/quality.md, "Prompt alignment")
  promptPolicy: 'left',
  defaultPoolSize: 200,
  maxPoolSize: 4096,
  maxStepDraws: 2048,
  maxCallDraws: 1024,
  exactMaxDraws: 4096,
};
