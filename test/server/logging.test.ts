// The logs of a real `calm serve` process at debug level: one line per request, probes and
// scrapes at debug only, one info line per completion at its end, client mistakes at info
// without a stack (an oversized or non-UTF-8 WebSocket frame, a 503 during shutdown), secrets
// in URLs redacted, and a warning when the server listens beyond loopback without API keys.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import WebSocket from 'ws';
import { spawnServer } from './support.js';

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  [key: string]: unknown;
}

const DEBUG = 20;
const INFO = 30;
const WARN = 40;

async function post(url: string, body: unknown, requestId: string) {
  const res = await request(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': requestId },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, text: await res.body.text() };
}

/** Opens a socket, runs `act` once open, and resolves with the close code. */
function socket(wsUrl: string, act: (ws: WebSocket) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsUrl}/v1/stream`);
    ws.once('open', () => act(ws));
    ws.once('error', reject);
    ws.once('close', (code) => resolve(code));
  });
}

test('a server listening beyond loopback without keys warns, and logs one line per request at the right level', async () => {
  const server = await spawnServer(['src/cli.ts', 'serve', '--host', '0.0.0.0', '--port', '0', '--threads', '1', '--log-level', 'debug']);
  const { url } = server;
  const wsUrl = url.replace('http', 'ws');
  const model = 'calm-k4';

  for (let i = 0; i < 5; i++) for (const path of ['/health', '/ready', '/metrics']) assert.equal((await request(`${url}${path}`)).statusCode, 200);
  assert.equal((await request(`${url}/v1/models?api_key=sekret-123&limit=2`)).statusCode, 200);
  assert.equal((await post(url, { model, prompt: 'And God said', max_tokens: 8, seed: 1 }, 'log-whole')).status, 200);
  assert.equal((await post(url, { model, prompt: 'And God said', max_tokens: 8, seed: 1, stream: true }, 'log-sse')).status, 200);
  assert.equal((await post(url, { model, prompt: 'x', temperature: 7 }, 'log-bad')).status, 400);
  assert.equal(await socket(wsUrl, (ws) => ws.send('x'.repeat(2 << 20))), 1009);
  assert.equal(await socket(wsUrl, (ws) => ws.send(Buffer.from([0x22, 0xff, 0xfe, 0x22]), { binary: false })), 1007);
  await socket(wsUrl, (ws) => {
    ws.send(JSON.stringify({ type: 'generate', id: 'g', model, prompt: 'x', max_tokens: 8 }));
    ws.on('message', (m) => JSON.parse(String(m)).type === 'done' && ws.close());
  });
  // A request refused while draining (503): the shutdown's, not a server error.
  const running = post(url, { model, prompt: 'x', max_tokens: 2000, ignore_eos: true }, 'log-running');
  await new Promise((r) => setTimeout(r, 300));
  server.child.kill('SIGTERM');
  while ((await request(`${url}/ready`)).statusCode !== 503) await new Promise((r) => setTimeout(r, 20));
  const late = await post(url, { model, prompt: 'x', max_tokens: 2 }, 'log-late');
  assert.equal(late.status, 503, late.text);
  assert.equal((await running).status, 200);
  assert.equal((await server.exited).code, 0);

  const text = server.log();
  const lines = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
  const byRequest = (id: string) => lines.filter((l) => l.reqId === id);

  // The warning, once, at start.
  const warnings = lines.filter((l) => l.level === WARN && /no API keys/.test(l.msg));
  assert.equal(warnings.length, 1, text);
  assert.match(warnings[0]!.msg, /anyone who can reach 0\.0\.0\.0:0 can use the model. Set --api-keys/);

  // Probes and scrapes: 15 lines, every one at debug.
  const probes = lines.filter((l) => typeof l.url === 'string' && /^\/(health|ready|metrics)$/.test(l.url) && l.status === 200);
  assert.ok(probes.length >= 15, `${probes.length} probe lines`);
  assert.ok(probes.every((l) => l.level === DEBUG));
  const notReady = lines.filter((l) => l.url === '/ready' && l.status === 503);
  assert.ok(notReady.length >= 1 && notReady.every((l) => l.level === DEBUG), 'readiness off during the drain: debug');

  // A completion: its one line, at info, with what an operator needs.
  for (const [id, transport] of [['log-whole', 'http'], ['log-sse', 'sse']] as const) {
    const own = byRequest(id);
    assert.equal(own.length, 1, JSON.stringify(own));
    const c = own[0]!.completion as Record<string, unknown>;
    assert.equal(own[0]!.level, INFO);
    assert.equal(own[0]!.msg, 'completion finished');
    assert.match(String(c.id), /^cmpl-/);
    assert.equal(c.model, model);
    assert.equal(c.transport, transport);
    assert.equal(c.completion_tokens, 8);
    assert.deepEqual(c.finish, ['length']);
    assert.equal(typeof c.total_ms, 'number');
    assert.equal(typeof c.queue_ms, 'number');
  }
  const ws = lines.filter((l) => (l.completion as { transport?: string } | undefined)?.transport === 'websocket');
  assert.equal(ws.length, 1);

  // Client mistakes: info, one line, no stack.
  const bad = byRequest('log-bad');
  assert.equal(bad.length, 1);
  assert.equal(bad[0]!.level, INFO);
  assert.equal(bad[0]!.status, 400);
  assert.equal(bad[0]!.code, 'invalid_value');
  const frames = lines.filter((l) => typeof l.code === 'string' && l.code.startsWith('WS_ERR_'));
  assert.deepEqual(frames.map((l) => [l.level, l.code]), [[INFO, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'], [INFO, 'WS_ERR_INVALID_UTF8']]);
  const draining = byRequest('log-late');
  assert.equal(draining.length, 1);
  assert.deepEqual([draining[0]!.level, draining[0]!.status, draining[0]!.code], [INFO, 503, 'draining']);
  assert.deepEqual(lines.filter((l) => l.level >= 50), [], 'nothing logged as a server error');
  assert.doesNotMatch(text, /"stack"|\n\s+at /, 'no stack trace');
  assert.doesNotMatch(text, /FSTDEP|DeprecationWarning/);

  // The key in the URL is redacted, the rest of the query kept.
  assert.doesNotMatch(text, /sekret-123/);
  assert.ok(lines.some((l) => l.url === '/v1/models?api_key=[redacted]&limit=2'));
});
