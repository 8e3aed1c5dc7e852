// Request logs: one line per request, at the level of what happened. Probes and scrapes
// (/health, /ready, /metrics) log at debug, so that an hour of Kubernetes probing is not 17,000
// lines. A completion logs one info line when it ends (completions.ts, stream-ws.ts) in place of
// the request line. A client's mistake (4xx, a 503 while draining) logs at info without a stack;
// only a fault of the server's logs at error, with the stack of the exception that was no API
// error. Secrets in a URL's query are redacted wherever a URL is logged.
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import type { DoneEvent } from '../engine/types.js';
import { ApiError } from './errors.js';

export const QUIET_PATHS: ReadonlySet<string> = new Set(['/health', '/ready', '/metrics']);

/** Query parameters some clients put keys in (`?api_key=`); the server reads none, but logs URLs. */
const SECRET_PARAMS = new Set(['api_key', 'api-key', 'apikey', 'key', 'access_token', 'token']);

export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return url;
  const pairs = url.slice(q + 1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    let decoded = name;
    try {
      decoded = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      // a malformed name is logged as sent
    }
    return SECRET_PARAMS.has(decoded.toLowerCase()) ? `${name}=[redacted]` : pair;
  });
  return `${url.slice(0, q)}?${pairs.join('&')}`;
}

/** The path of a request URL, for routing decisions in logs. */
export const pathOf = (url: string) => url.split('?')[0]!;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** 4xx and a 503 during shutdown are the client's lot; 500 is a server fault; 503 (engine gone) and 504 are operational. */
export function levelFor(status: number, code: string | null): LogLevel {
  if (status < 500 || code === 'draining') return 'info';
  return status === 500 ? 'error' : 'warn';
}

interface Failure {
  api: ApiError;
  /** the exception behind a 500 when it was no API error (a bug): its stack is worth logging */
  cause?: Error;
}

const failures = new WeakMap<FastifyRequest, Failure>();
const logged = new WeakSet<FastifyRequest>();

/** The error handler records what it answered, for the request's one log line. */
export function recordFailure(req: FastifyRequest, api: ApiError, cause?: Error): void {
  failures.set(req, cause ? { api, cause } : { api });
}

/** The request wrote its own line (a completion): the generic one is left out. */
export function markLogged(req: FastifyRequest): void {
  logged.add(req);
}

export function registerRequestLog(app: FastifyInstance): void {
  app.addHook('onResponse', (req, reply, done) => {
    if (!logged.has(req)) {
      const status = reply.statusCode;
      const failure = failures.get(req);
      const code = failure?.api.code ?? null;
      // A probe says at debug what it says every few seconds; a failing one (the engine stuck or
      // gone) at its level, except readiness turned off by a drain, which is the plan.
      const level = QUIET_PATHS.has(pathOf(req.url)) && (status < 500 || code === 'draining') ? 'debug' : levelFor(status, code);
      req.log[level]({
        method: req.method,
        url: redactUrl(req.url),
        status,
        ms: Math.round(reply.elapsedTime),
        ...(failure ? { code: failure.api.code, error: failure.api.message } : {}),
        ...(failure?.cause ? { err: failure.cause } : {}),
      }, 'request');
    }
    done();
  });
}

export interface CompletionRecord {
  /** the completion's id (cmpl-..., or the WebSocket generation's) */
  id: string;
  model: string;
  transport: 'http' | 'sse' | 'websocket';
  /** one per choice: how it ended */
  results: readonly (DoneEvent | ApiError)[];
  /** prompt tokens, each prompt counted once whatever n */
  promptTokens: number;
  /** the choices' texts, with --log-prompts only */
  texts?: readonly string[];
}

/** The one line a completion logs when it ends: at info, or at the level of its worst failure. */
export function logCompletion(log: FastifyBaseLogger, rec: CompletionRecord): void {
  const done = rec.results.filter((r): r is DoneEvent => !(r instanceof ApiError));
  const failed = rec.results.filter((r): r is ApiError => r instanceof ApiError);
  const order: LogLevel[] = ['debug', 'info', 'warn', 'error'];
  const level = failed.map((e) => levelFor(e.status, e.code)).reduce((a, b) => (order.indexOf(b) > order.indexOf(a) ? b : a), 'info' as LogLevel);
  log[level]({
    completion: {
      id: rec.id,
      model: rec.model,
      transport: rec.transport,
      choices: rec.results.length,
      prompt_tokens: rec.promptTokens,
      completion_tokens: done.reduce((n, r) => n + r.usage.completionTokens, 0),
      finish: rec.results.map((r) => (r instanceof ApiError ? `error:${r.code ?? r.status}` : r.finishReason)),
      queue_ms: Math.round(Math.max(0, ...done.map((r) => r.queueMs))),
      total_ms: Math.round(Math.max(0, ...done.map((r) => r.totalMs))),
      cached_prompt_positions: done.reduce((n, r) => n + r.cachedPositions, 0),
      preemptions: done.reduce((n, r) => n + r.preemptions, 0),
      ...(rec.texts ? { text: rec.texts } : {}),
    },
  }, 'completion finished');
}
