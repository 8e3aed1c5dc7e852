// Opens a bundle's graphs in onnxruntime-node and checks them against graphs.ts.
import { existsSync, statSync } from 'node:fs';
import ort from './ort.js';
import { type Bundle, BundleError, type GraphName, REQUIRED_FILES } from './bundle.js';
import { graphSpec, signatureProblems, type ValueInfo } from './graphs.js';

/** Where the graphs run: onnxruntime's CPU, CUDA or WebGPU execution provider. */
export const DEVICES = ['cpu', 'cuda', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];

export function isDevice(value: string): value is Device {
  return (DEVICES as readonly string[]).includes(value);
}

export interface RuntimeOptions {
  device: Device;
  /** Threads inside one operator (0: automatic, see `threadPlan`). */
  intraOpThreads: number;
  interOpThreads: number;
  /** let idle intra-op threads spin after a run (onnxruntime's default); off: they sleep at once */
  spinning?: boolean;
  /** WebGPU: outputs kept on the device (the others are copied to the host) */
  deviceOutputs?: readonly string[];
}

/**
 * The threads each graph of a bundle runs with when the user sets none (measured on 2 cores,
 * docs/benchmarks.md "Threads"). Small calls (one stream's backbone step, one head sample) are
 * dispatch-bound: a second thread costs more to wake than it gives, so they run on one. Large
 * calls (a pool of samples, a big batch, a long prefill) are arithmetic and gain from every core.
 * So each small graph is opened twice, one thread and every core, and the runner picks by the
 * size of each call; a big graph (over WIDE_SESSION_MAX_BYTES, where every call is large
 * arithmetic) is one session on every core. Spinning is off: a CALM step is three graph calls in
 * a row, and idle pools spinning after their run steal the cores of the next graph's.
 */
export interface ThreadPlan {
  intraOpThreads: number;
  spinning: boolean;
  /** threads of a second session per graph, for large calls (0: no second session) */
  wideThreads: number;
}

export function threadPlan(requested: number, cores: number, device: Device = 'cpu'): ThreadPlan {
  // On a GPU the CPU runs only the graphs' shape arithmetic: one thread, one session per graph.
  if (device !== 'cpu') return { intraOpThreads: requested > 0 ? requested : 1, spinning: false, wideThreads: 0 };
  if (requested > 0) return { intraOpThreads: requested, spinning: false, wideThreads: 0 };
  return { intraOpThreads: 1, spinning: false, wideThreads: cores > 1 ? cores : 0 };
}

/** Bytes of a graph with its external data file, if any. */
function graphBytes(path: string): number {
  const data = `${path}.data`;
  return statSync(path).size + (existsSync(data) ? statSync(data).size : 0);
}

/**
 * A graph gets a narrow and a wide session only if it is this small (a second copy of CALM-M's
 * backbone would cost 1.4 GB); a larger one gets a single session on every core.
 */
export const WIDE_SESSION_MAX_BYTES = 256 << 20;

export type Sessions = Partial<Record<GraphName, ort.InferenceSession>>;

function describe(values: readonly ort.InferenceSession.ValueMetadata[]): ValueInfo[] {
  return values.map((v) => (v.isTensor ? { name: v.name, type: v.type, shape: v.shape } : { name: v.name, type: 'non-tensor', shape: [] }));
}

const CUDA_HINT =
  'the CUDA execution provider is not available. onnxruntime-node ships it separately: reinstall with ' +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install` (npm rebuild skips it: package.json allowScripts) on a machine with CUDA 12 and cuDNN 9, ' +
  'or run with --device cpu (see README.md, "CUDA")';

/** onnxruntime's options for a session on `opts.device`. */
export function sessionOptions(opts: RuntimeOptions): ort.InferenceSession.SessionOptions {
  const deviceOutputs = opts.deviceOutputs ?? [];
  return {
    executionProviders: [opts.device],
    graphOptimizationLevel: 'all',
    // errors only: its warnings are about placement choices it makes itself (shape arithmetic on
    // the CPU beside a GPU) and initializers it removes, nothing a user can act on
    logSeverityLevel: 3,
    ...(opts.intraOpThreads > 0 ? { intraOpNumThreads: opts.intraOpThreads } : {}),
    ...(opts.interOpThreads > 0 ? { interOpNumThreads: opts.interOpThreads } : {}),
    ...(opts.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } } : {}),
    ...(deviceOutputs.length > 0 ? { preferredOutputLocation: Object.fromEntries(deviceOutputs.map((n) => [n, 'gpu-buffer' as const])) } : {}),
  };
}

export async function openGraph(bundle: Bundle, graph: GraphName, opts: RuntimeOptions): Promise<ort.InferenceSession> {
  const path = bundle.paths[graph];
  if (!path) throw new BundleError(`model bundle ${bundle.dir}: no ${graph} graph`);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, sessionOptions(opts));
  } catch (err) {
    const message = (err as Error).message;
    if (opts.device === 'cuda' && /cuda|provider|libcu/i.test(message)) throw new BundleError(`${CUDA_HINT} (${message})`);
    throw new BundleError(`model bundle ${bundle.dir}: cannot load ${graph} graph ${path}: ${message}`);
  }
  const problems = signatureProblems(graphSpec(bundle.manifest, graph), describe(session.inputMetadata), describe(session.outputMetadata));
  if (problems.length > 0) {
    await session.release();
    throw new BundleError(`model bundle ${bundle.dir}: ${graph} graph does not match the manifest: ${problems.join('; ')}`);
  }
  return session;
}

/**
 * Outputs a graph keeps on a WebGPU device: the head's latents go straight into the decoder,
 * and with a device pool the backbone's new keys and values go straight into the pool, and its
 * hidden states or logits stay there but for the rows sampling needs (ModelRunner.backboneLast).
 */
function deviceOutputs(bundle: Bundle, graph: GraphName, device: Device, devicePool: boolean): string[] {
  if (device !== 'webgpu') return [];
  if (graph === 'head') return ['latent'];
  if (graph !== 'backbone' || !devicePool) return [];
  const names: string[] = [bundle.manifest.kind === 'calm' ? 'hidden' : 'logits'];
  for (let i = 0; i < bundle.manifest.num_layers; i++) names.push(`new_key.${i}`, `new_value.${i}`);
  return names;
}

/** Opens the graphs the bundle's kind needs (all but the encoder unless `withEncoder`); `devicePool`: see deviceOutputs. */
export async function openSessions(bundle: Bundle, opts: RuntimeOptions, withEncoder = false, devicePool = false): Promise<Sessions> {
  const sessions: Sessions = {};
  for (const key of REQUIRED_FILES[bundle.manifest.kind]) {
    if (key === 'tokenizer' || (key === 'encoder' && !withEncoder)) continue;
    sessions[key] = await openGraph(bundle, key, { ...opts, deviceOutputs: deviceOutputs(bundle, key, opts.device, devicePool) });
  }
  return sessions;
}

/** The sessions a plan asks for: one per graph, and a wide one for each graph small enough (see ThreadPlan). */
export async function openPlanned(bundle: Bundle, device: Device, interOpThreads: number, plan: ThreadPlan, devicePool = false): Promise<{ sessions: Sessions; wide: Sessions }> {
  const sessions: Sessions = {};
  const wide: Sessions = {};
  for (const key of REQUIRED_FILES[bundle.manifest.kind]) {
    if (key === 'tokenizer' || key === 'encoder') continue;
    const narrow = { device, interOpThreads, intraOpThreads: plan.intraOpThreads, spinning: plan.spinning, deviceOutputs: deviceOutputs(bundle, key, device, devicePool) };
    const all = { ...narrow, intraOpThreads: plan.wideThreads };
    if (plan.wideThreads === 0) sessions[key] = await openGraph(bundle, key, narrow);
    // A big graph is one session on every core: its every call is large arithmetic.
    else if (graphBytes(bundle.paths[key]!) > WIDE_SESSION_MAX_BYTES) sessions[key] = await openGraph(bundle, key, all);
    else {
      sessions[key] = await openGraph(bundle, key, narrow);
      wide[key] = await openGraph(bundle, key, all);
    }
  }
  return { sessions, wide };
}

/** Opens a graph built at run time (device-pool.ts) on `opts.device`. */
export function openBuiltGraph(model: Uint8Array, opts: RuntimeOptions): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, sessionOptions(opts));
}
