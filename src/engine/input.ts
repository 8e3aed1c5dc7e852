// The frontend of the engine, on the caller's thread (the server's main thread, or the CLI):
// every check of a request's values and its tokenization happen here, once, so the engine
// thread only runs steps. A prompt too long for the context is refused from its size alone
// before any tokenization: no token of this vocabulary is longer than `maxTokenBytes` bytes,
// so a prompt of B bytes has at least B / maxTokenBytes tokens, and a 1 MB prompt costs a
// byte count, not a tokenizer run.
import { randomSeed } from '../sampling/rng.js';
import { alignPrompt, PROMPT_POLICIES, type PromptPolicy } from './prompt.js';
import type { EngineErrorCode, EngineRequest, GenerateRequest, SamplerKind } from './types.js';

export class EngineRequestError extends Error {
  override name = 'EngineRequestError';
  constructor(readonly code: EngineErrorCode, message: string, readonly param?: string) {
    super(message);
  }
}

/** What the frontend must know of the model and of the engine's limits. */
export interface InputLimits {
  kind: 'calm' | 'ar';
  /** K: tokens per backbone position */
  patchSize: number;
  vocabSize: number;
  pad: number;
  bos: number;
  addBos: boolean;
  /** context, in backbone positions */
  maxPositions: number;
  /** positions the KV pool can give one sequence */
  poolPositions: number;
  defaultPoolSize: number;
  maxPoolSize: number;
  promptPolicy: PromptPolicy;
  /** UTF-8 bytes of the longest token */
  maxTokenBytes: number;
}

export interface Encoder {
  encode(text: string): number[];
}

const SAMPLERS: readonly SamplerKind[] = ['batch', 'exact'];

function integer(v: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new EngineRequestError('invalid_request', `${name} must be an integer, got ${String(v)}`, name);
  if (v < min || v > max) throw new EngineRequestError('invalid_request', `${name} must be between ${min} and ${max}, got ${v}`, name);
  return v === 0 ? 0 : v; // -0 is 0
}

export class InputProcessor {
  constructor(readonly limits: InputLimits, private readonly tokenizer: Encoder) {}

  /** Checks every value of a request and tokenizes its prompt; throws EngineRequestError (a client error) when something is wrong. */
  prepare(req: GenerateRequest): EngineRequest {
    const l = this.limits;
    if (typeof req.id !== 'string' || req.id.length === 0) throw new EngineRequestError('invalid_request', 'a request needs a non-empty id', 'id');
    const maxTokens = integer(req.maxTokens, 'max_tokens', 1);
    const temperature = this.temperature(req.temperature);
    const sampler = req.sampler ?? 'batch';
    if (!SAMPLERS.includes(sampler)) throw new EngineRequestError('invalid_request', `sampler must be "batch" or "exact", got ${String(sampler)}`, 'sampler');
    const poolSize = req.poolSize === undefined ? l.defaultPoolSize : integer(req.poolSize, 'pool_size', 1, l.maxPoolSize);
    const topP = req.topP ?? 1;
    if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw new EngineRequestError('invalid_request', `top_p must be a number in (0, 1], got ${String(topP)}`, 'top_p');
    const confidence = req.confidence ?? false;
    if (typeof confidence !== 'boolean') throw new EngineRequestError('invalid_request', 'confidence must be true or false', 'confidence');
    if (l.kind === 'calm' && sampler === 'exact') {
      // Algorithm 1 decides from matching draws, not from a pool: it has no frequencies to cut or report.
      if (topP < 1) throw new EngineRequestError('invalid_request', 'top_p needs the batch sampler (its pool\'s frequencies); the exact sampler has no pool', 'top_p');
      if (confidence) throw new EngineRequestError('invalid_request', 'confidence needs the batch sampler (its pool\'s frequencies); the exact sampler has no pool', 'confidence');
    }
    if (l.kind === 'ar' && confidence) {
      throw new EngineRequestError('invalid_request', 'confidence is a CALM extension (a chunk\'s frequency in the sample pool); a token model has no pool', 'confidence');
    }
    const seed = req.seed === undefined ? randomSeed() : integer(req.seed, 'seed', 0);
    const seedStream = req.seedStream === undefined ? 0 : integer(req.seedStream, 'seed_stream', 0);
    const policy = req.promptPolicy ?? l.promptPolicy;
    if (!PROMPT_POLICIES.includes(policy)) {
      throw new EngineRequestError('invalid_request', `prompt_policy must be one of ${PROMPT_POLICIES.map((p) => `"${p}"`).join(', ')}`, 'prompt_policy');
    }
    const stop = req.stop ?? [];
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) {
      throw new EngineRequestError('invalid_request', 'stop must be a list of non-empty strings', 'stop');
    }
    const generated = Math.ceil(maxTokens / l.patchSize);
    const bos = l.addBos ? 1 : 0;
    const tokens = this.tokens(req.prompt, maxTokens, bos);
    const withBos = l.addBos ? [l.bos, ...tokens] : tokens;
    if (withBos.length === 0) throw new EngineRequestError('invalid_request', 'the prompt is empty and this model has no BOS token to start from', 'prompt');
    const input = l.kind === 'calm' ? alignPrompt(withBos, l.patchSize, l.pad, policy).ids : withBos;
    const positions = input.length / l.patchSize + generated;
    this.checkContext(positions, `the prompt has ${tokens.length} tokens`, maxTokens);
    if (positions > l.poolPositions) {
      throw new EngineRequestError('limit_exceeded',
        `this request needs ${positions * l.patchSize} tokens of KV cache but the server's KV pool holds ${l.poolPositions * l.patchSize} ` +
        'for one sequence (--kv-cache-bytes); shorten the prompt or lower max_tokens', 'max_tokens');
    }
    return {
      id: req.id, input: Int32Array.from(input), promptTokens: tokens.length, maxTokens, temperature, sampler, poolSize, topP, confidence, seed, seedStream,
      stop, ignoreEos: req.ignoreEos === true,
    };
  }

  private temperature(t: unknown): number {
    const max = this.limits.kind === 'calm' ? 1 : 2;
    if (typeof t !== 'number' || !Number.isFinite(t)) throw new EngineRequestError('invalid_request', `temperature must be a finite number, got ${String(t)}`, 'temperature');
    if (t < 0) throw new EngineRequestError('invalid_request', `temperature must be between 0 and ${max}, got ${t}`, 'temperature');
    if (t > max) {
      throw new EngineRequestError(
        'temperature_above_one',
        this.limits.kind === 'calm'
          ? `temperature must be between 0 and 1, got ${t}: a likelihood-free model can sharpen its distribution (T < 1) but not flatten it`
          : `temperature must be between 0 and 2, got ${t}`,
        'temperature',
      );
    }
    return t === 0 ? 0 : t; // -0 is 0 (greedy), not 1 / -0 = -Infinity
  }

  /**
   * The prompt's token ids. A prompt that cannot fit the context even with no output is refused
   * before it is tokenized (a text) or checked id by id (an array).
   */
  private tokens(prompt: string | number[], maxTokens: number, bos: number): number[] {
    const l = this.limits;
    if (typeof prompt === 'string') {
      const bytes = Buffer.byteLength(prompt, 'utf8');
      const atLeast = Math.ceil(bytes / l.maxTokenBytes);
      this.checkContext(Math.ceil((atLeast + bos) / l.patchSize), `the prompt (${bytes} bytes) has at least ${atLeast} tokens`, maxTokens);
      return this.tokenizer.encode(prompt);
    }
    if (!Array.isArray(prompt)) throw new EngineRequestError('invalid_request', 'prompt must be a string or an array of token ids', 'prompt');
    this.checkContext(Math.ceil((prompt.length + bos) / l.patchSize), `the prompt has ${prompt.length} tokens`, maxTokens);
    const bad = prompt.find((id) => typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= l.vocabSize);
    if (bad !== undefined) throw new EngineRequestError('invalid_request', `token id ${String(bad)} is outside the vocabulary (0 to ${l.vocabSize - 1})`, 'prompt');
    return prompt.map((id) => (id === 0 ? 0 : id));
  }

  private checkContext(positions: number, what: string, maxTokens: number): void {
    const l = this.limits;
    if (positions <= l.maxPositions) return;
    throw new EngineRequestError(
      'context_length_exceeded',
      `this model's context is ${l.maxPositions * l.patchSize} tokens; ${what} and max_tokens is ${maxTokens} ` +
        `(${positions * l.patchSize} tokens with BOS and chunk alignment). Shorten the prompt or lower max_tokens.`,
      'max_tokens',
    );
  }
}
