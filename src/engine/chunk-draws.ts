// CALM sampling against the model: every item's sampler asks for samples of its own hidden
// state; items that want the same number share one head + decoder call, until all have decided
// or the step's draw budget is spent. Used by the engine's decode step and by evaluation, so both
// sample exactly alike.
//
// The budget: an item that wants a single sample (T = 1) always gets it; the others share
// `perStep` draws evenly and carry the rest of their pool over to later steps, so a request with
// a large pool or the exact sampler slows nobody else by more than the budget's cost. A sampler
// that is not `divisible` (the exact one) gets each of its batches whole or not at all, so the
// random stream it consumes, and hence its text, never depends on what else shares the step.
// `perCall` bounds the samples of one head + decoder call, and with it the memory a call needs.
import type { ModelRunner } from '../model/runner.js';
import type { ChunkSampler, SampleResult } from '../sampling/chunks.js';
import type { Rng } from '../sampling/rng.js';

export interface ChunkDraw {
  /** the hidden state that conditions the energy head, hidden_size floats */
  hidden: Float32Array;
  sampler: ChunkSampler;
  /** the item's own stream: its noise and its sampler's choices */
  rng: Rng;
  /** false when the sampler continues a step begun earlier (its pool so far is kept) */
  fresh?: boolean;
}

export interface DrawLimits {
  /** draws per call of drawChunks for the items that want more than one sample */
  perStep: number;
  /** samples per head + decoder call */
  perCall: number;
}

export const UNLIMITED: DrawLimits = { perStep: Infinity, perCall: Infinity };

/** Per item: its result, the error of the model call it was in, or undefined when it must continue next step. */
export type DrawOutcome = SampleResult | Error | undefined;

export async function drawChunks(runner: ModelRunner, items: readonly ChunkDraw[], limits: DrawLimits = UNLIMITED): Promise<{ outcomes: DrawOutcome[]; draws: number }> {
  const m = runner.manifest;
  const d = m.hidden_size;
  const k = m.patch_size;
  const noiseSize = m.noise_size!;
  const outcomes = new Array<DrawOutcome>(items.length).fill(undefined);
  for (const item of items) if (item.fresh !== false) item.sampler.reset();
  let left = limits.perStep;
  let draws = 0;
  let active = items.map((_, i) => i);
  while (active.length > 0) {
    // This round's grant per item.
    const wants = active.map((i) => items[i]!.sampler.wanted());
    const pooled = wants.filter((w) => w > 1).length;
    const share = pooled > 0 ? Math.max(1, Math.floor(left / pooled)) : 0;
    let roundLeft = left;
    const groups = new Map<number, number[]>();
    const next: number[] = [];
    active.forEach((i, j) => {
      const want = wants[j]!;
      let grant = want;
      if (want > 1) {
        if (items[i]!.sampler.divisible) grant = Math.min(want, share, roundLeft, limits.perCall);
        else if (want > roundLeft && roundLeft < limits.perStep) grant = 0;
        roundLeft -= grant;
      }
      if (grant <= 0) return; // out of budget: continues next step
      const g = groups.get(grant);
      if (g) g.push(i);
      else groups.set(grant, [i]);
    });
    if (groups.size === 0) break;
    for (const [samples, group] of groups) {
      const rowsPerCall = Math.max(1, Math.floor(limits.perCall / samples));
      for (let from = 0; from < group.length; from += rowsPerCall) {
        const rows = group.slice(from, from + rowsPerCall);
        const hidden = new Float32Array(rows.length * d);
        const noise = new Float32Array(rows.length * samples * noiseSize);
        rows.forEach((item, row) => {
          hidden.set(items[item]!.hidden, row * d);
          items[item]!.rng.fillUniform(noise.subarray(row * samples * noiseSize, (row + 1) * samples * noiseSize), -0.5, 0.5);
        });
        let pool: Int32Array;
        try {
          pool = Int32Array.from(await runner.draw(hidden, rows.length, samples, noise), (v) => Number(v));
        } catch (err) {
          for (const item of rows) outcomes[item] = err instanceof Error ? err : new Error(String(err));
          continue;
        }
        draws += rows.length * samples;
        if (samples > 1) left -= rows.length * samples;
        rows.forEach((item, row) => {
          const { sampler, rng } = items[item]!;
          const result = sampler.feed(pool.subarray(row * samples * k, (row + 1) * samples * k), rng);
          if (result) outcomes[item] = result;
          else next.push(item);
        });
      }
    }
    active = next;
  }
  return { outcomes, draws };
}
