// Token-level stopping for one sampled chunk: PAD never reaches the output, max_tokens counts
// tokens (the last chunk is cut), and an EOS inside a chunk ends the output right after it
// (unless the request ignores EOS, as vLLM's ignore_eos: then every token the model wrote counts,
// PAD and EOS included, so the output has exactly max_tokens tokens; the detokenizer leaves
// special tokens out of the text).
import type { FinishReason } from './types.js';

export interface CutChunk {
  ids: number[];
  finish: FinishReason | null;
}

export function cutChunk(chunk: ArrayLike<number>, pad: number, eos: number, room: number, ignoreEos = false): CutChunk {
  let ids = ignoreEos ? Array.from(chunk) : Array.from(chunk).filter((id) => id !== pad);
  let finish: FinishReason | null = null;
  if (ids.length >= room) {
    ids = ids.slice(0, room);
    finish = 'length';
  }
  const eosAt = ignoreEos ? -1 : ids.indexOf(eos);
  if (eosAt !== -1) {
    ids = ids.slice(0, eosAt + 1);
    finish = 'stop';
  }
  return { ids, finish };
}
