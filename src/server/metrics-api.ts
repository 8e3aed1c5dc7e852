// What the request path reports to metrics (implemented by metrics.ts with prom-client).
import type { FinishReason } from '../engine/types.js';

export interface RequestObserver {
  /** the engine produced the request's first chunk with text */
  firstChunk(): void;
  /** each later chunk */
  chunk(): void;
  finished(reason: FinishReason | 'error' | 'timeout', usage: { promptTokens: number; completionTokens: number }, queueMs: number): void;
}

export interface RequestMetrics {
  startRequest(): RequestObserver;
  /** a request refused before it started (invalid, over a limit, queue full, draining) */
  refused(): void;
}
