// Messages between the main thread (client.ts) and the engine thread (worker.ts).
import type { StepTiming } from './engine.js';
import type { EngineInfo } from './setup.js';
import type { EngineEvent, EngineRequest, EngineStats } from './types.js';

export type ToEngine = { type: 'submit'; request: EngineRequest } | { type: 'cancel'; id: string } | { type: 'stop' };

export type FromEngine =
  | { type: 'ready'; info: EngineInfo }
  | { type: 'fatal'; message: string }
  /** one per step (and one per submission or cancel that ended a request at once): all its events */
  | { type: 'step'; events: EngineEvent[]; timing: StepTiming | null; stats: EngineStats; heartbeat: number }
  | { type: 'heartbeat'; at: number; stats: EngineStats }
  | { type: 'stopped' };
