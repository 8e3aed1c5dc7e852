// top_p and confidence through the API (docs/sampling.md "What the pool can tell"): SSE chunks
// and WebSocket chunk messages carry the opt-in `confidence` field; logprobs' refusal names it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { SERVER_DEFAULTS } from '../../src/config.js';
import type { ServerMessage } from '../../src/server/stream-ws.js';
import { type RunningServer, startServer } from '../../src/server/start.js';

describe('what the pool can tell, through the API', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ...SERVER_DEFAULTS, host: '127.0.0.1', port: 0, intraOpThreads: 1, logLevel: 'silent' });
  });
  after(() => server.drain());

  test('SSE: with confidence, every chunk carries its pool frequency; top_p is served', async () => {
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'And God said', max_tokens: 12, stream: true, confidence: true, top_p: 0.9, pool_size: 32, seed: 1, ignore_eos: true }),
    });
    assert.equal(res.status, 200);
    const events = (await res.text()).split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)) as { choices: { confidence?: { frequency: number; stderr: number; pool: number } }[] });
    const conf = events.map((e) => e.choices[0]?.confidence).filter((c) => c !== undefined);
    assert.equal(conf.length, 3, 'one per chunk of 4 tokens');
    for (const c of conf) {
      assert.equal(c.pool, 32);
      assert.ok(c.frequency > 0 && c.frequency <= 1 && Number.isInteger(c.frequency * 32), JSON.stringify(c));
      assert.ok(Math.abs(c.stderr - Math.sqrt((c.frequency * (1 - c.frequency)) / 32)) < 1e-9);
    }
  });

  test('WebSocket: chunk messages carry confidence when asked, and only then', async () => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/v1/stream`);
    await new Promise((resolve) => ws.once('open', resolve));
    const got = new Map<string, ServerMessage[]>();
    const done = new Promise<void>((resolve) => {
      let finished = 0;
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as ServerMessage;
        if (!('id' in m)) return;
        got.set(m.id, [...(got.get(m.id) ?? []), m]);
        if (m.type === 'done' || m.type === 'error') if (++finished === 2) resolve();
      });
    });
    ws.send(JSON.stringify({ type: 'generate', id: 'with', prompt: 'x', max_tokens: 8, confidence: true, pool_size: 16, seed: 2 }));
    ws.send(JSON.stringify({ type: 'generate', id: 'without', prompt: 'x', max_tokens: 8, seed: 2 }));
    await done;
    ws.close();
    const chunks = (id: string) => (got.get(id) ?? []).filter((m) => m.type === 'chunk') as { confidence?: { pool: number } }[];
    assert.ok(chunks('with').length > 0 && chunks('with').every((c) => c.confidence?.pool === 16));
    assert.ok(chunks('without').length > 0 && chunks('without').every((c) => c.confidence === undefined));
  });

  test("logprobs' refusal names the field that exists instead", async () => {
    const res = await fetch(`${server.url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', max_tokens: 4, logprobs: 1 }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { message: string; param: string } };
    assert.equal(body.error.param, 'logprobs');
    assert.match(body.error.message, /confidence: true/);
  });
});
