import { BatchSampler } from './batch.js';
import type { ChunkSampler } from './chunks.js';
import { ExactSampler } from './exact.js';
import { chunkPower } from './temperature.js';

export type ChunkSamplerKind = 'batch' | 'exact';

export interface ChunkSamplerSettings {
  temperature: number;
  sampler: ChunkSamplerKind;
  /** N of the batch approximation */
  poolSize: number;
  /** draw budget per step of the exact sampler */
  exactMaxDraws: number;
  /** batch sampler only: nucleus on the pool (default 1), and the chosen chunk's pool frequency */
  topP?: number;
  confidence?: boolean;
}

/** The sampler a request (or an evaluation) asked for; throws SamplingError for a temperature outside [0, 1]. */
export function createChunkSampler(k: number, s: ChunkSamplerSettings): ChunkSampler {
  chunkPower(s.temperature);
  return s.sampler === 'exact'
    ? new ExactSampler(k, { temperature: s.temperature, maxDraws: s.exactMaxDraws })
    : new BatchSampler(k, { temperature: s.temperature, poolSize: s.poolSize, topP: s.topP ?? 1, confidence: s.confidence ?? false });
}
