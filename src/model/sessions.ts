// Opens a bundle's graphs in onnxruntime-node and checks them against graphs.ts.
import ort from 'onnxruntime-node';
import { type Bundle, BundleError, type GraphName, REQUIRED_FILES } from './bundle.js';
import { graphSpec, signatureProblems, type ValueInfo } from './graphs.js';

export type Device = 'cpu' | 'cuda';

export interface RuntimeOptions {
  device: Device;
  /** Threads inside one operator (0: automatic, see `threadPlan`). */
  intraOpThreads: number;
  interOpThreads: number;
  /** let idle intra-op threads spin after a run (onnxruntime's default); off: they sleep at once */
  spinning?: boolean;
}

/**
 * The threads each graph of a bundle runs with when the user sets none (measured on 2 cores,
 * docs/benchmarks.md "Threads"). A CALM step is three graph calls in a row (backbone, head,
 * decoder), each session with its own pool: with onnxruntime's default spinning, the idle
 * pools of the other two spin while one works and steal its cores, so CALM runs on every core
 * with spinning off (+15 % at 16 streams, +60 % at T = 0.5, against one thread). The token
 * baseline makes one small call per token, where waking a second thread costs more than it
 * gives: one thread.
 */
export function threadPlan(kind: 'calm' | 'ar', requested: number, cores: number): { intraOpThreads: number; spinning: boolean } {
  if (requested > 0) return { intraOpThreads: requested, spinning: false };
  return kind === 'calm' ? { intraOpThreads: cores, spinning: false } : { intraOpThreads: 1, spinning: false };
}

export type Sessions = Partial<Record<GraphName, ort.InferenceSession>>;

function describe(values: readonly ort.InferenceSession.ValueMetadata[]): ValueInfo[] {
  return values.map((v) => (v.isTensor ? { name: v.name, type: v.type, shape: v.shape } : { name: v.name, type: 'non-tensor', shape: [] }));
}

const CUDA_HINT =
  'the CUDA execution provider is not available. onnxruntime-node ships it separately: reinstall with ' +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` on a machine with CUDA 12 and cuDNN 9, ' +
  'or run with --device cpu (see README.md, "CUDA")';

export async function openGraph(bundle: Bundle, graph: GraphName, opts: RuntimeOptions): Promise<ort.InferenceSession> {
  const path = bundle.paths[graph];
  if (!path) throw new BundleError(`model bundle ${bundle.dir}: no ${graph} graph`);
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: opts.device === 'cuda' ? ['cuda'] : ['cpu'],
    graphOptimizationLevel: 'all',
    ...(opts.intraOpThreads > 0 ? { intraOpNumThreads: opts.intraOpThreads } : {}),
    ...(opts.interOpThreads > 0 ? { interOpNumThreads: opts.interOpThreads } : {}),
    ...(opts.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } } : {}),
  };
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, sessionOptions);
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

/** Opens the graphs the bundle's kind needs (all but the encoder unless `withEncoder`). */
export async function openSessions(bundle: Bundle, opts: RuntimeOptions, withEncoder = false): Promise<Sessions> {
  const sessions: Sessions = {};
  for (const key of REQUIRED_FILES[bundle.manifest.kind]) {
    if (key === 'tokenizer' || (key === 'encoder' && !withEncoder)) continue;
    sessions[key] = await openGraph(bundle, key, opts);
  }
  return sessions;
}
