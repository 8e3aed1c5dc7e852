// What every route of the server shares.
import type { ServerConfig } from '../config.js';
import type { EngineClient } from '../engine/client.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import type { Admission, GenerationOptions } from './generation.js';
import type { RequestMetrics } from './metrics-api.js';

/** One served model: its id in the API and its own engine thread (KV pool, queue, metrics series). */
export interface ServedModel {
  id: string;
  kind: 'calm' | 'ar';
  engine: EngineClient;
  /** for echo of token-id prompts; the engine thread has its own */
  tokenizer: TextTokenizer;
  /** this model's series (the `model` label) */
  metrics: RequestMetrics;
  /** the options every generation of this model starts with */
  generation: GenerationOptions;
}

export interface ServerContext {
  config: ServerConfig;
  /** every served model, in --model order; the `model` field of a request picks one (request.ts, routeModel) */
  models: readonly ServedModel[];
  /** the first model: the one requests without `model` use when it is the only one */
  served: ServedModel;
  admission: Admission;
  startedAt: number;
}
