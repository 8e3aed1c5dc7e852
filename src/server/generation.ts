// One engine generation on behalf of a client (HTTP, SSE or WebSocket): admission against the
// bounded queue, the request timeout, cancellation when the client goes away, and metrics.
import type { EngineClient } from '../engine/client.js';
import type { DoneEvent, EngineEvent, ErrorEvent, GenerateRequest } from '../engine/types.js';
import { ApiError, draining, invalidRequest, queueFull, serverError, timedOut } from './errors.js';
import type { RequestMetrics } from './metrics-api.js';

export interface Admission {
  /** requests submitted to the engine and not yet finished */
  inflight: number;
  draining: boolean;
  /** cancel functions of the running generations, for the end of a drain */
  live: Set<() => void>;
}

export interface GenerationOptions {
  engine: EngineClient;
  admission: Admission;
  metrics: RequestMetrics;
  /** bound on in-flight requests (running + waiting) */
  capacity: number;
  timeoutMs: number;
}

/** Throws 503 while draining and 429 when `count` more requests would overflow the queue. Cheap: call it before parsing prompts. */
export function admit(opts: GenerationOptions, count: number): void {
  if (opts.admission.draining) throw draining();
  if (opts.admission.inflight + count > opts.capacity) throw queueFull(1);
}

export function engineError(e: ErrorEvent): ApiError {
  switch (e.code) {
    case 'queue_full':
      return queueFull(1);
    case 'engine_error':
      return serverError(e.message);
    case 'context_length_exceeded':
      return invalidRequest(e.message, e.param ?? 'prompt', 'context_length_exceeded');
    default:
      return invalidRequest(e.message, e.param ?? null, e.code);
  }
}

export interface Generation {
  readonly request: GenerateRequest;
  /** resolves with the final event (done, or an error mapped to its API error) */
  readonly finished: Promise<DoneEvent | ApiError>;
  cancel(): void;
}

/**
 * Starts one generation; `onChunk` sees every chunk event. Call `admit` first. The returned
 * generation always finishes: on done, on an engine error, on timeout or on cancel.
 */
export function startGeneration(opts: GenerationOptions, request: GenerateRequest, onChunk: (e: EngineEvent & { type: 'chunk' }) => void): Generation {
  const observer = opts.metrics.startRequest();
  opts.admission.inflight++;
  let settled = false;
  let sawText = false;
  let timer: NodeJS.Timeout | undefined;
  let resolveFinished!: (v: DoneEvent | ApiError) => void;
  const finished = new Promise<DoneEvent | ApiError>((r) => (resolveFinished = r));
  let timedOutError: ApiError | null = null;
  const cancel = () => opts.engine.cancel(request.id);
  opts.admission.live.add(cancel);
  const settle = (v: DoneEvent | ApiError) => {
    if (settled) return;
    settled = true;
    if (timer) clearTimeout(timer);
    opts.admission.inflight--;
    opts.admission.live.delete(cancel);
    resolveFinished(v);
  };
  opts.engine.submit(request, (e) => {
    if (e.type === 'chunk') {
      if (e.text.length > 0 || e.tokenIds.length > 0) {
        if (!sawText) observer.firstChunk();
        else observer.chunk();
        sawText = true;
      }
      if (!settled) onChunk(e);
    } else if (e.type === 'done') {
      const reason = timedOutError ? 'timeout' : e.finishReason;
      observer.finished(reason, e.usage, e.queueMs);
      settle(timedOutError ?? e);
    } else {
      observer.finished('error', { promptTokens: 0, completionTokens: 0 }, 0);
      settle(engineError(e));
    }
  });
  if (opts.timeoutMs > 0) {
    timer = setTimeout(() => {
      timedOutError = timedOut(opts.timeoutMs);
      opts.engine.cancel(request.id);
    }, opts.timeoutMs);
  }
  return {
    request,
    finished,
    cancel,
  };
}
