// Autoencoder fidelity: encoder mean -> decoder argmax, compared with the input chunk. Token
// accuracy leaves out PAD positions (padding, not text); a chunk counts only if all K match.
import type { ModelRunner } from '../model/runner.js';

export interface ReconstructionCounts {
  tokens: number;
  tokensCorrect: number;
  chunks: number;
  chunksCorrect: number;
}

export interface ReconstructionSummary {
  tokenAccuracy: number;
  tokenAccuracySe: number;
  chunkAccuracy: number;
  chunkAccuracySe: number;
  tokens: number;
  chunks: number;
}

/** Adds one batch of flat chunks (a multiple of K ids) to the counts. */
export async function reconstructBatch(runner: ModelRunner, chunks: Int32Array, pad: number, counts: ReconstructionCounts): Promise<void> {
  const k = runner.manifest.patch_size;
  const n = chunks.length / k;
  const mean = await runner.encoder(BigInt64Array.from(chunks, (t) => BigInt(t)), n);
  const decoded = await runner.decoder(mean, n);
  for (let c = 0; c < n; c++) {
    let whole = true;
    for (let i = c * k; i < (c + 1) * k; i++) {
      const ok = Number(decoded[i]) === chunks[i];
      whole &&= ok;
      if (chunks[i] !== pad) {
        counts.tokens++;
        if (ok) counts.tokensCorrect++;
      }
    }
    counts.chunks++;
    if (whole) counts.chunksCorrect++;
  }
}

/** Accuracies with their binomial standard errors. */
export function reconstructionSummary(c: ReconstructionCounts): ReconstructionSummary {
  const rate = (ok: number, n: number) => (n > 0 ? ok / n : 0);
  const se = (p: number, n: number) => (n > 1 ? Math.sqrt((p * (1 - p)) / n) : 0);
  const tokenAccuracy = rate(c.tokensCorrect, c.tokens);
  const chunkAccuracy = rate(c.chunksCorrect, c.chunks);
  return {
    tokenAccuracy, tokenAccuracySe: se(tokenAccuracy, c.tokens),
    chunkAccuracy, chunkAccuracySe: se(chunkAccuracy, c.chunks),
    tokens: c.tokens, chunks: c.chunks,
  };
}
