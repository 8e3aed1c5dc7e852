// The main thread's handle on the engine thread: validate and tokenize requests (input.ts),
// submit them, receive their events (one message per engine step), cancel them, and watch the
// thread's liveness. If the engine thread dies, every pending request fails at once and the
// death listeners run (the server exits so that its supervisor restarts it).
import { Worker } from 'node:worker_threads';
import { loadBundle } from '../model/bundle.js';
import { TextTokenizer } from '../model/tokenizer.js';
import type { EngineConfig } from './config.js';
import type { StepTiming } from './engine.js';
import { EngineRequestError, InputProcessor } from './input.js';
import type { FromEngine, ToEngine } from './protocol.js';
import type { EngineInfo } from './setup.js';
import type { EngineEvent, EngineRequest, EngineStats, ErrorEvent, GenerateRequest } from './types.js';

export type EventListener = (event: EngineEvent) => void;

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './worker-entry.mjs' : './worker.js', import.meta.url);

const EMPTY_STATS: EngineStats = { running: 0, waiting: 0, blocksUsed: 0, blocksTotal: 0, steps: 0, preemptions: 0, prefixQueries: 0, prefixHits: 0 };

/**
 * The engine thread's young generation. V8 grows it to 32 MB or more under a high allocation
 * rate and keeps it; the engine's allocations are small and short-lived (its tensors live
 * outside the V8 heap), so 4 MB costs no measured throughput and saves about 20 MB of resident memory
 * (docs/benchmarks.md, "Memory over many requests").
 */
const ENGINE_YOUNG_GENERATION_MB = 4;

export class EngineClient {
  private readonly listeners = new Map<string, EventListener>();
  private readonly stepListeners: ((t: StepTiming, s: EngineStats) => void)[] = [];
  private readonly deathListeners: ((reason: string) => void)[] = [];
  stats: EngineStats;
  /** wall-clock ms of the engine loop's last sign of life */
  lastHeartbeat = Date.now();
  private exited = false;
  private closing = false;

  private constructor(private readonly worker: Worker, readonly info: EngineInfo, readonly input: InputProcessor, readonly tokenizer: TextTokenizer) {
    this.stats = { ...EMPTY_STATS, blocksTotal: info.blocks };
    worker.on('message', (msg: FromEngine) => this.onMessage(msg));
    worker.on('error', (err) => this.die(`the engine thread failed: ${err.message}`));
    worker.on('exit', (code) => this.die(`the engine thread exited with code ${code}`));
  }

  static start(config: EngineConfig): Promise<EngineClient> {
    const bundle = loadBundle(config.modelDir);
    const tokenizer = new TextTokenizer(bundle.paths.tokenizer!, bundle.manifest.special_tokens);
    const worker = new Worker(WORKER_URL, { workerData: config, resourceLimits: { maxYoungGenerationSizeMb: ENGINE_YOUNG_GENERATION_MB } });
    return new Promise((resolve, reject) => {
      const onMessage = (msg: FromEngine) => {
        if (msg.type === 'ready') {
          cleanup();
          resolve(new EngineClient(worker, msg.info, new InputProcessor(msg.info.input, tokenizer), tokenizer));
        } else if (msg.type === 'fatal') {
          cleanup();
          void worker.terminate();
          reject(new Error(msg.message));
        }
      };
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new Error(`engine thread exited with code ${code} while loading`));
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Validates and tokenizes a request for submit(); throws EngineRequestError for a client error. */
  prepare(request: GenerateRequest): EngineRequest {
    return this.input.prepare(request);
  }

  /** Submits a prepared request; `listener` receives its events until `done` or `error`. */
  submit(request: EngineRequest, listener: EventListener): void {
    if (this.exited) {
      listener(deadEvent(request.id, 'the engine thread is not running'));
      return;
    }
    this.listeners.set(request.id, listener);
    this.post({ type: 'submit', request });
  }

  /** Collects a whole generation (for the CLI, tests and benchmarks); a refused request ends with an error event. */
  generate(request: GenerateRequest, onChunk?: (e: EngineEvent) => void): Promise<{ text: string; events: EngineEvent[] }> {
    return new Promise((resolve) => {
      const events: EngineEvent[] = [];
      let text = '';
      let prepared: EngineRequest;
      try {
        prepared = this.prepare(request);
      } catch (err) {
        if (!(err instanceof EngineRequestError)) throw err;
        const e: ErrorEvent = { type: 'error', id: request.id, code: err.code, message: err.message, ...(err.param ? { param: err.param } : {}) };
        resolve({ text, events: [e] });
        return;
      }
      this.submit(prepared, (e) => {
        events.push(e);
        onChunk?.(e);
        if (e.type === 'chunk') text += e.text;
        else resolve({ text, events });
      });
    });
  }

  cancel(id: string): void {
    if (!this.exited) this.post({ type: 'cancel', id });
  }

  onStep(listener: (t: StepTiming, s: EngineStats) => void): void {
    this.stepListeners.push(listener);
  }

  /** Runs once if the engine thread dies (not when close() stops it). */
  onDeath(listener: (reason: string) => void): void {
    this.deathListeners.push(listener);
  }

  /**
   * Stops the loop and waits for the thread to end, at most `graceMs`. A thread still busy then
   * (a wedged step) is left to the process's exit, unreferenced: terminating a worker in the middle
   * of an onnxruntime call aborts the whole process.
   */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    if (this.exited) return;
    const stopped = new Promise<boolean>((resolve) => this.worker.once('exit', () => resolve(true)));
    this.post({ type: 'stop' });
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([stopped, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)))]);
    clearTimeout(timer);
    if (!ended) this.worker.unref();
  }

  private post(msg: ToEngine): void {
    this.worker.postMessage(msg);
  }

  private onMessage(msg: FromEngine): void {
    switch (msg.type) {
      case 'step': {
        this.stats = msg.stats;
        this.lastHeartbeat = msg.heartbeat;
        for (const event of msg.events) {
          const listener = this.listeners.get(event.id);
          if (event.type !== 'chunk') this.listeners.delete(event.id);
          listener?.(event);
        }
        if (msg.timing) for (const l of this.stepListeners) l(msg.timing, msg.stats);
        break;
      }
      case 'heartbeat':
        this.stats = msg.stats;
        this.lastHeartbeat = msg.at;
        break;
      case 'stopped':
        this.worker.unref();
        void this.worker.terminate();
        break;
      default:
        break;
    }
  }

  private die(reason: string): void {
    if (this.exited) return;
    this.exited = true;
    const pending = [...this.listeners];
    this.listeners.clear();
    for (const [id, listener] of pending) listener(deadEvent(id, reason));
    if (!this.closing) for (const l of this.deathListeners) l(reason);
  }
}

function deadEvent(id: string, reason: string): ErrorEvent {
  return { type: 'error', id, code: 'engine_dead', message: `${reason}; this request cannot finish` };
}
