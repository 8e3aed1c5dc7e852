// The main thread's handle on the engine thread: submit requests, receive their events,
// cancel them, watch the loop's liveness and statistics.
import { Worker } from 'node:worker_threads';
import type { EngineConfig } from './config.js';
import type { StepTiming } from './engine.js';
import type { FromEngine, ToEngine } from './protocol.js';
import type { EngineInfo } from './setup.js';
import type { EngineEvent, EngineStats, GenerateRequest } from './types.js';

export type EventListener = (event: EngineEvent) => void;

const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './worker-entry.mjs' : './worker.js', import.meta.url);

export class EngineClient {
  private readonly listeners = new Map<string, EventListener>();
  private stepListeners: ((t: StepTiming, s: EngineStats) => void)[] = [];
  stats: EngineStats = { running: 0, waiting: 0, kvUsage: 0, steps: 0 };
  /** wall-clock ms of the engine loop's last sign of life */
  lastHeartbeat = Date.now();
  private exited = false;

  private constructor(private readonly worker: Worker, readonly info: EngineInfo) {
    worker.on('message', (msg: FromEngine) => this.onMessage(msg));
    worker.on('exit', () => {
      this.exited = true;
    });
  }

  static start(config: EngineConfig): Promise<EngineClient> {
    const worker = new Worker(WORKER_URL, { workerData: config });
    return new Promise((resolve, reject) => {
      const onMessage = (msg: FromEngine) => {
        if (msg.type === 'ready') {
          worker.off('message', onMessage);
          resolve(new EngineClient(worker, msg.info));
        } else if (msg.type === 'fatal') {
          void worker.terminate();
          reject(new Error(msg.message));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`engine thread exited with code ${code} while loading`)));
    });
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Submits a request; `listener` receives its events until `done` or `error`. */
  submit(request: GenerateRequest, listener: EventListener): void {
    this.listeners.set(request.id, listener);
    this.post({ type: 'submit', request });
  }

  /** Collects a whole generation (for the CLI, tests and benchmarks). */
  generate(request: GenerateRequest, onChunk?: (e: EngineEvent) => void): Promise<{ text: string; events: EngineEvent[] }> {
    return new Promise((resolve) => {
      const events: EngineEvent[] = [];
      let text = '';
      this.submit(request, (e) => {
        events.push(e);
        onChunk?.(e);
        if (e.type === 'chunk') text += e.text;
        if (e.type !== 'chunk') resolve({ text, events });
      });
    });
  }

  cancel(id: string): void {
    this.post({ type: 'cancel', id });
  }

  onStep(listener: (t: StepTiming, s: EngineStats) => void): void {
    this.stepListeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const stopped = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.post({ type: 'stop' });
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await stopped;
    clearTimeout(timer);
  }

  private post(msg: ToEngine): void {
    this.worker.postMessage(msg);
  }

  private onMessage(msg: FromEngine): void {
    switch (msg.type) {
      case 'event': {
        const listener = this.listeners.get(msg.event.id);
        if (msg.event.type !== 'chunk') this.listeners.delete(msg.event.id);
        listener?.(msg.event);
        break;
      }
      case 'step':
        this.stats = msg.stats;
        this.lastHeartbeat = msg.heartbeat;
        for (const l of this.stepListeners) l(msg.timing, msg.stats);
        break;
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
}
