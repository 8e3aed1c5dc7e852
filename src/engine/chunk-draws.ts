// CALM sampling against the model: every item's sampler asks for samples of its own hidden
// state; items that want the same number share one head + decoder call, until all have decided.
// Used by the engine's decode step and by evaluation, so both sample exactly alike.
import type { ModelRunner } from '../model/runner.js';
import type { ChunkSampler, SampleResult } from '../sampling/chunks.js';
import type { Rng } from '../sampling/rng.js';

export interface ChunkDraw {
  /** the hidden state that conditions the energy head, hidden_size floats */
  hidden: Float32Array;
  sampler: ChunkSampler;
  /** the item's own stream: its noise and its sampler's choices */
  rng: Rng;
}

/** One SampleResult per item, in item order. */
export async function drawChunks(runner: ModelRunner, items: readonly ChunkDraw[]): Promise<SampleResult[]> {
  const m = runner.manifest;
  const d = m.hidden_size;
  const k = m.patch_size;
  const noiseSize = m.noise_size!;
  const results = new Array<SampleResult>(items.length);
  for (const item of items) item.sampler.reset();
  let active = items.map((_, i) => i);
  while (active.length > 0) {
    const groups = new Map<number, number[]>();
    for (const i of active) {
      const want = items[i]!.sampler.wanted();
      const g = groups.get(want);
      if (g) g.push(i);
      else groups.set(want, [i]);
    }
    const next: number[] = [];
    for (const [samples, group] of groups) {
      const hidden = new Float32Array(group.length * d);
      const noise = new Float32Array(group.length * samples * noiseSize);
      group.forEach((item, row) => {
        hidden.set(items[item]!.hidden, row * d);
        items[item]!.rng.fillUniform(noise.subarray(row * samples * noiseSize, (row + 1) * samples * noiseSize), -0.5, 0.5);
      });
      const latent = await runner.head(hidden, group.length, samples, noise);
      const ids = await runner.decoder(latent, group.length * samples);
      const pool = Int32Array.from(ids, (v) => Number(v));
      group.forEach((item, row) => {
        const { sampler, rng } = items[item]!;
        const result = sampler.feed(pool.subarray(row * samples * k, (row + 1) * samples * k), rng);
        if (result) results[item] = result;
        else next.push(item);
      });
    }
    active = next;
  }
  return results;
}
