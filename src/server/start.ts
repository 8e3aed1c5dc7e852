// Starts the engine thread and the HTTP server, and drains them on shutdown.
import type { FastifyInstance } from 'fastify';
import type { ServerConfig } from '../config.js';
import { EngineClient } from '../engine/client.js';
import { buildApp } from './app.js';
import type { ServerContext } from './context.js';
import { draining as drainingError } from './errors.js';
import type { Admission } from './generation.js';
import { Metrics } from './metrics.js';

export interface RunningServer {
  app: FastifyInstance;
  ctx: ServerContext;
  url: string;
  /**
   * Readiness off, new requests 503, running ones get the grace period; then what is left is
   * cancelled, and settled with a 503 if the engine does not answer; everything is closed. It
   * resolves within `drainGraceMs` (at least 1 s), a wedged engine included.
   */
  drain(): Promise<void>;
}

export interface ServerHooks {
  /** the engine thread died: every pending request has failed; the process should exit non-zero */
  onEngineDeath?: (reason: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether a listen address is reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}

/** The end of the grace kept for cancelling and closing: a fifth of it, 1 to 3 s. */
function closingMs(graceMs: number): number {
  return Math.min(3000, Math.max(1000, Math.floor(graceMs / 5)));
}

/** How long a drain may take: the grace, or the closing window when the grace is shorter. */
export function drainBudgetMs(graceMs: number): number {
  return Math.max(graceMs, closingMs(graceMs));
}

async function within(ms: number, work: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export async function startServer(config: ServerConfig, hooks: ServerHooks = {}): Promise<RunningServer> {
  let engine: EngineClient;
  try {
    engine = await EngineClient.start(config);
  } catch (err) {
    throw new Error(`cannot load the model bundle ${config.modelDir}: ${(err as Error).message}`, { cause: err });
  }
  const info = engine.info;
  const served = { id: config.modelName || info.model, kind: info.kind };
  const admission: Admission = { inflight: 0, draining: false, live: new Set() };
  const metrics = new Metrics(engine, served.id);
  const ctx: ServerContext = {
    config,
    engine,
    served,
    tokenizer: engine.tokenizer,
    admission,
    metrics,
    generation: { engine, admission, metrics, capacity: config.maxRunning + config.maxWaiting, timeoutMs: config.requestTimeoutMs },
    startedAt: Date.now(),
  };
  let app: FastifyInstance;
  let address: string;
  try {
    app = await buildApp(ctx, metrics);
    address = await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    // The engine thread would keep the process alive: a server that cannot listen must exit.
    await engine.close(1000);
    throw new Error(`cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`, { cause: err });
  }
  engine.onDeath((reason) => {
    app.log.fatal({ reason }, 'the engine thread died: failing every pending request and exiting so that the server is restarted');
    hooks.onEngineDeath?.(reason);
  });
  app.log.info({
    model: served.id, kind: info.kind, device: info.device, ...(info.adapter ? { adapter: info.adapter } : {}), threads: info.threads, wide_threads: info.wideThreads, dtype: info.dtype,
    context_tokens: info.contextTokens, max_running: info.maxRunning, kv_cache_bytes: info.kvCacheBytes, kv_blocks: info.blocks,
    block_size: info.blockSize, load_ms: Math.round(info.loadMs), auth: config.apiKeys.length > 0, cors: config.corsOrigins,
  }, `calm-serve: ${info.kind} model ${served.id} on ${info.device}${info.adapter ? ` (${info.adapter})` : ''}, listening on ${address}`);
  if (config.apiKeys.length === 0 && !isLoopback(config.host)) {
    app.log.warn({ host: config.host },
      `no API keys: anyone who can reach ${config.host}:${config.port} can use the model. Set --api-keys (CALM_API_KEYS) or ` +
      '--api-keys-file, or listen on 127.0.0.1 (--host) where nothing outside this machine needs the server');
  }
  let draining: Promise<void> | null = null;
  const drain = () => {
    draining ??= (async () => {
      admission.draining = true;
      const grace = config.drainGraceMs;
      const start = Date.now();
      app.log.info({ inflight: admission.inflight, grace_ms: grace }, 'draining: no new requests; waiting for running ones');
      const closing = closingMs(grace);
      while (admission.inflight > 0 && Date.now() - start < grace - closing) await sleep(20);
      if (admission.inflight > 0) {
        app.log.warn({ inflight: admission.inflight }, 'grace period over: cancelling what is still running');
        for (const g of admission.live) g.cancel();
        const cancelUntil = Date.now() + closing / 2;
        while (admission.inflight > 0 && Date.now() < cancelUntil) await sleep(10);
        // The engine did not answer (wedged): settle on this thread so every client gets its response.
        for (const g of [...admission.live]) g.abandon(drainingError());
      }
      // Together with the cancel window: 0.95 of the closing window, so the drain ends inside its budget.
      await within(closing / 4, app.close());
      await engine.close(closing / 5);
    })();
    return draining;
  };
  return { app, ctx, url: address, drain };
}
