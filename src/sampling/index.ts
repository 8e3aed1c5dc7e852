export { DEFAULT_POOL_SIZE, BatchSampler, type BatchOptions, PoolCascade, type PoolCandidate, cascadeWeights } from './batch.js';
export { type ChunkSampler, type ChunkSource, type SampleResult, type SyncChunkSource, chunkCount, chunkKey, sameChunk } from './chunks.js';
export { ChunkCounter } from './counter.js';
export { sampleChunk, sampleChunkAsync } from './drive.js';
export { SamplingError, type SamplingErrorCode } from './errors.js';
export { DEFAULT_DRAW_BATCH, DEFAULT_MAX_DRAWS, ExactSampler, type ExactOptions } from './exact.js';
export { Rng, type RngState, randomSeed } from './rng.js';
export { SoftmaxSampler, argmax } from './softmax.js';
export { type ChunkPower, checkTokenTemperature, chunkPower } from './temperature.js';
