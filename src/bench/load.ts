// Load shapes for the serving benchmark, as vLLM `bench serve` makes them:
// - arrivals: a Poisson process at --request-rate (exponential gaps; with --burstiness B != 1,
//   gamma gaps of shape B and the same mean), or all at once for rate inf;
// - concurrency: with --max-concurrency N, an arrived request waits for one of N slots, and
//   its clock (send time) starts when it gets one.

/** A seeded generator of uniform numbers in [0, 1) (splitmix32: small, fast, good enough for load shapes). */
export function createRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  };
}

/** A standard normal sample (Box-Muller). */
export function normal(rng: () => number): number {
  const u = 1 - rng(); // (0, 1]
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** An exponential sample with the given mean. */
export function exponential(rng: () => number, mean: number): number {
  return -Math.log(1 - rng()) * mean;
}

/** A gamma(shape, scale) sample (Marsaglia-Tsang; shape < 1 by boosting). Mean shape * scale. */
export function gamma(rng: () => number, shape: number, scale: number): number {
  if (shape === 1) return exponential(rng, scale);
  if (shape < 1) return gamma(rng, shape + 1, scale) * Math.pow(1 - rng() || Number.MIN_VALUE, 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v * scale;
  }
}

export interface ArrivalOptions {
  /** requests per second; Infinity: every request at time 0 */
  requestRate: number;
  /** gamma shape of the gaps: 1 is Poisson, below 1 burstier, above 1 more regular (default 1) */
  burstiness?: number;
  /**
   * Rescale the cumulative times so the last arrival lands exactly at n / rate (vLLM does this
   * so that runs with different seeds offer the same average load). Default true.
   */
  normalize?: boolean;
}

/** Gaps (s) between arrivals: gamma with shape B and mean 1 / rate (exponential for B = 1). */
export function interarrivalGaps(n: number, rate: number, burstiness: number, rng: () => number): number[] {
  const theta = 1 / (rate * burstiness);
  return Array.from({ length: n }, () => gamma(rng, burstiness, theta));
}

/**
 * Arrival times (ms from the start) of n requests. Each request, the first included, follows a
 * random gap; with `normalize` the schedule is scaled to end at n / rate seconds.
 */
export function arrivalSchedule(n: number, o: ArrivalOptions, rng: () => number): number[] {
  if (n <= 0) return [];
  if (!Number.isFinite(o.requestRate)) return new Array<number>(n).fill(0);
  if (!(o.requestRate > 0)) throw new Error(`request rate must be positive or inf, got ${o.requestRate}`);
  const b = o.burstiness ?? 1;
  if (!(b > 0)) throw new Error(`burstiness must be positive, got ${b}`);
  const gaps = interarrivalGaps(n, o.requestRate, b, rng);
  const times: number[] = [];
  let t = 0;
  for (const g of gaps) times.push((t += g));
  if (o.normalize !== false && t > 0) {
    const factor = n / o.requestRate / t;
    for (let i = 0; i < n; i++) times[i] = times[i]! * factor;
  }
  return times.map((s) => s * 1000);
}

/** A counting semaphore: at most `limit` holders (Infinity: no limit). */
export class Semaphore {
  private held = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!(limit >= 1)) throw new Error(`concurrency limit must be at least 1, got ${limit}`);
  }

  async acquire(): Promise<void> {
    if (this.held < this.limit) {
      this.held++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else this.held--;
  }
}

export interface LoadOptions {
  /** arrival times, ms from the start (see arrivalSchedule) */
  schedule: readonly number[];
  /** null: no limit */
  maxConcurrency: number | null;
  /** clock (ms); performance.now by default */
  now?: () => number;
  /** called whenever a request starts or ends, with the number in flight */
  onInflight?: (inflight: number) => void;
}

export interface LoadResult<T> {
  results: T[];
  /** first arrival (the start) to the end of the last request, ms */
  durationMs: number;
  /** the clock value at the start; request start times are relative to it */
  startMs: number;
  peakConcurrency: number;
}

/**
 * Runs `task(i, startedAtMs)` for every scheduled arrival: at its arrival time it waits for a
 * concurrency slot, then runs. `startedAtMs` is the clock when the slot was granted.
 */
export async function runLoad<T>(o: LoadOptions, task: (index: number, startedAtMs: number) => Promise<T>): Promise<LoadResult<T>> {
  const now = o.now ?? (() => performance.now());
  const slots = new Semaphore(o.maxConcurrency ?? Infinity);
  const start = now();
  let inflight = 0;
  let peak = 0;
  const running: Promise<T>[] = [];
  for (let i = 0; i < o.schedule.length; i++) {
    const due = start + o.schedule[i]!;
    // timers have millisecond granularity and may fire a little early: sleep until really due
    for (let wait = due - now(); wait > 0; wait = due - now()) await new Promise((r) => setTimeout(r, Math.ceil(wait)));
    running.push((async () => {
      await slots.acquire();
      inflight++;
      peak = Math.max(peak, inflight);
      o.onInflight?.(inflight);
      try {
        return await task(i, now());
      } finally {
        inflight--;
        o.onInflight?.(inflight);
        slots.release();
      }
    })());
  }
  const results = await Promise.all(running);
  return { results, durationMs: now() - start, startMs: start, peakConcurrency: peak };
}
