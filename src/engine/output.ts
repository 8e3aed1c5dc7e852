// The output processor: turns a sampled chunk (or token) into what the client sees. PAD is cut
// and EOS ends the output (with ignore_eos both count as tokens and stay out of the text),
// max_tokens is counted in tokens, the text is detokenized
// incrementally and matched against the stop strings; the sequence's last chunk carries
// everything still held back and its finish reason.
import type { PoolConfidence } from '../sampling/chunks.js';
import type { Sequence } from './sequence.js';
import { cutChunk } from './stopping.js';
import type { ChunkEvent, DoneEvent, FinishReason } from './types.js';

export interface SpecialIds {
  pad: number;
  eos: number;
}

/** The chunk event for one sampled chunk, and the reason the sequence ends with it (null: it goes on). */
export function processChunk(seq: Sequence, chunk: Int32Array, special: SpecialIds, maxPositions: number, confidence?: PoolConfidence): { event: ChunkEvent; finish: FinishReason | null } {
  const req = seq.request;
  const cut = cutChunk(chunk, special.pad, special.eos, req.maxTokens - seq.generated, req.ignoreEos);
  let finish = cut.finish;
  seq.generated += cut.ids.length;
  let { text, stopped } = seq.stop.push(seq.detokenizer.push(cut.ids));
  if (stopped !== null) finish = 'stop';
  // The context is full: the chunk just sampled would need a position the model does not have.
  if (finish === null && seq.known >= maxPositions) finish = 'length';
  if (finish !== null && stopped === null) {
    const tail = seq.stop.push(seq.detokenizer.flush());
    text += tail.stopped === null ? tail.text + seq.stop.flush() : tail.text;
  }
  const event: ChunkEvent = {
    type: 'chunk', id: seq.id, tokenIds: cut.ids, text, ...(finish !== null ? { finishReason: finish } : {}), ...(confidence ? { confidence } : {}),
  };
  return { event, finish };
}

export function doneEvent(seq: Sequence, reason: FinishReason, now: number): DoneEvent {
  return {
    type: 'done',
    id: seq.id,
    finishReason: reason,
    usage: { promptTokens: seq.request.promptTokens, completionTokens: seq.generated },
    queueMs: (seq.admittedAt || now) - seq.submittedAt,
    totalMs: now - seq.submittedAt,
    seed: seq.request.seed,
    preemptions: seq.preemptions,
    cachedPositions: seq.cachedPositions,
  };
}
