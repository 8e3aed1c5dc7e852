import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { request } from 'undici';
import { SERVER_DEFAULTS, type ServerConfig } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/server/start.js';

async function serve(overrides: Partial<ServerConfig> = {}): Promise<RunningServer> {
  return startServer({ ...SERVER_DEFAULTS, host: '127.0.0.1', port: 0, intraOpThreads: 1, logLevel: 'silent', ...overrides });
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, any> };
}

function assertOpenAIError(json: Record<string, any>, param?: string | null) {
  assert.equal(typeof json.error.message, 'string');
  assert.equal(typeof json.error.type, 'string');
  assert.ok('param' in json.error && 'code' in json.error);
  if (param !== undefined) assert.equal(json.error.param, param);
}

/** A sample of the served model (its `model` label comes first; `name` may carry the other labels). */
async function metric(url: string, name: string): Promise<number> {
  const text = await (await request(`${url}/metrics`)).body.text();
  const series = name.includes('{') ? name.replace('{', '{model="calm-k4",') : `${name}{model="calm-k4"}`;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return Number(line?.split(' ').at(-1));
}

async function until(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('OpenAI-compatible completions', () => {
  let server: RunningServer;
  let client: OpenAI;
  let model: string;
  before(async () => {
    server = await serve();
    model = server.ctx.served.id;
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(() => server.drain());

  test('the official client gets a completion with usage', async () => {
    const res = await client.completions.create({ model, prompt: 'In the beginning', max_tokens: 10, seed: 1 });
    assert.equal(res.object, 'text_completion');
    assert.equal(res.choices.length, 1);
    assert.ok(res.choices[0]!.text.length > 0);
    assert.equal(res.choices[0]!.finish_reason, 'length');
    assert.equal(res.choices[0]!.logprobs, null);
    assert.equal(res.usage?.completion_tokens, 10);
    assert.equal(res.usage?.total_tokens, res.usage!.prompt_tokens + 10);
  });

  test('a request without model uses the only served model (as vLLM does)', async () => {
    const res = await post(server.url, { prompt: 'In the beginning', max_tokens: 4, seed: 1 });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json().model, model);
    assert.equal(res.json().usage.completion_tokens, 4);
  });

  test('the same seed gives the same text; n choices differ', async () => {
    const a = await client.completions.create({ model, prompt: 'And God said', max_tokens: 12, seed: 5, n: 3 });
    const b = await client.completions.create({ model, prompt: 'And God said', max_tokens: 12, seed: 5, n: 3 });
    assert.deepEqual(a.choices.map((c) => c.text), b.choices.map((c) => c.text));
    assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
    assert.equal(new Set(a.choices.map((c) => c.text)).size, 3);
    assert.equal(a.usage?.completion_tokens, 36);
  });

  test('streaming with the official client: deltas, finish_reason, usage chunk', async () => {
    const stream = await client.completions.create({ model, prompt: 'The LORD', max_tokens: 12, seed: 2, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let first = true;
    for await (const chunk of stream) {
      if (chunk.choices.length > 0) {
        if (first) assert.ok(chunk.choices[0]!.text.length > 0, 'no empty event before the first text');
        first = false;
        text += chunk.choices[0]!.text;
        finish = chunk.choices[0]!.finish_reason ?? finish;
      } else usage = chunk.usage;
    }
    const whole = await client.completions.create({ model, prompt: 'The LORD', max_tokens: 12, seed: 2 });
    assert.equal(text, whole.choices[0]!.text);
    assert.equal(finish, 'length');
    assert.equal(usage?.completion_tokens, 12);
  });

  test('raw SSE framing ends with [DONE]', async () => {
    const res = await post(server.url, { model, prompt: 'x', max_tokens: 8, stream: true, seed: 1 });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /text\/event-stream/);
    const events = res.text.split('\n\n').filter(Boolean);
    assert.equal(events.at(-1), 'data: [DONE]');
    for (const e of events.slice(0, -1)) assert.equal(JSON.parse(e.slice(6)).object, 'text_completion');
  });

  test('prompts as an array of strings, token ids and arrays of token ids; echo', async () => {
    const many = await post(server.url, { model, prompt: ['a', 'b'], max_tokens: 4, seed: 1 });
    assert.equal(many.json().choices.length, 2);
    const ids = await post(server.url, { model, prompt: [300, 301, 302], max_tokens: 4, seed: 1 });
    assert.equal(ids.status, 200);
    const idLists = await post(server.url, { model, prompt: [[300, 301], [302]], max_tokens: 4, seed: 1 });
    assert.equal(idLists.json().choices.length, 2);
    const echo = await post(server.url, { model, prompt: 'Echo me', max_tokens: 4, echo: true, seed: 1 });
    assert.ok(echo.json().choices[0].text.startsWith('Echo me'));
  });

  test('GET /v1/models lists the model; chat completions explain why they are absent', async () => {
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), [model]);
    await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) =>
      err instanceof OpenAI.NotFoundError && /no chat template/.test(err.message));
  });

  describe('every class of bad input gets a 4xx in the OpenAI error shape', () => {
    const cases: [string, unknown, number, string | null][] = [
      ['temperature above 1', { temperature: 1.5 }, 400, 'temperature'],
      ['negative temperature', { temperature: -1 }, 400, 'temperature'],
      ['temperature of the wrong type', { temperature: 'hot' }, 400, 'temperature'],
      ['logprobs', { logprobs: 2 }, 400, 'logprobs'],
      ['top_p above 1', { top_p: 1.5 }, 400, 'top_p'],
      ['top_p of the wrong type', { top_p: '0.9' }, 400, 'top_p'],
      ['top_p with the exact sampler (no pool)', { top_p: 0.9, sampler: 'exact', temperature: 0.5 }, 400, 'top_p'],
      ['confidence without a stream', { confidence: true }, 400, 'confidence'],
      ['confidence of the wrong type', { confidence: 'yes', stream: true }, 400, 'confidence'],
      ['max_tokens zero', { max_tokens: 0 }, 400, 'max_tokens'],
      ['max_tokens not an integer', { max_tokens: 2.5 }, 400, 'max_tokens'],
      ['n too large', { n: 1000 }, 400, 'n'],
      ['too many stop strings', { stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'stop'],
      ['stop of the wrong type', { stop: 3 }, 400, 'stop'],
      ['prompt of the wrong type', { prompt: { text: 'x' } }, 400, 'prompt'],
      ['token id outside the vocabulary', { prompt: [1, 99999999] }, 400, 'prompt'],
      ['missing prompt', { prompt: undefined }, 400, 'prompt'],
      ['unknown model', { model: 'gpt-4' }, 404, null],
      ['unknown sampler', { sampler: 'nucleus' }, 400, 'sampler'],
      ['stream_options without stream', { stream_options: { include_usage: true } }, 400, 'stream_options'],
      ['max_tokens beyond any context', { max_tokens: 1e300 }, 400, 'max_tokens'],
      ['max_tokens infinite in spirit', { max_tokens: 1.7976931348623157e308 }, 400, 'max_tokens'],
      ['n written 1e2', { n: 1e2 }, 400, 'n'],
      ['n zero', { n: 0 }, 400, 'n'],
      ['seed beyond 64 bits', { seed: 1e300 }, 400, 'seed'],
      ['negative seed', { seed: -1 }, 400, 'seed'],
      ['seed not an integer', { seed: 0.5 }, 400, 'seed'],
      ['pool_size zero', { pool_size: 0 }, 400, 'pool_size'],
      ['pool_size above the server limit', { pool_size: 100_000 }, 400, 'pool_size'],
      ['pool_size not an integer', { pool_size: 1e-300 }, 400, 'pool_size'],
      ['top_p of 0', { top_p: 0 }, 400, 'top_p'],
      ['token id -1', { prompt: [5, -1] }, 400, 'prompt'],
      ['token id not an integer', { prompt: [5, 1e-300] }, 400, 'prompt'],
    ];
    for (const [name, patch, status, param] of cases) {
      test(name, async () => {
        const res = await post(server.url, { model, prompt: 'x', max_tokens: 4, ...(patch as object) });
        assert.equal(res.status, status, res.text);
        assertOpenAIError(res.json(), param);
      });
    }

    test('malformed JSON', async () => {
      const res = await post(server.url, '{"model": ');
      assert.equal(res.status, 400);
      assertOpenAIError(res.json());
      assert.equal(res.json().error.code, 'invalid_json');
    });

    test('a body that is not an object', async () => {
      const res = await post(server.url, '[1,2]');
      assert.equal(res.status, 400);
      assertOpenAIError(res.json());
    });

    test('a body over the size limit', async () => {
      const res = await post(server.url, { model, prompt: 'x'.repeat(2 << 20) });
      assert.equal(res.status, 413);
      assertOpenAIError(res.json());
    });

    test('edge values that mean something are served: T = -0 is greedy like 0, tiny T, integers written with exponents', async () => {
      // (JSON.stringify writes -0 as 0: the bodies are written by hand)
      const body = (t: string) => `{"model": "${model}", "prompt": "And God said", "max_tokens": 8, "seed": 1, "temperature": ${t}}`;
      const greedy = await post(server.url, body('0'));
      for (const t of ['-0', '-0.0', '1e-300', '5e-324']) {
        const res = await post(server.url, body(t));
        assert.equal(res.status, 200, res.text);
        assert.equal(res.json().choices[0].text, greedy.json().choices[0].text, `temperature ${t}`);
      }
      const exp = await post(server.url, `{"model": "${model}", "prompt": "x", "max_tokens": 1e1, "n": 2e0, "seed": 7e0, "ignore_eos": true}`);
      assert.equal(exp.status, 200, exp.text);
      assert.equal(exp.json().choices.length, 2);
      assert.equal(exp.json().usage.completion_tokens, 20);
    });

    test('a request that could never be admitted is a 400 naming the limit, not a 429', async () => {
      const res = await post(server.url, { model, prompt: Array.from({ length: 10_000 }, () => 'hi'), max_tokens: 2 });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json().error.code, 'limit_exceeded');
      assert.match(res.json().error.message, /10000 generations .* at most \d+ at once/);
      assert.equal(res.headers['retry-after'], undefined);
    });

    test('a 1 MB prompt is refused from its size, before any tokenization', async () => {
      const res = await post(server.url, { model, prompt: 'a'.repeat(1_000_000) });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json().error.code, 'context_length_exceeded');
      // "at least": the bound from the byte count, which is checked before the tokenizer runs
      assert.match(res.json().error.message, /the prompt \(1000000 bytes\) has at least \d+ tokens/);
    });

    test('a prompt longer than the context gives both numbers', async () => {
      const res = await post(server.url, { model, prompt: 'word '.repeat(9000), max_tokens: 16 });
      assert.equal(res.status, 400);
      assert.match(res.json().error.message, /context is \d+ tokens; the prompt has \d+ tokens and max_tokens is 16/);
      const streamed = await post(server.url, { model, prompt: 'word '.repeat(9000), max_tokens: 16, stream: true });
      assert.equal(streamed.status, 400, 'refused before the stream starts');
    });

    test('unknown routes', async () => {
      const res = await request(`${server.url}/v1/nothing`);
      assert.equal(res.statusCode, 404);
      assertOpenAIError((await res.body.json()) as Record<string, any>);
    });

    test('errors through the official client keep status and param', async () => {
      await assert.rejects(client.completions.create({ model, prompt: 'x', temperature: 1.5 }), (err: unknown) =>
        err instanceof OpenAI.BadRequestError && err.status === 400 && (err.error as { param?: string }).param === 'temperature');
    });
  });

  test('a client that disconnects mid-stream frees its engine row (seen in /metrics)', async () => {
    const controller = new AbortController();
    const res = await request(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: 'Long', max_tokens: 4000, stream: true, ignore_eos: true }), // long enough to abort
      signal: controller.signal,
    });
    const reader = res.body[Symbol.asyncIterator]();
    await reader.next(); // the stream is running
    await until(async () => (await metric(server.url, 'calm_requests_running')) === 1);
    controller.abort();
    await until(async () => (await metric(server.url, 'calm_requests_running')) === 0);
    await until(async () => (await metric(server.url, 'calm_kv_cache_blocks{state="used"}')) === 0);
    await until(async () => server.ctx.admission.inflight === 0);
  });

  test('health, readiness and metrics', async () => {
    assert.equal((await request(`${server.url}/health`)).statusCode, 200);
    assert.equal((await request(`${server.url}/ready`)).statusCode, 200);
    assert.equal((await request(`${server.url}/metrics`)).statusCode, 200);
  });
});

describe('admission and authentication', () => {
  test('an overfull queue gets 429 with Retry-After before any work', async () => {
    const server = await serve({ maxRunning: 1, maxWaiting: 1, drainGraceMs: 0 });
    try {
      const model = server.ctx.served.id;
      const long = { model, prompt: 'x', max_tokens: 2000, ignore_eos: true };
      const first = post(server.url, long);
      const second = post(server.url, long);
      await until(async () => server.ctx.admission.inflight === 2);
      const third = await post(server.url, long);
      assert.equal(third.status, 429);
      assert.ok(Number(third.headers['retry-after']) >= 1);
      assert.equal(third.json().error.type, 'rate_limit_exceeded');
      await server.drain(); // grace 0: the two running requests are cancelled and answered
      const answers = [await first, await second];
      assert.deepEqual(answers.map((a) => a.status), [200, 200]);
      assert.deepEqual(answers.map((a) => a.json().choices[0].finish_reason), ['cancelled', 'cancelled']);
    } finally {
      await server.drain();
    }
  });

  test('API keys: 401 in the OpenAI shape; health and metrics stay open', async () => {
    const server = await serve({ apiKeys: ['k1', 'k2'] });
    try {
      const model = server.ctx.served.id;
      const none = await post(server.url, { model, prompt: 'x', max_tokens: 2 });
      assert.equal(none.status, 401);
      assert.equal(none.json().error.type, 'authentication_error');
      assert.equal((await post(server.url, { model, prompt: 'x', max_tokens: 2 }, { authorization: 'Bearer k3' })).status, 401);
      assert.equal((await post(server.url, { model, prompt: 'x', max_tokens: 2 }, { authorization: 'Bearer k2' })).status, 200);
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'k1', maxRetries: 0 });
      assert.equal((await client.completions.create({ model, prompt: 'x', max_tokens: 2 })).choices.length, 1);
      await assert.rejects(new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'bad', maxRetries: 0 }).models.list(), OpenAI.AuthenticationError);
      for (const path of ['/health', '/ready', '/metrics']) assert.equal((await request(`${server.url}${path}`)).statusCode, 200, path);
    } finally {
      await server.drain();
    }
  });
});

test('SIGTERM: readiness off, new requests 503, running ones finish, exit 0', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--port', '0', '--host', '127.0.0.1', '--threads', '1'], {
    env: { ...process.env, CALM_DRAIN_GRACE_MS: '120000', CALM_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /listening on (http:\/\/[^"\s]+)/.exec(log);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`server exited early with ${code}: ${log}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const model = JSON.parse((await (await request(`${url}/v1/models`)).body.text())).data[0].id as string;
  // Long enough to be still running while readiness and refusal are checked.
  const running = post(url, { model, prompt: 'Drain me', max_tokens: 1200, ignore_eos: true });
  await new Promise((r) => setTimeout(r, 300));
  child.kill('SIGTERM');
  await until(async () => (await request(`${url}/ready`)).statusCode === 503);
  const refused = await post(url, { model, prompt: 'late', max_tokens: 2 });
  assert.equal(refused.status, 503);
  assert.equal(refused.json().error.code, 'draining');
  const done = await running;
  assert.equal(done.status, 200);
  // It ran to its own end, not cut by the drain.
  const body = done.json();
  assert.equal(body.choices[0].finish_reason, 'length');
  assert.equal(body.usage.completion_tokens, 1200);
  assert.equal(await exited, 0);
});

describe('liveness, timeouts and CORS', () => {
  test('/health fails while the engine loop is stuck in a long step, and recovers', async () => {
    // A step budget of 10,000 samples lets one request's pool of 10,000 take a whole step.
    const server = await serve({ healthStallMs: 250, maxPoolSize: 10_000, maxStepDraws: 10_000 });
    try {
      const model = server.ctx.served.id;
      // A pool of 10,000 samples makes each step take seconds on a CPU: the loop shows no progress meanwhile.
      const slow = post(server.url, { model, prompt: 'x', max_tokens: 8, temperature: 0.5, pool_size: 10_000 });
      await until(async () => (await request(`${server.url}/health`)).statusCode === 503, 30_000);
      assert.equal((await slow).status, 200);
      await until(async () => (await request(`${server.url}/health`)).statusCode === 200);
    } finally {
      await server.drain();
    }
  });

  test('a generation past the request timeout is cancelled with a 504 in the OpenAI shape', async () => {
    // 2 ms is less than any engine step, so the timeout fires whatever the model writes (it may emit EOS early).
    const server = await serve({ requestTimeoutMs: 2 });
    try {
      const res = await post(server.url, { model: server.ctx.served.id, prompt: 'x', max_tokens: 5000 });
      assert.equal(res.status, 504);
      assert.equal(res.json().error.code, 'timeout');
      await until(async () => server.ctx.served.engine.stats.running === 0 && server.ctx.served.engine.stats.blocksUsed === 0);
      assert.equal(await metric(server.url, 'calm_requests_finished_total{reason="timeout"}'), 1);
    } finally {
      await server.drain();
    }
  });

  test('CORS is off by default and answers preflights for configured origins', async () => {
    const off = await serve();
    const on = await serve({ corsOrigins: ['https://app.example'] });
    try {
      const preflight = (url: string) => request(`${url}/v1/completions`, {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' },
      });
      assert.equal((await preflight(off.url)).headers['access-control-allow-origin'], undefined);
      const res = await preflight(on.url);
      assert.equal(res.headers['access-control-allow-origin'], 'https://app.example');
    } finally {
      await off.drain();
      await on.drain();
    }
  });
});
