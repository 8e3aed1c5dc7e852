// What goes into the engine and what comes out of it. Plain data: these cross the worker boundary.
import type { PoolConfidence } from '../sampling/chunks.js';
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
  /** nucleus: CALM on the batch pool's empirical distribution, AR on the softmax (0 < top_p <= 1; default 1) */
  topP?: number;
  /** CALM: report each chunk's pool frequency and its standard error (ChunkEvent.confidence) */
  confidence?: boolean;
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

/**
 * A request after validation and tokenization (src/engine/input.ts, on the main thread): what the
 * engine thread receives. Everything here has been checked; the engine only runs it.
 */
export interface EngineRequest {
  id: string;
  /** the backbone's prompt input, flat: BOS, prompt and alignment PAD; a multiple of K ids */
  input: Int32Array;
  /** prompt tokens as the user sent them, for usage */
  promptTokens: number;
  maxTokens: number;
  temperature: number;
  /** CALM only */
  sampler: SamplerKind;
  poolSize: number;
  topP: number;
  confidence: boolean;
  seed: number;
  seedStream: number;
  stop: string[];
  ignoreEos: boolean;
}

/** `cancelled`: by the client, a disconnect, a timeout or a drain. */
export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

export interface ChunkEvent {
  type: 'chunk';
  id: string;
  /** the ids this step produced (K for CALM, 1 for AR; fewer when cut): PAD removed, except with ignore_eos (every id counts) */
  tokenIds: number[];
  /** new text (may be '' while a character or a possible stop string is incomplete) */
  text: string;
  /** set on the request's last chunk (its `done` event follows in the same step) */
  finishReason?: FinishReason;
  /** CALM, when the request asked for it: the chosen chunk's frequency in its pool (src/sampling/chunks.ts) */
  confidence?: PoolConfidence;
}

export interface DoneEvent {
  type: 'done';
  id: string;
  finishReason: FinishReason;
  usage: Usage;
  /** from submission to the first admission into the running batch */
  queueMs: number;
  totalMs: number;
  /** the seed the request's random stream used (given or drawn) */
  seed: number;
  /** times the request lost its KV blocks to others and recomputed them */
  preemptions: number;
  /** prompt positions found in the prefix cache instead of computed */
  cachedPositions: number;
}

export type EngineErrorCode =
  | 'invalid_request'
  | 'temperature_above_one'
  | 'context_length_exceeded'
  | 'limit_exceeded'
  | 'engine_error'
  | 'engine_dead';

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
  /** KV blocks referenced by running sequences */
  blocksUsed: number;
  blocksTotal: number;
  steps: number;
  preemptions: number;
  /** prefix-cache lookups of full prompt blocks, and those that found the block */
  prefixQueries: number;
  prefixHits: number;
}
