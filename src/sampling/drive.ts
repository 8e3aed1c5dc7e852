import type { ChunkSampler, ChunkSource, SampleResult, SyncChunkSource } from './chunks.js';
import { SamplingError } from './errors.js';
import type { Rng } from './rng.js';

/**
 * Runs one step of a sampler against a single source. An engine that batches many sequences'
 * draws into one model call drives the ChunkSampler protocol itself instead.
 */
export function sampleChunk(sampler: ChunkSampler, source: SyncChunkSource, rng: Rng): SampleResult {
  check(sampler, source);
  sampler.reset();
  for (;;) {
    const result = sampler.feed(source.draw(sampler.wanted()), rng);
    if (result) return result;
  }
}

export async function sampleChunkAsync(sampler: ChunkSampler, source: ChunkSource, rng: Rng): Promise<SampleResult> {
  check(sampler, source);
  sampler.reset();
  for (;;) {
    const result = sampler.feed(await source.draw(sampler.wanted()), rng);
    if (result) return result;
  }
}

function check(sampler: ChunkSampler, source: ChunkSource): void {
  if (sampler.k !== source.k) throw new SamplingError('invalid_argument', `sampler expects K = ${sampler.k} but the source gives K = ${source.k}`);
}
