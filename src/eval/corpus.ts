// Evaluation text as the models were trained on it: each document is BOS (when the bundle's
// models were trained with it) + its tokens, cut into
// windows of at most `block` tokens (a multiple of K); positions are where a prediction is scored.

export interface EvalWindow {
  /** index over all windows of the run: names the window's random streams, so figures do not depend on batching */
  index: number;
  tokens: Int32Array;
}

/** Windows of BOS + document, `block` tokens each (the last one shorter, cut to a multiple of K), at least 2K long. */
export function documentWindows(documents: readonly (readonly number[])[], bos: number | null, k: number, block: number): EvalWindow[] {
  if (block < 2 * k || block % k !== 0) throw new RangeError(`the window must be a multiple of K = ${k} of at least ${2 * k} tokens, got ${block}`);
  const windows: EvalWindow[] = [];
  for (const doc of documents) {
    const seq = bos === null ? [...doc] : [bos].concat(doc);
    for (let start = 0; start < seq.length; start += block) {
      const end = Math.min(seq.length, start + block);
      const length = end - start - ((end - start) % k);
      if (length >= 2 * k) windows.push({ index: windows.length, tokens: Int32Array.from(seq.slice(start, start + length)) });
    }
  }
  return windows;
}

/**
 * `aligned`: the paper's positions, every chunk boundary after the first chunk (the context is
 * whole chunks, the outcome the next chunk's first n tokens). `all`: every token position, so
 * contexts of any length, which a CALM model meets through the prompt policy.
 */
export type PositionMode = 'aligned' | 'all';
export const POSITION_MODES: readonly PositionMode[] = ['aligned', 'all'];

/** Positions p of a window of `length` tokens: predict tokens [p, p + K) from tokens [0, p). */
export function evalPositions(length: number, k: number, mode: PositionMode): number[] {
  const out: number[] = [];
  const step = mode === 'aligned' ? k : 1;
  for (let p = step; p + k <= length; p += step) out.push(p);
  return out;
}

/** Autoencoder inputs as in training: each document + EOS, right-padded with PAD to a multiple of K; flat. */
export function reconstructionChunks(documents: readonly (readonly number[])[], k: number, eos: number, pad: number): Int32Array {
  const ids: number[] = [];
  for (const doc of documents) {
    for (const id of doc) ids.push(id);
    ids.push(eos);
    while (ids.length % k !== 0) ids.push(pad);
  }
  return Int32Array.from(ids);
}
