// The completion request: OpenAI's fields (plus CALM's own), parsed once for HTTP and WebSocket
// alike. This checks the JSON's shape and the fields that belong to the API (n, stop, echo,
// stream); the values that reach the engine (max_tokens, temperature, seed, pool_size, the
// prompt's tokens and length) are checked in one place, the engine's frontend
// (src/engine/input.ts). Every problem becomes a 400 naming the field.
import { EngineRequestError, type InputProcessor } from '../engine/input.js';
import type { PromptPolicy } from '../engine/prompt.js';
import type { EngineRequest, SamplerKind } from '../engine/types.js';
import { type ApiError, invalidRequest, modelNotFound } from './errors.js';

export interface CompletionParams {
  /** the served model's id (routeModel chose it) */
  model: string;
  /** one entry per prompt: text or token ids */
  prompts: (string | number[])[];
  maxTokens: number;
  temperature: number;
  n: number;
  stop: string[];
  seed: number | undefined;
  echo: boolean;
  stream: boolean;
  includeUsage: boolean;
  user: string | undefined;
  poolSize: number | undefined;
  /** nucleus (the frontend checks its range and the sampler it needs) */
  topP: number | undefined;
  /** CALM: each streamed chunk carries its pool frequency */
  confidence: boolean;
  sampler: SamplerKind | undefined;
  promptPolicy: PromptPolicy | undefined;
  ignoreEos: boolean;
}

export const MAX_STOP = 4;

type Body = Record<string, unknown>;

function isTokenArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');
}

/** A number field; its range is the frontend's to check. */
function num(body: Body, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number') throw invalidRequest(`${key} must be a number, got ${JSON.stringify(v)}`, key, 'invalid_type');
  return v;
}

function bool(body: Body, key: string, fallback: boolean): boolean {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw invalidRequest(`${key} must be true or false, got ${JSON.stringify(v)}`, key, 'invalid_type');
  return v;
}

function prompts(v: unknown): (string | number[])[] {
  if (typeof v === 'string') return [v];
  if (isTokenArray(v)) return [v];
  if (Array.isArray(v) && v.length > 0) {
    if (v.every((p) => typeof p === 'string')) return v as string[];
    if (v.every(isTokenArray)) return v as number[][];
  }
  throw invalidRequest('prompt must be a string, an array of strings, an array of token ids or an array of arrays of token ids', 'prompt', 'invalid_type');
}

const UNSUPPORTED: Record<string, string> = {
  logprobs: 'logprobs are not available: a CALM model is likelihood-free and assigns no probability to tokens; ' +
    '`confidence: true` (with stream: true, or on the WebSocket) returns each chunk\'s frequency in the sample pool instead',
  best_of: 'best_of ranks completions by likelihood, which a likelihood-free model does not have',
  suffix: 'suffix (insertion) is not supported',
  logit_bias: 'logit_bias needs token logits, which a CALM model does not produce',
};

function objectBody(raw: unknown): Body {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalidRequest('the request body must be a JSON object', null, 'invalid_type');
  return raw as Body;
}

/**
 * The served model a request's `model` field names. Without the field, the only model when one
 * is served (as vLLM does); with several, a missing field or an id no model has is a 404 listing
 * the served ids. Cheap (one field read), so it runs before admission, which is per model.
 */
export function routeModel<M extends { id: string }>(raw: unknown, models: readonly M[]): M {
  // A body that is no object is parseCompletion's 400, counted as the sole model's refusal.
  const isObject = typeof raw === 'object' && raw !== null && !Array.isArray(raw);
  if (!isObject && models.length === 1) return models[0]!;
  const model = objectBody(raw).model;
  if (model === undefined || model === null) {
    if (models.length === 1) return models[0]!;
    throw modelNotFound(null, models.map((m) => m.id));
  }
  if (typeof model !== 'string') throw invalidRequest(`model must be a string, got ${JSON.stringify(model)}`, 'model', 'invalid_type');
  const found = models.find((m) => m.id === model);
  if (!found) throw modelNotFound(model, models.map((m) => m.id));
  return found;
}

/** The completion's fields, for the model routeModel chose. */
export function parseCompletion(raw: unknown, model: string, maxN: number, ws = false): CompletionParams {
  const body = objectBody(raw);
  if (body.prompt === undefined) throw invalidRequest('prompt is required', 'prompt', 'missing_required_parameter');
  for (const [key, why] of Object.entries(UNSUPPORTED)) {
    const v = body[key];
    const off = v === undefined || v === null || v === false || (key === 'best_of' && v === 1) || (key === 'logit_bias' && typeof v === 'object' && Object.keys(v as object).length === 0);
    if (!off) throw invalidRequest(why, key, 'unsupported_parameter');
  }
  for (const key of ['presence_penalty', 'frequency_penalty'] as const) {
    const v = body[key];
    if (v !== undefined && v !== null && v !== 0) throw invalidRequest(`${key} is not supported (only 0)`, key, 'unsupported_parameter');
  }
  const confidence = bool(body, 'confidence', false);
  const temperature = num(body, 'temperature') ?? 1;
  const stopRaw = body.stop;
  let stop: string[] = [];
  if (typeof stopRaw === 'string') stop = [stopRaw];
  else if (Array.isArray(stopRaw) && stopRaw.every((s) => typeof s === 'string')) stop = stopRaw as string[];
  else if (stopRaw !== undefined && stopRaw !== null) throw invalidRequest('stop must be a string or an array of strings', 'stop', 'invalid_type');
  if (stop.length > MAX_STOP) throw invalidRequest(`stop takes at most ${MAX_STOP} strings, got ${stop.length}`, 'stop');
  const so = body.stream_options;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so))) throw invalidRequest('stream_options must be an object', 'stream_options', 'invalid_type');
  const stream = bool(body, 'stream', false);
  const includeUsage = so ? bool(so as Body, 'include_usage', false) : false;
  if (so && !stream) throw invalidRequest('stream_options is only allowed with stream: true', 'stream_options');
  if (confidence && !stream && !ws) {
    throw invalidRequest('confidence is returned on each streamed chunk: set stream: true (or use the WebSocket /v1/stream)', 'confidence');
  }
  const user = body.user;
  if (user !== undefined && user !== null && typeof user !== 'string') throw invalidRequest('user must be a string', 'user', 'invalid_type');
  // sampler and prompt_policy are checked by the frontend with the other engine values
  const sampler = body.sampler;
  const policy = body.prompt_policy;
  const n = num(body, 'n') ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > maxN) throw invalidRequest(`n must be an integer from 1 to ${maxN} (the server's --max-n), got ${n}`, 'n');
  return {
    model,
    prompts: prompts(body.prompt),
    maxTokens: num(body, 'max_tokens') ?? 16,
    temperature,
    n,
    stop,
    seed: num(body, 'seed'),
    echo: bool(body, 'echo', false),
    stream,
    includeUsage,
    user: typeof user === 'string' ? user : undefined,
    poolSize: num(body, 'pool_size'),
    topP: num(body, 'top_p'),
    confidence,
    sampler: (sampler ?? undefined) as SamplerKind | undefined,
    promptPolicy: (policy ?? undefined) as PromptPolicy | undefined,
    ignoreEos: bool(body, 'ignore_eos', false),
  };
}

/**
 * The engine requests of a completion, one per (prompt, choice), validated and tokenized by the
 * frontend (once per prompt: the choices share it). Choice i of a seeded request uses stream i of
 * the seed; an unseeded one draws one seed for all its choices, so they too differ by stream.
 * Throws the 400 (or the 400 naming a server limit) of the first bad prompt.
 */
export function engineRequests(p: CompletionParams, idPrefix: string, input: InputProcessor, capacity: number): EngineRequest[] {
  const total = p.prompts.length * p.n;
  if (total > capacity) {
    throw invalidRequest(
      `this request asks for ${total} generations (${p.prompts.length} prompts x n = ${p.n}) but the server runs and queues at most ${capacity} at once ` +
        '(--max-running + --max-waiting); split it into smaller requests', p.prompts.length > 1 ? 'prompt' : 'n', 'limit_exceeded');
  }
  const out: EngineRequest[] = [];
  p.prompts.forEach((prompt, pi) => {
    let first: EngineRequest;
    try {
      first = input.prepare({
        id: `${idPrefix}-${pi * p.n}`,
        prompt,
        maxTokens: p.maxTokens,
        temperature: p.temperature,
        stop: p.stop,
        ...(p.seed !== undefined ? { seed: p.seed } : {}),
        ...(p.poolSize !== undefined ? { poolSize: p.poolSize } : {}),
        ...(p.topP !== undefined ? { topP: p.topP } : {}),
        ...(p.confidence ? { confidence: true } : {}),
        ...(p.sampler !== undefined ? { sampler: p.sampler } : {}),
        ...(p.promptPolicy !== undefined ? { promptPolicy: p.promptPolicy } : {}),
        ...(p.ignoreEos ? { ignoreEos: true } : {}),
      });
    } catch (err) {
      if (err instanceof EngineRequestError) throw requestError(err);
      throw err;
    }
    for (let c = 0; c < p.n; c++) out.push({ ...first, id: `${idPrefix}-${pi * p.n + c}`, seedStream: c });
  });
  return out;
}

/** The 400 of a request the frontend refused: a value out of range is `invalid_value`; the others name their limit. */
export function requestError(e: EngineRequestError): ApiError {
  const code = e.code === 'invalid_request' || e.code === 'temperature_above_one' ? 'invalid_value' : e.code;
  return invalidRequest(e.message, e.param ?? null, code);
}
