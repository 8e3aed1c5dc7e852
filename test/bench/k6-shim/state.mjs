// Shared state of the k6 shim: the metric registry, the current phase and tags, and the
// synchronous bridge to io-worker.mjs (k6's APIs block; Node's I/O does not). The VU's thread
// posts a request to the worker and sleeps in Atomics.wait until the worker's answer is queued.
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';

export const state = {
  /** init | setup | vu | teardown */
  phase: 'init',
  /** system tags of the current iteration ({scenario}) */
  tags: {},
  /** name -> { type, isTime, samples: [{ value, tags }] } */
  metrics: new Map(),
};

const METRIC_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/;

export function declareMetric(name, type, isTime) {
  if (!METRIC_NAME.test(name)) throw new Error(`k6 shim: invalid metric name ${JSON.stringify(name)}`);
  const existing = state.metrics.get(name);
  if (existing) {
    if (existing.type !== type) throw new Error(`k6 shim: metric ${name} redeclared as ${type} (was ${existing.type})`);
    return existing;
  }
  const m = { type, isTime: Boolean(isTime), samples: [], builtin: false };
  state.metrics.set(name, m);
  return m;
}

export function addSample(name, type, value, tags, isTime = false) {
  let m = state.metrics.get(name);
  if (!m) {
    m = declareMetric(name, type, isTime);
    m.builtin = true;
  }
  if (typeof value === 'boolean') value = value ? 1 : 0;
  if (typeof value !== 'number' || Number.isNaN(value)) throw new Error(`k6 shim: metric ${name} got a non-number ${JSON.stringify(value)}`);
  m.samples.push({ value, tags: { ...state.tags, ...(tags ?? {}) } });
}

const flag = new Int32Array(new SharedArrayBuffer(4));
const channel = new MessageChannel();
const worker = new Worker(new URL('./io-worker.mjs', import.meta.url), { workerData: { port: channel.port2, flag }, transferList: [channel.port2] });
worker.unref();

export function post(msg) {
  channel.port1.postMessage(msg);
}

/** The next message from the worker, waiting up to timeoutMs; null on timeout. */
export function nextMessage(timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const seen = Atomics.load(flag, 0);
    const m = receiveMessageOnPort(channel.port1);
    if (m) return m.message;
    const left = end - Date.now();
    if (left <= 0) return null;
    Atomics.wait(flag, 0, seen, left);
  }
}

export function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
