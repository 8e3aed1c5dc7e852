// One engine generation on behalf of a client (HTTP, SSE or WebSocket): admission against the
// bounded queue, the request timeout, cancellation when the client goes away, and metrics.
// Every generation settles on this (main) thread, whatever the engine thread does: on its final
// chunk or done event, on an engine error, on the timeout (504 at once, then a cancel is sent),
// or when the engine thread dies.
import type { EngineClient } from '../engine/client.js';
import type { DoneEvent, EngineEvent, EngineRequest, ErrorEvent } from '../engine/types.js';
import { ApiError, draining, engineUnavailable, invalidRequest, queueFull, serverError, timedOut } from './errors.js';
import type { RequestMetrics } from './metrics-api.js';

export interface Admission {
  /** requests submitted to an engine and not yet finished, every model's */
  inflight: number;
  draining: boolean;
  /** the running generations, for the end of a drain */
  live: Set<LiveGeneration>;
}

export interface LiveGeneration {
  /** asks the engine to stop it (it settles when the engine says so) */
  cancel(): void;
  /** settles it now with `error`, whatever the engine thread does */
  abandon(error: ApiError): void;
}

/** One model's share of the admitted requests: each engine has its own queue, so its own bound. */
export interface ModelLoad {
  inflight: number;
}

/** What every generation of one model starts with. */
export interface GenerationOptions {
  engine: EngineClient;
  /** the server's, shared by every model (drain) */
  admission: Admission;
  load: ModelLoad;
  metrics: RequestMetrics;
  /** bound on this model's in-flight requests (its engine's running + waiting) */
  capacity: number;
  timeoutMs: number;
}

/**
 * Throws 503 while draining and 429 when `count` more requests would overflow the queue right
 * now. Cheap: call it before parsing prompts. (A request larger than the whole capacity never
 * gets here: engineRequests refuses it with a 400, it is no reason to retry.)
 */
export function admit(opts: GenerationOptions, count: number): void {
  if (opts.admission.draining) throw draining();
  if (!opts.engine.alive) throw engineUnavailable();
  if (opts.load.inflight + count > opts.capacity) throw queueFull(1);
}

export function engineError(e: ErrorEvent): ApiError {
  switch (e.code) {
    case 'engine_error':
      return serverError(e.message);
    case 'engine_dead':
      return engineUnavailable(e.message);
    default:
      return invalidRequest(e.message, e.param ?? null, e.code);
  }
}

export interface Generation {
  readonly request: EngineRequest;
  /** resolves with the final event (done, or an error mapped to its API error) */
  readonly finished: Promise<DoneEvent | ApiError>;
  cancel(): void;
}

/**
 * Starts one generation; `onChunk` sees every chunk event until it settles. Call `admit` first.
 * The returned generation always finishes.
 */
export function startGeneration(opts: GenerationOptions, request: EngineRequest, onChunk: (e: EngineEvent & { type: 'chunk' }) => void): Generation {
  const observer = opts.metrics.startRequest();
  opts.admission.inflight++;
  opts.load.inflight++;
  let settled = false;
  let sawText = false;
  let timer: NodeJS.Timeout | undefined;
  let resolveFinished!: (v: DoneEvent | ApiError) => void;
  const finished = new Promise<DoneEvent | ApiError>((r) => (resolveFinished = r));
  const cancel = () => opts.engine.cancel(request.id);
  const live: LiveGeneration = {
    cancel,
    abandon: (error) => {
      if (settled) return;
      observer.finished('cancelled', { promptTokens: 0, completionTokens: 0 }, 0);
      settle(error);
      cancel();
    },
  };
  opts.admission.live.add(live);
  const settle = (v: DoneEvent | ApiError) => {
    if (settled) return;
    settled = true;
    if (timer) clearTimeout(timer);
    opts.admission.inflight--;
    opts.load.inflight--;
    opts.admission.live.delete(live);
    resolveFinished(v);
  };
  opts.engine.submit(request, (e) => {
    if (settled) return;
    if (e.type === 'chunk') {
      if (e.text.length > 0 || e.tokenIds.length > 0) {
        if (!sawText) observer.firstChunk();
        else observer.chunk();
        sawText = true;
      }
      onChunk(e);
    } else if (e.type === 'done') {
      observer.finished(e.finishReason, e.usage, e.queueMs);
      settle(e);
    } else {
      observer.finished('error', { promptTokens: 0, completionTokens: 0 }, 0);
      settle(engineError(e));
    }
  });
  if (opts.timeoutMs > 0) {
    timer = setTimeout(() => {
      if (settled) return;
      observer.finished('timeout', { promptTokens: 0, completionTokens: 0 }, 0);
      settle(timedOut(opts.timeoutMs));
      opts.engine.cancel(request.id);
    }, opts.timeoutMs);
  }
  return { request, finished, cancel };
}
