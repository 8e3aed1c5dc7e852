// The completion request: OpenAI's fields (plus CALM's own), validated once for HTTP and
// WebSocket alike. Every problem becomes a 400 naming the field.
import type { PromptPolicy } from '../engine/prompt.js';
import { PROMPT_POLICIES } from '../engine/prompt.js';
import type { GenerateRequest, SamplerKind } from '../engine/types.js';
import { invalidRequest, notFound } from './errors.js';

export interface ServedModel {
  id: string;
  kind: 'calm' | 'ar';
  vocabSize: number;
}

export interface CompletionParams {
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
  sampler: SamplerKind | undefined;
  promptPolicy: PromptPolicy | undefined;
  ignoreEos: boolean;
}

export const MAX_N = 16;
export const MAX_STOP = 4;

type Body = Record<string, unknown>;

function isTokenArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');
}

function integer(body: Body, key: string, fallback: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalidRequest(`${key} must be an integer, got ${JSON.stringify(v)}`, key, 'invalid_type');
  if (v < min || v > max) throw invalidRequest(`${key} must be between ${min} and ${max}, got ${v}`, key);
  return v;
}

function bool(body: Body, key: string, fallback: boolean): boolean {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw invalidRequest(`${key} must be true or false, got ${JSON.stringify(v)}`, key, 'invalid_type');
  return v;
}

function prompts(v: unknown, vocabSize: number): (string | number[])[] {
  if (typeof v === 'string') return [v];
  if (isTokenArray(v)) return [checkIds(v, vocabSize)];
  if (Array.isArray(v) && v.length > 0) {
    if (v.every((p) => typeof p === 'string')) return v as string[];
    if (v.every(isTokenArray)) return (v as number[][]).map((ids) => checkIds(ids, vocabSize));
  }
  throw invalidRequest('prompt must be a string, an array of strings, an array of token ids or an array of arrays of token ids', 'prompt', 'invalid_type');
}

function checkIds(ids: number[], vocabSize: number): number[] {
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad !== undefined) throw invalidRequest(`token id ${bad} is outside the vocabulary (0 to ${vocabSize - 1})`, 'prompt');
  return ids;
}

const UNSUPPORTED: Record<string, string> = {
  logprobs: 'logprobs are not available: a CALM model is likelihood-free and assigns no probability to tokens',
  best_of: 'best_of ranks completions by likelihood, which a likelihood-free model does not have',
  suffix: 'suffix (insertion) is not supported',
  logit_bias: 'logit_bias needs token logits, which a CALM model does not produce',
};

export function parseCompletion(raw: unknown, served: ServedModel): CompletionParams {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalidRequest('the request body must be a JSON object', null, 'invalid_type');
  const body = raw as Body;
  const model = body.model;
  if (typeof model !== 'string') throw invalidRequest('model is required and must be a string', 'model', 'missing_required_parameter');
  if (model !== served.id) throw notFound(`The model ${JSON.stringify(model)} does not exist; this server serves ${JSON.stringify(served.id)}.`, 'model_not_found');
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
  const topP = body.top_p;
  if (topP !== undefined && topP !== null && topP !== 1) {
    throw invalidRequest('top_p is not supported: nucleus sampling needs token probabilities; use temperature (and pool_size) instead', 'top_p', 'unsupported_parameter');
  }
  const t = body.temperature;
  let temperature = 1;
  if (t !== undefined && t !== null) {
    if (typeof t !== 'number' || !Number.isFinite(t)) throw invalidRequest(`temperature must be a number, got ${JSON.stringify(t)}`, 'temperature', 'invalid_type');
    const max = served.kind === 'calm' ? 1 : 2;
    if (t < 0 || t > max) {
      throw invalidRequest(
        served.kind === 'calm'
          ? `temperature must be between 0 and 1, got ${t}: a likelihood-free model can sharpen its distribution (T < 1) but not flatten it`
          : `temperature must be between 0 and 2, got ${t}`,
        'temperature',
      );
    }
    temperature = t;
  }
  const stopRaw = body.stop;
  let stop: string[] = [];
  if (typeof stopRaw === 'string') stop = [stopRaw];
  else if (Array.isArray(stopRaw) && stopRaw.every((s) => typeof s === 'string')) stop = stopRaw as string[];
  else if (stopRaw !== undefined && stopRaw !== null) throw invalidRequest('stop must be a string or an array of strings', 'stop', 'invalid_type');
  if (stop.length > MAX_STOP) throw invalidRequest(`stop takes at most ${MAX_STOP} strings, got ${stop.length}`, 'stop');
  if (stop.some((s) => s.length === 0)) throw invalidRequest('stop strings must not be empty', 'stop');
  const so = body.stream_options;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so))) throw invalidRequest('stream_options must be an object', 'stream_options', 'invalid_type');
  const stream = bool(body, 'stream', false);
  const includeUsage = so ? bool(so as Body, 'include_usage', false) : false;
  if (so && !stream) throw invalidRequest('stream_options is only allowed with stream: true', 'stream_options');
  const user = body.user;
  if (user !== undefined && user !== null && typeof user !== 'string') throw invalidRequest('user must be a string', 'user', 'invalid_type');
  const sampler = body.sampler;
  if (sampler !== undefined && sampler !== null && sampler !== 'batch' && sampler !== 'exact') {
    throw invalidRequest('sampler must be "batch" or "exact"', 'sampler');
  }
  const policy = body.prompt_policy;
  if (policy !== undefined && policy !== null && !PROMPT_POLICIES.includes(policy as PromptPolicy)) {
    throw invalidRequest(`prompt_policy must be one of ${PROMPT_POLICIES.map((p) => `"${p}"`).join(', ')}`, 'prompt_policy');
  }
  return {
    model,
    prompts: prompts(body.prompt, served.vocabSize),
    maxTokens: integer(body, 'max_tokens', 16, 1)!,
    temperature,
    n: integer(body, 'n', 1, 1, MAX_N)!,
    stop,
    seed: integer(body, 'seed', undefined, 0),
    echo: bool(body, 'echo', false),
    stream,
    includeUsage,
    user: typeof user === 'string' ? user : undefined,
    poolSize: integer(body, 'pool_size', undefined, 1, 10_000),
    sampler: (sampler ?? undefined) as SamplerKind | undefined,
    promptPolicy: (policy ?? undefined) as PromptPolicy | undefined,
    ignoreEos: bool(body, 'ignore_eos', false),
  };
}

/** One engine request per (prompt, choice); choice i of a seeded request uses stream i of the seed. */
export function engineRequests(p: CompletionParams, idPrefix: string): GenerateRequest[] {
  const out: GenerateRequest[] = [];
  p.prompts.forEach((prompt, pi) => {
    for (let c = 0; c < p.n; c++) {
      out.push({
        id: `${idPrefix}-${pi * p.n + c}`,
        prompt,
        maxTokens: p.maxTokens,
        temperature: p.temperature,
        stop: p.stop,
        ...(p.seed !== undefined ? { seed: p.seed, seedStream: c } : {}),
        ...(p.poolSize !== undefined ? { poolSize: p.poolSize } : {}),
        ...(p.sampler !== undefined ? { sampler: p.sampler } : {}),
        ...(p.promptPolicy !== undefined ? { promptPolicy: p.promptPolicy } : {}),
        ...(p.ignoreEos ? { ignoreEos: true } : {}),
      });
    }
  });
  return out;
}
