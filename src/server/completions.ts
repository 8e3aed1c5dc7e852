// POST /v1/completions: OpenAI's completions API, whole or streamed as server-sent events.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ChunkEvent, DoneEvent, EngineRequest } from '../engine/types.js';
import type { ServedModel, ServerContext } from './context.js';
import { ApiError } from './errors.js';
import { admit, type Generation, startGeneration } from './generation.js';
import { logCompletion, markLogged } from './logging.js';
import { type CompletionParams, engineRequests, parseCompletion, routeModel } from './request.js';
import { STREAM_DEFAULTS } from './stream-ws.js';

interface Choice {
  index: number;
  prompt: string | number[];
  text: string;
  /** text already sent (streaming) */
  echoed: boolean;
  result: DoneEvent | ApiError | null;
}

function promptText(model: ServedModel, prompt: string | number[]): string {
  return typeof prompt === 'string' ? prompt : model.tokenizer.decode(prompt);
}

function usage(choices: Choice[], n: number) {
  let prompt = 0;
  let completion = 0;
  choices.forEach((c, i) => {
    if (c.result instanceof ApiError || !c.result) return;
    if (i % n === 0) prompt += c.result.usage.promptTokens; // each prompt counts once, whatever n
    completion += c.result.usage.completionTokens;
  });
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export function registerCompletions(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/v1/completions', async (req: FastifyRequest, reply: FastifyReply) => {
    const id = `cmpl-${randomUUID()}`;
    let model: ServedModel | undefined;
    let params: CompletionParams;
    let requests: EngineRequest[];
    try {
      model = routeModel(req.body, ctx.models);
      admit(model.generation, 1); // before parsing: refusing under load must stay cheap
      params = parseCompletion(req.body, model.id, ctx.config.maxN);
      requests = engineRequests(params, id, model.engine.input, model.generation.capacity);
      admit(model.generation, requests.length);
    } catch (err) {
      // (a request that names no served model is no model's refusal)
      model?.metrics.refused();
      throw err;
    }
    const created = Math.floor(Date.now() / 1000);
    const choices: Choice[] = requests.map((_, index) => ({ index, prompt: params.prompts[Math.floor(index / params.n)]!, text: '', echoed: false, result: null }));
    if (ctx.config.logPrompts) req.log.debug({ prompts: params.prompts }, 'completion prompts');
    return params.stream
      ? stream(ctx, model, req, reply, params, requests, choices, id, created)
      : whole(ctx, model, req, reply, params, requests, choices, id, created);
  });
}

async function whole(ctx: ServerContext, model: ServedModel, req: FastifyRequest, reply: FastifyReply, params: CompletionParams, requests: EngineRequest[],
  choices: Choice[], id: string, created: number) {
  const gens: Generation[] = requests.map((r, i) => startGeneration(model.generation, r, (e) => (choices[i]!.text += e.text)));
  const cancelAll = () => gens.forEach((g) => g.cancel());
  // The response's 'close' before it was written means the client went away.
  reply.raw.once('close', () => {
    if (!reply.raw.writableEnded && choices.some((c) => !c.result)) cancelAll();
  });
  await Promise.all(gens.map(async (g, i) => {
    const r = await g.finished;
    choices[i]!.result = r;
    if (r instanceof ApiError) cancelAll();
  }));
  const failed = choices.find((c) => c.result instanceof ApiError);
  if (failed) throw failed.result;
  const body = {
    id,
    object: 'text_completion',
    created,
    model: model.id,
    choices: choices.map((c) => {
      const r = c.result as DoneEvent;
      return { index: c.index, text: (params.echo ? promptText(model, c.prompt) : '') + c.text, finish_reason: r.finishReason, logprobs: null };
    }),
    usage: usage(choices, params.n),
  };
  logDone(ctx, model, req, id, choices, params);
  return body;
}

async function stream(ctx: ServerContext, model: ServedModel, req: FastifyRequest, reply: FastifyReply, params: CompletionParams,
  requests: EngineRequest[], choices: Choice[], id: string, created: number) {
  const base = { id, object: 'text_completion', created, model: model.id };
  const extra = params.includeUsage ? { usage: null } : {};
  // Every request was validated before this point: headers go out at once, and what fails later
  // (an engine failure, a timeout) is reported inside the stream.
  reply.hijack();
  reply.raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': String(req.id),
  });
  let closed = false;
  const send = (data: unknown) => {
    if (closed) return;
    reply.raw.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    // A client that stops reading: its output would pile up in memory. Drop it (the 'close'
    // handler then cancels its generations), as the WebSocket route does.
    if (reply.raw.writableLength > STREAM_DEFAULTS.maxBufferedBytes) {
      req.log.warn({ buffered: reply.raw.writableLength }, 'SSE client does not read its stream; disconnecting');
      reply.raw.destroy();
    }
  };
  const chunk = (c: Choice, text: string, finish: DoneEvent['finishReason'] | null, confidence?: ChunkEvent['confidence']) => {
    const prefix = params.echo && !c.echoed ? promptText(model, c.prompt) : '';
    c.echoed = true;
    // `confidence` is calm-serve's extension field (opt-in): OpenAI clients ignore unknown fields.
    send({ ...base, choices: [{ index: c.index, text: prefix + text, finish_reason: finish, logprobs: null, ...(confidence ? { confidence } : {}) }], ...extra });
  };
  const finishSent = choices.map(() => false);
  const gens: Generation[] = requests.map((r, i) =>
    startGeneration(model.generation, r, (e) => {
      const finish = e.finishReason ?? null;
      if (e.text.length > 0 || finish || e.confidence) chunk(choices[i]!, e.text, finish, e.confidence);
      if (finish) finishSent[i] = true;
    }),
  );
  const cancelAll = () => gens.forEach((g) => g.cancel());
  reply.raw.once('close', () => {
    if (reply.raw.writableEnded) return;
    closed = true;
    if (choices.some((c) => !c.result)) cancelAll();
  });
  await Promise.all(gens.map(async (g, i) => {
    const r = await g.finished;
    choices[i]!.result = r;
    if (r instanceof ApiError) {
      send({ error: r.body.error });
      cancelAll();
    } else if (!finishSent[i]) chunk(choices[i]!, '', r.finishReason); // cancelled: no last chunk was sent
  }));
  if (params.includeUsage) send({ ...base, choices: [], usage: usage(choices, params.n) });
  send('[DONE]');
  reply.raw.end();
  logDone(ctx, model, req, id, choices, params);
}

/** The completion's one log line, in place of the request's (every choice has its result by now). */
function logDone(ctx: ServerContext, model: ServedModel, req: FastifyRequest, id: string, choices: Choice[], params: CompletionParams): void {
  markLogged(req);
  logCompletion(req.log, {
    id,
    model: model.id,
    transport: params.stream ? 'sse' : 'http',
    results: choices.map((c) => c.result!),
    promptTokens: usage(choices, params.n).prompt_tokens,
    ...(ctx.config.logPrompts ? { texts: choices.map((c) => c.text) } : {}),
  });
}
