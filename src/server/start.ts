// Starts the engine thread and the HTTP server, and drains them on shutdown.
import type { FastifyInstance } from 'fastify';
import type { ServerConfig } from '../config.js';
import { EngineClient } from '../engine/client.js';
import { loadBundle } from '../model/bundle.js';
import { TextTokenizer } from '../model/tokenizer.js';
import { buildApp } from './app.js';
import type { ServerContext } from './context.js';
import { Metrics } from './metrics.js';

export interface RunningServer {
  app: FastifyInstance;
  ctx: ServerContext;
  url: string;
  /** readiness off, new requests 503, running ones get up to the grace period, then everything closes */
  drain(): Promise<void>;
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const bundle = loadBundle(config.modelDir);
  const engine = await EngineClient.start(config);
  const m = bundle.manifest;
  const served = { id: config.modelName || m.name, kind: m.kind, vocabSize: m.vocab_size };
  const admission = { inflight: 0, draining: false, live: new Set<() => void>() };
  const metrics = new Metrics(engine, served.id);
  const ctx: ServerContext = {
    config,
    engine,
    served,
    tokenizer: new TextTokenizer(bundle.paths.tokenizer!, m.special_tokens),
    admission,
    metrics,
    generation: { engine, admission, metrics, capacity: engine.info.maxRunning + config.maxWaiting, timeoutMs: config.requestTimeoutMs },
    startedAt: Date.now(),
  };
  const app = await buildApp(ctx, metrics);
  const address = await app.listen({ host: config.host, port: config.port });
  app.log.info({
    model: served.id, kind: m.kind, bundle: bundle.dir, device: engine.info.device, dtype: m.dtype,
    context_tokens: engine.info.contextTokens, max_running: engine.info.maxRunning, kv_cache_bytes: engine.info.kvCacheBytes,
    load_ms: Math.round(engine.info.loadMs), auth: config.apiKeys.length > 0, cors: config.corsOrigins,
  }, `calm-serve: ${m.kind} model ${served.id} on ${engine.info.device}, listening on ${address}`);
  let draining: Promise<void> | null = null;
  const drain = () => {
    draining ??= (async () => {
      admission.draining = true;
      app.log.info({ inflight: admission.inflight, grace_ms: config.drainGraceMs }, 'draining: no new requests; waiting for running ones');
      const deadline = Date.now() + config.drainGraceMs;
      while (admission.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (admission.inflight > 0) {
        app.log.warn({ inflight: admission.inflight }, 'grace period over: cancelling what is still running');
        for (const cancel of admission.live) cancel();
        const cancelDeadline = Date.now() + 5000;
        while (admission.inflight > 0 && Date.now() < cancelDeadline) await new Promise((r) => setTimeout(r, 20));
      }
      await app.close();
      await engine.close();
    })();
    return draining;
  };
  return { app, ctx, url: address, drain };
}
