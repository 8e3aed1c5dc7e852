// What goes into the engine and what comes out of it. Plain data: these cross the worker boundary.
import type { PromptPolicy } from './prompt.js';

export type SamplerKind = 'batch' | 'exact';

export interface GenerateRequest {
  /** caller's id; events carry it back */
  id: string;
  /** text, or token ids (no BOS: the engine adds it when the bundle asks) */
  prompt: string | number[];
  /** generated tokens at most (the last chunk is cut) */
  maxTokens: number;
  /** 0 (greedy) to 1; above 1 is refused: likelihood-free models cannot sharpen beyond their distribution's flattening */
  temperature: number;
  /** CALM batch-approximation pool size N */
  poolSize?: number;
  /** CALM sampler for 0 < T < 1: the batch approximation (default) or the exact algorithm */
  sampler?: SamplerKind;
  seed?: number;
  /** independent stream of the same seed (choice i of n uses stream i) */
  seedStream?: number;
  stop?: string[];
  promptPolicy?: PromptPolicy;
  /** keep generating past EOS until max_tokens (benchmarks, fixed-length tests) */
  ignoreEos?: boolean;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

export interface ChunkEvent {
  type: 'chunk';
  id: string;
  /** the ids this step produced (K for CALM, 1 for AR; fewer when cut), PAD removed */
  tokenIds: number[];
  /** new text (may be '' while a character or a possible stop string is incomplete) */
  text: string;
  /** ms since the request was submitted */
  elapsedMs: number;
  /** duration of the engine step that produced this chunk */
  stepMs: number;
  /** set on the request's last chunk (a `done` event follows) */
  finishReason?: FinishReason;
}

export interface DoneEvent {
  type: 'done';
  id: string;
  finishReason: FinishReason;
  usage: Usage;
  queueMs: number;
  totalMs: number;
  /** the seed the request's random stream used (given or drawn) */
  seed: number;
}

export type EngineErrorCode =
  | 'invalid_request'
  | 'temperature_above_one'
  | 'context_length_exceeded'
  | 'queue_full'
  | 'engine_error';

export interface ErrorEvent {
  type: 'error';
  id: string;
  code: EngineErrorCode;
  message: string;
  param?: string;
}

export type EngineEvent = ChunkEvent | DoneEvent | ErrorEvent;

export interface EngineStats {
  running: number;
  waiting: number;
  kvUsage: number;
  steps: number;
}
