// What every route of the server shares.
import type { ServerConfig } from '../config.js';
import type { EngineClient } from '../engine/client.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import type { Admission, GenerationOptions } from './generation.js';
import type { RequestMetrics } from './metrics-api.js';
import type { ServedModel } from './request.js';

export interface ServerContext {
  config: ServerConfig;
  engine: EngineClient;
  served: ServedModel;
  /** for echo of token-id prompts; the engine thread has its own */
  tokenizer: TextTokenizer;
  admission: Admission;
  metrics: RequestMetrics;
  /** the options every generation starts with */
  generation: GenerationOptions;
  startedAt: number;
}
