// Several models in one server: the two shipped bundles (CALM and the token baseline), each on
// its own engine thread. /v1/models lists both, the `model` field routes HTTP, SSE and WebSocket
// requests, a missing or unknown model is a 404 naming the served ids, and every series of
// /metrics carries its model label.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import WebSocket from 'ws';
import { SERVER_DEFAULTS } from '../../src/config.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
import { type RunningServer, startServer } from '../../src/server/start.js';

const CALM = 'calm-k4';
const AR = 'ar-baseline';

/** Small KV pools: these tests hold a few short sequences per model. */
const config = { ...SERVER_DEFAULTS, host: '127.0.0.1', port: 0, intraOpThreads: 1, logLevel: 'silent', kvCacheBytes: 16 << 20 };

async function post(url: string, body: unknown) {
  const res = await request(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: () => JSON.parse(text) as Record<string, any> };
}

/** The value of one series in a /metrics exposition (labels as written, model first), or undefined. */
function sample(body: string, series: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The messages of one WebSocket generation, up to its done (or error). */
async function wsGenerate(url: string, msg: Record<string, unknown>): Promise<Record<string, any>[]> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/stream`);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const messages: Record<string, any>[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no done: ${JSON.stringify(messages)}`)), 30_000);
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as Record<string, any>;
      messages.push(m);
      if (m.type === 'done' || m.type === 'error') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  ws.send(JSON.stringify({ type: 'generate', id: 'g', ...msg }));
  await ended;
  ws.close();
  return messages;
}

describe('two models in one server', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ...config, modelDirs: [DEFAULT_MODEL_DIR, DEFAULT_AR_MODEL_DIR] });
  });
  after(() => server?.drain());

  test('/v1/models lists both, in --model order; /ready and /health consider both', async () => {
    const list = (await (await request(`${server.url}/v1/models`)).body.json()) as { data: { id: string; kind: string; context_tokens: number }[] };
    assert.deepEqual(list.data.map((m) => [m.id, m.kind]), [[CALM, 'calm'], [AR, 'ar']]);
    for (const m of list.data) assert.ok(m.context_tokens > 0);
    assert.equal((await request(`${server.url}/v1/models/${AR}`)).statusCode, 200);
    const ready = await request(`${server.url}/ready`);
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(((await ready.body.json()) as { models: string[] }).models, [CALM, AR]);
    assert.equal((await request(`${server.url}/health`)).statusCode, 200);
  });

  test('the model field routes a completion, whole and streamed', async () => {
    for (const model of [CALM, AR]) {
      const res = await post(server.url, { model, prompt: 'And God said', max_tokens: 8, seed: 1, ignore_eos: true });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json().model, model);
      assert.equal(res.json().usage.completion_tokens, 8);
    }
    const sse = await post(server.url, { model: AR, prompt: 'And God said', max_tokens: 4, seed: 1, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
    assert.equal(sse.status, 200, sse.text);
    const events = sse.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as Record<string, any>);
    assert.ok(events.length >= 2);
    for (const e of events) assert.equal(e.model, AR);
    assert.equal(events.at(-1)!.usage.completion_tokens, 4);
  });

  test('a missing or unknown model is a 404 in OpenAI\'s shape naming the served ids', async () => {
    for (const body of [{ prompt: 'x', max_tokens: 4 }, { model: 'gpt-4', prompt: 'x', max_tokens: 4 }]) {
      const res = await post(server.url, body);
      assert.equal(res.status, 404, res.text);
      const { error } = res.json();
      assert.equal(error.code, 'model_not_found');
      assert.equal(error.type, 'not_found_error');
      assert.ok(error.message.includes(`"${CALM}"`) && error.message.includes(`"${AR}"`), error.message);
    }
    const missing = await wsGenerate(server.url, { prompt: 'x', max_tokens: 4 });
    assert.equal(missing.at(-1)!.error.code, 'model_not_found');
  });

  test('a WebSocket generate routes too: CALM streams K-token chunks, the baseline single tokens', async () => {
    for (const [model, perChunk] of [[CALM, 4], [AR, 1]] as const) {
      const messages = await wsGenerate(server.url, { model, prompt: 'In the beginning', max_tokens: 8, seed: 2, ignore_eos: true });
      const done = messages.at(-1)!;
      assert.equal(done.type, 'done', JSON.stringify(done));
      assert.equal(done.usage.completion_tokens, 8);
      const chunks = messages.filter((m) => m.type === 'chunk' && m.token_ids.length > 0);
      assert.equal(Math.max(...chunks.map((c) => c.token_ids.length as number)), perChunk, `${model}: ${JSON.stringify(chunks)}`);
    }
  });

  test('/metrics has both models\' series under the existing names', async () => {
    const body = await (await request(`${server.url}/metrics`)).body.text();
    for (const model of [CALM, AR]) {
      assert.match(body, new RegExp(`^calm_model_info\\{model="${model}",kind="${model === CALM ? 'calm' : 'ar'}",`, 'm'));
      assert.ok(sample(body, `calm_generation_tokens_total{model="${model}"}`)! >= 8, `${model} generated`);
      assert.ok(sample(body, `calm_requests_finished_total{model="${model}",reason="length"}`)! >= 2);
      assert.equal(sample(body, `calm_requests_running{model="${model}"}`), 0);
      assert.ok(sample(body, `calm_kv_cache_blocks{model="${model}",state="total"}`)! > 0);
      assert.equal(sample(body, `calm_engine_alive{model="${model}"}`), 1);
      assert.ok(sample(body, `calm_step_duration_seconds_count{model="${model}",stage="backbone"}`)! >= 1);
    }
    // Each engine's steps are its own: only CALM runs a decoder.
    assert.ok(sample(body, `calm_step_duration_seconds_count{model="${CALM}",stage="decoder"}`)! >= 1);
    assert.equal(sample(body, `calm_step_duration_seconds_count{model="${AR}",stage="decoder"}`), undefined);
    assert.equal(sample(body, 'calm_server_draining'), 0);
  });
});

test('one bundle served twice needs distinct ids (--model-name)', async () => {
  const twice = { ...config, modelDirs: [DEFAULT_AR_MODEL_DIR, DEFAULT_AR_MODEL_DIR] };
  await assert.rejects(startServer(twice), /two bundles would both be served as "ar-baseline".*--model-name/);
  const server = await startServer({ ...twice, modelNames: ['ar-a', 'ar-b'] });
  try {
    const res = await post(server.url, { model: 'ar-b', prompt: 'x', max_tokens: 2 });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json().model, 'ar-b');
  } finally {
    await server.drain();
  }
});
