import { Rng } from '../sampling/rng.js';

/** Positions per window a stream index can tell apart (far above any context length). */
const POSITION_STRIDE = 2 ** 20;

/**
 * The random stream of one sample at one position: a function of (seed, window, position,
 * sample) only, so an evaluation gives the same figures whatever its batch size or order.
 */
export function positionStream(seed: number, window: number, position: number, sample: number): Rng {
  return new Rng(seed, (window * POSITION_STRIDE + position) * 4 + sample);
}
