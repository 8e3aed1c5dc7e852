// Messages between the main thread (client.ts) and the engine thread (worker.ts).
import type { StepTiming } from './engine.js';
import type { EngineInfo } from './setup.js';
import type { EngineEvent, EngineStats, GenerateRequest } from './types.js';

export type ToEngine = { type: 'submit'; request: GenerateRequest } | { type: 'cancel'; id: string } | { type: 'stop' };

export type FromEngine =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'fatal'; message: string }
  | { type: 'event'; event: EngineEvent }
  | { type: 'step'; timing: StepTiming; stats: EngineStats; heartbeat: number }
  | { type: 'heartbeat'; at: number; stats: EngineStats }
  | { type: 'stopped' };
