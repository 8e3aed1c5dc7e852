// A small real server for the route tests: the engine thread on the default CALM bundle, a
// hand-assembled ServerContext, a bare fastify app with only the routes under test.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import Fastify, { type FastifyInstance } from 'fastify';
import { SERVER_DEFAULTS } from '../../src/config.js';
import { EngineClient } from '../../src/engine/client.js';
import { ENGINE_DEFAULTS } from '../../src/engine/config.js';
import { loadBundle } from '../../src/model/bundle.js';
import { DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
import { TextTokenizer } from '../../src/model/tokenizer.js';
import type { ServedModel, ServerContext } from '../../src/server/context.js';
import type { Admission } from '../../src/server/generation.js';
import { Metrics, type ModelMetrics } from '../../src/server/metrics.js';

export interface TestServer {
  app: FastifyInstance;
  ctx: ServerContext;
  engine: EngineClient;
  metrics: Metrics;
  /** the model's view of `metrics` (its series carry its model label) */
  modelMetrics: ModelMetrics;
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port> */
  wsUrl: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  capacity?: number;
  timeoutMs?: number;
  /** called after the context exists and before listen: register the routes under test */
  routes: (app: FastifyInstance, ctx: ServerContext, metrics: Metrics) => Promise<void> | void;
}

export async function startTestServer(options: TestServerOptions): Promise<TestServer> {
  const bundle = loadBundle(DEFAULT_MODEL_DIR);
  const engine = await EngineClient.start({ ...ENGINE_DEFAULTS, modelDir: DEFAULT_MODEL_DIR, intraOpThreads: 1 });
  const metrics = new Metrics();
  const admission: Admission = { inflight: 0, draining: false, live: new Set() };
  const load = { inflight: 0 };
  const modelMetrics = metrics.addModel(bundle.manifest.name, engine, load);
  const served: ServedModel = {
    id: bundle.manifest.name,
    kind: bundle.manifest.kind,
    engine,
    tokenizer: new TextTokenizer(bundle.paths.tokenizer!, bundle.manifest.special_tokens),
    metrics: modelMetrics,
    generation: { engine, admission, load, metrics: modelMetrics, capacity: options.capacity ?? 64, timeoutMs: options.timeoutMs ?? 60_000 },
  };
  const ctx: ServerContext = {
    config: { ...SERVER_DEFAULTS, modelDirs: [DEFAULT_MODEL_DIR], intraOpThreads: 1, logLevel: 'silent' },
    models: [served],
    served,
    admission,
    startedAt: Date.now(),
  };
  const app = Fastify({ logger: false });
  try {
    await options.routes(app, ctx, metrics);
    await app.listen({ port: 0, host: '127.0.0.1' });
  } catch (err) {
    await app.close();
    await engine.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    app,
    ctx,
    engine,
    metrics,
    modelMetrics,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    close: async () => {
      await app.close();
      await engine.close();
    },
  };
}

/** Polls `check` every 20 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  url: string;
  /** resolves with the exit code and the time of exit (Date.now()) */
  exited: Promise<{ code: number | null; at: number }>;
  log: () => string;
}

/** Spawns a server process (`args` after node) and waits for its "listening on" line. */
export async function spawnServer(args: string[], env: Record<string, string> = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { env: { ...process.env, ...env } });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = () => {
      const m = /listening on (http:\/\/[^"\s]+)/.exec(log);
      if (m) resolve(m[1]!);
    };
    child.stdout.on('data', onData);
    void exited.then(({ code }) => reject(new Error(`server exited early with ${code}: ${log}`)));
  });
  return { child, url, exited, log: () => log };
}
