// Starts an engine thread per served model and the HTTP server, and drains them on shutdown.
import type { FastifyInstance } from 'fastify';
import type { ServerConfig } from '../config.js';
import { EngineClient } from '../engine/client.js';
import { buildApp } from './app.js';
import type { ServedModel, ServerContext } from './context.js';
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
  /** an engine thread died: every request pending on it has failed; the process should exit non-zero */
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

/** Starts one engine thread per bundle, in parallel; if one fails (a bad bundle throws at once, hence async), the others are closed. */
async function startEngines(config: ServerConfig): Promise<EngineClient[]> {
  const started = await Promise.allSettled(config.modelDirs.map(async (modelDir) => EngineClient.start({ ...config, modelDir })));
  const failed = started.findIndex((r) => r.status === 'rejected');
  if (failed < 0) return started.map((r) => (r as PromiseFulfilledResult<EngineClient>).value);
  await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.close(1000) : undefined)));
  const err = (started[failed] as PromiseRejectedResult).reason as Error;
  throw new Error(`cannot load the model bundle ${config.modelDirs[failed]}: ${err.message}`, { cause: err });
}

/** What the start line says of one model. */
function describe(model: ServedModel): string {
  const { info } = model.engine;
  return `${info.kind} model ${model.id} on ${info.device}${info.adapter ? ` (${info.adapter})` : ''}`;
}

function modelFields(model: ServedModel): Record<string, unknown> {
  const { info } = model.engine;
  return {
    model: model.id, kind: info.kind, device: info.device, ...(info.adapter ? { adapter: info.adapter } : {}), threads: info.threads, wide_threads: info.wideThreads,
    dtype: info.dtype, context_tokens: info.contextTokens, max_running: info.maxRunning, kv_cache_bytes: info.kvCacheBytes, kv_blocks: info.blocks,
    block_size: info.blockSize, load_ms: Math.round(info.loadMs),
  };
}

export async function startServer(config: ServerConfig, hooks: ServerHooks = {}): Promise<RunningServer> {
  const engines = await startEngines(config);
  const admission: Admission = { inflight: 0, draining: false, live: new Set() };
  const metrics = new Metrics();
  const closeEngines = (graceMs: number) => Promise.all(engines.map((e) => e.close(graceMs)));
  const ids = engines.map((engine, i) => config.modelNames[i] || engine.info.model);
  const twice = ids.find((id, i) => ids.indexOf(id) !== i);
  if (twice !== undefined) {
    await closeEngines(1000);
    throw new Error(`two bundles would both be served as ${JSON.stringify(twice)}: give each model its own id with --model-name (one per --model, in order)`);
  }
  const models: ServedModel[] = engines.map((engine, i) => {
    const id = ids[i]!;
    const load = { inflight: 0 };
    const modelMetrics = metrics.addModel(id, engine, load);
    return {
      id,
      kind: engine.info.kind,
      engine,
      tokenizer: engine.tokenizer,
      metrics: modelMetrics,
      // Each engine has its own queue: the admission bound is per model.
      generation: { engine, admission, load, metrics: modelMetrics, capacity: config.maxRunning + config.maxWaiting, timeoutMs: config.requestTimeoutMs },
    };
  });
  const ctx: ServerContext = { config, models, served: models[0]!, admission, startedAt: Date.now() };
  let app: FastifyInstance;
  let address: string;
  try {
    app = await buildApp(ctx, metrics);
    address = await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    // The engine threads would keep the process alive: a server that cannot listen must exit.
    await closeEngines(1000);
    throw new Error(`cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`, { cause: err });
  }
  for (const model of models) {
    model.engine.onDeath((reason) => {
      app.log.fatal({ model: model.id, reason }, 'the engine thread died: failing every pending request of its model and exiting so that the server is restarted');
      hooks.onEngineDeath?.(reason);
    });
  }
  // One model logs its fields at the top level, as it always has; several log them as a list.
  const fields = models.length === 1 ? modelFields(models[0]!) : { models: models.map(modelFields) };
  app.log.info({ ...fields, auth: config.apiKeys.length > 0, cors: config.corsOrigins },
    `calm-serve: ${models.map(describe).join(', ')}, listening on ${address}`);
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
      await closeEngines(closing / 5);
    })();
    return draining;
  };
  return { app, ctx, url: address, drain };
}
