import type { ChunkSampler, ChunkSource, SampleResult, SyncChunkSource } from '../../../src/sampling/chunks.js';
import { SamplingError } from '../../../src/sampling/errors.js';
import type { Rng } from '../../../src/sampling/rng.js';

/**
 * Runs one step of a sampler against a single stand-in source (tests only: the engine batches
 * many sequences' draws into one model call and drives the ChunkSampler protocol itself).
 */
export function sampleChunk(sampler: ChunkSampler, source: SyncChunkSource, rng: Rng): SampleResult {
  check(sampler, source);
  sampler.reset();
  for (;;) {
    const result = sampler.feed(source.draw(sampler.wanted()), rng);
    if (result) return result;
  }
}

function check(sampler: ChunkSampler, source: ChunkSource): void {
  if (sampler.k !== source.k) throw new SamplingError('invalid_argument', `sampler expects K = ${sampler.k} but the source gives K = ${source.k}`);
}
