// One request's life in the engine: its prompt, its place in the KV cache, its random stream,
// its sampler and its output state.
import type { ChunkSampler } from '../sampling/chunks.js';
import type { Rng } from '../sampling/rng.js';
import { IncrementalDetokenizer, type Decoder } from '../text/detokenizer.js';
import { StopMatcher } from '../text/stop.js';
import type { GenerateRequest } from './types.js';

export type SequenceState = 'waiting' | 'prefill' | 'decode' | 'finished';

export class Sequence {
  state: SequenceState = 'waiting';
  /** KV cache row while running; -1 otherwise */
  row = -1;
  /** positions written to the cache */
  pastLen = 0;
  /** prompt positions already prefilled */
  prefilled = 0;
  /** the chunk (or token) sampled last step: the next backbone input */
  pending: Int32Array | null = null;
  /** completion tokens emitted */
  generated = 0;
  cancelled = false;
  admittedAt = 0;
  readonly detokenizer: IncrementalDetokenizer;
  readonly stop: StopMatcher;

  constructor(
    readonly request: GenerateRequest,
    /** the backbone's prompt input, flat: promptPositions * K ids (BOS and alignment included) */
    readonly input: Int32Array,
    readonly promptPositions: number,
    /** prompt tokens as the user sent them, for usage */
    readonly promptTokens: number,
    readonly rng: Rng,
    readonly seed: number,
    /** CALM only; the AR baseline samples from logits */
    readonly sampler: ChunkSampler | null,
    decoder: Decoder,
    readonly submittedAt: number,
  ) {
    this.detokenizer = new IncrementalDetokenizer(decoder);
    this.stop = new StopMatcher(request.stop ?? []);
  }

  get id(): string {
    return this.request.id;
  }

  get prefillDone(): boolean {
    return this.prefilled === this.promptPositions;
  }
}
