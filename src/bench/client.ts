// One streamed completion against an OpenAI-compatible server, timed the way vLLM `bench serve`
// times it: the clock starts just before the request is sent; every server-sent event with a
// non-empty `choices` array is a content event (its text may be empty) stamped when it is
// parsed; the usage chunk (`stream_options.include_usage`) gives the token counts.
import { type Dispatcher, request } from 'undici';
import { requestLatencies, type RequestRecord } from './report.js';

/** Splits a server-sent event stream into the `data` payloads of its events. */
export class SseParser {
  private buffer = '';
  private data: string[] = [];

  /** Feeds decoded text; returns the data of every event completed by it. */
  push(text: string): string[] {
    this.buffer += text;
    const out: string[] = [];
    let nl: number;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      const crlf = this.buffer.startsWith('\r\n', nl);
      // a lone '\r' at the very end may be the first half of '\r\n': wait for more
      if (!crlf && this.buffer[nl] === '\r' && nl === this.buffer.length - 1) break;
      this.buffer = this.buffer.slice(nl + (crlf ? 2 : 1));
      if (line === '') {
        if (this.data.length > 0) out.push(this.data.join('\n'));
        this.data = [];
      } else if (line.startsWith('data:')) {
        this.data.push(line.slice(line[5] === ' ' ? 6 : 5));
      } // comments (':'), event:, id:, retry: are not used by OpenAI streams
    }
    return out;
  }

  /** The data of an event left unterminated at the end of the stream, if any. */
  end(): string[] {
    const out = this.push('\n\n');
    this.buffer = '';
    return out;
  }
}

export interface CompletionRequest {
  /** server root, e.g. http://localhost:8000 */
  baseUrl: string;
  /** default /v1/completions */
  endpoint?: string;
  apiKey?: string;
  model: string;
  prompt: string;
  maxTokens: number;
  /** merged into the JSON body last (temperature, ignore_eos, seed, ...) */
  extraBody?: Record<string, unknown>;
  dispatcher?: Dispatcher;
  /** headers and body timeouts, ms */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** clock (ms) shared with the caller; performance.now by default */
  now?: () => number;
  /** keep the generated text in the result */
  keepText?: boolean;
}

export interface CompletionResult {
  success: boolean;
  error: string | null;
  sendMs: number;
  contentEventMs: number[];
  promptTokens: number;
  /** usage.completion_tokens; the number of content events when the server sent no usage */
  outputTokens: number;
  usageReported: boolean;
  text: string;
}

/** The JSON body: a streamed completion of a fixed length (max_tokens, no stop strings), usage included. */
export function completionBody(r: Pick<CompletionRequest, 'model' | 'prompt' | 'maxTokens' | 'extraBody'>): Record<string, unknown> {
  return {
    model: r.model,
    prompt: r.prompt,
    max_tokens: r.maxTokens,
    stream: true,
    stream_options: { include_usage: true },
    ...r.extraBody,
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}

/** Sends one streamed completion and stamps its events. Never throws: failures come back with success false. */
export async function streamCompletion(r: CompletionRequest): Promise<CompletionResult> {
  const now = r.now ?? (() => performance.now());
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
  if (r.apiKey) headers.authorization = `Bearer ${r.apiKey}`;
  const body = JSON.stringify(completionBody(r));
  const result: CompletionResult = {
    success: false, error: null, sendMs: 0, contentEventMs: [], promptTokens: 0, outputTokens: 0, usageReported: false, text: '',
  };
  const timeout = r.timeoutMs ?? 600_000;
  result.sendMs = now();
  try {
    const res = await request(`${r.baseUrl}${r.endpoint ?? '/v1/completions'}`, {
      method: 'POST', headers, body, headersTimeout: timeout, bodyTimeout: timeout,
      ...(r.dispatcher ? { dispatcher: r.dispatcher } : {}), ...(r.signal ? { signal: r.signal } : {}),
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      let message = text.slice(0, 500);
      try {
        const e = (JSON.parse(text) as { error?: { message?: string } }).error;
        if (e?.message) message = e.message;
      } catch {
        // not JSON: keep the text
      }
      result.error = `HTTP ${res.statusCode}: ${message}`;
      return result;
    }
    const parser = new SseParser();
    const decoder = new TextDecoder();
    let done = false;
    const handle = (data: string, at: number) => {
      if (data === '[DONE]') {
        done = true;
        return;
      }
      let event: { choices?: { text?: string }[]; usage?: { prompt_tokens?: number; completion_tokens?: number } | null; error?: { message?: string } };
      try {
        event = JSON.parse(data);
      } catch {
        result.error ??= `invalid JSON in the stream: ${data.slice(0, 200)}`;
        return;
      }
      if (event.error) {
        result.error ??= `error in the stream: ${event.error.message ?? JSON.stringify(event.error)}`;
        return;
      }
      if (Array.isArray(event.choices) && event.choices.length > 0) {
        result.contentEventMs.push(at);
        if (r.keepText) result.text += event.choices[0]?.text ?? '';
      }
      if (event.usage) {
        result.usageReported = true;
        result.promptTokens = event.usage.prompt_tokens ?? 0;
        result.outputTokens = event.usage.completion_tokens ?? 0;
      }
    };
    for await (const chunk of res.body) {
      const text = decoder.decode(chunk as Buffer, { stream: true });
      for (const data of parser.push(text)) handle(data, now());
    }
    for (const data of parser.push(decoder.decode())) handle(data, now());
    for (const data of parser.end()) handle(data, now());
    if (!result.usageReported) result.outputTokens = result.contentEventMs.length;
    if (result.error) return result;
    if (result.contentEventMs.length === 0) {
      result.error = 'no event with non-empty choices arrived (TTFT undefined)';
      return result;
    }
    if (!done) {
      result.error = 'the stream ended without data: [DONE]';
      return result;
    }
    result.success = true;
    return result;
  } catch (err) {
    result.error = describe(err);
    return result;
  }
}

/** The benchmark's record of one request: its result with the latencies worked out. */
export function toRecord(index: number, res: CompletionResult, runStartMs: number): RequestRecord {
  const lat = res.success ? requestLatencies({ sendMs: res.sendMs, contentEventMs: res.contentEventMs, outputTokens: res.outputTokens }) : null;
  return {
    index,
    success: res.success && lat !== null,
    error: res.error,
    startMs: res.sendMs - runStartMs,
    promptTokens: res.promptTokens,
    outputTokens: res.outputTokens,
    usageReported: res.usageReported,
    contentEvents: res.contentEventMs.length,
    ttftMs: lat?.ttftMs ?? null,
    tpotMs: lat?.tpotMs ?? null,
    e2elMs: lat?.e2elMs ?? null,
    itlMs: lat?.itlMs ?? [],
  };
}

/** GET /v1/models: the id of the first model listed. */
export async function firstModel(baseUrl: string, apiKey?: string, dispatcher?: Dispatcher): Promise<string> {
  const headers: Record<string, string> = {};
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  let res;
  try {
    res = await request(`${baseUrl}/v1/models`, { headers, ...(dispatcher ? { dispatcher } : {}) });
  } catch (err) {
    throw new Error(`cannot reach ${baseUrl}/v1/models: ${describe(err)}`);
  }
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET ${baseUrl}/v1/models answered ${res.statusCode}: ${text.slice(0, 300)}`);
  const id = (JSON.parse(text) as { data?: { id?: string }[] }).data?.[0]?.id;
  if (typeof id !== 'string') throw new Error(`GET ${baseUrl}/v1/models listed no model; pass --model`);
  return id;
}
