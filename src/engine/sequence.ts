// One request's life in the engine: its inputs, its KV blocks, its random stream, its sampler
// and its output state. Positions are backbone positions (chunks of K ids for CALM, tokens for
// AR); `known` of them have an input (the prompt, then each sampled chunk fed back) and
// `computed` of them have keys and values in the pool.
import type { ChunkSampler } from '../sampling/chunks.js';
import type { Rng } from '../sampling/rng.js';
import { IncrementalDetokenizer, type Decoder } from '../text/detokenizer.js';
import { StopMatcher } from '../text/stop.js';
import type { EngineRequest } from './types.js';

export type SequenceState = 'waiting' | 'running' | 'finished';

export class Sequence {
  state: SequenceState = 'waiting';
  /** the backbone input of every known position, flat, K ids each */
  private ids: Int32Array;
  known: number;
  computed = 0;
  /** block table: block i holds positions [i * blockSize, (i + 1) * blockSize) */
  blocks: number[] = [];
  /** hashes of its full blocks of known inputs, chained (block i has hashes[i]); inputs never change, so they outlive a preemption */
  hashes: string[] = [];
  /**
   * The hidden state (CALM) or logits (AR) the next chunk is drawn from, held while a sampler
   * needs more than one step's draw budget; it survives a preemption so the draws continue
   * exactly where they stopped.
   */
  drawing: Float32Array | null = null;
  /** completion tokens emitted */
  generated = 0;
  cancelled = false;
  /** time of first admission (0 while never admitted) */
  admittedAt = 0;
  /** admission order, for preemption (the youngest goes first) */
  admission = 0;
  preemptions = 0;
  cachedPositions = 0;
  readonly detokenizer: IncrementalDetokenizer;
  readonly stop: StopMatcher;

  constructor(
    readonly request: EngineRequest,
    readonly k: number,
    readonly rng: Rng,
    /** CALM only; the AR baseline samples from logits */
    readonly sampler: ChunkSampler | null,
    decoder: Decoder,
    readonly submittedAt: number,
  ) {
    this.known = request.input.length / k;
    this.ids = new Int32Array(Math.max(request.input.length * 2, 64 * k));
    this.ids.set(request.input);
    this.detokenizer = new IncrementalDetokenizer(decoder);
    this.stop = new StopMatcher(request.stop);
  }

  get id(): string {
    return this.request.id;
  }

  /** Positions with an input but no keys and values yet. */
  get pending(): number {
    return this.known - this.computed;
  }

  /** The inputs of positions [from, from + count), flat. */
  inputs(from: number, count: number): Int32Array {
    return this.ids.subarray(from * this.k, (from + count) * this.k);
  }

  /** Feeds a sampled chunk back as the input of the next position. */
  append(chunk: Int32Array): void {
    const end = (this.known + 1) * this.k;
    if (end > this.ids.length) {
      const grown = new Int32Array(2 * end);
      grown.set(this.ids.subarray(0, this.known * this.k));
      this.ids = grown;
    }
    this.ids.set(chunk, this.known * this.k);
    this.known++;
  }
}
