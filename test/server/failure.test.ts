// The server's failure domain, on real server processes: an engine thread that dies, an engine
// that wedges during a drain, and a port that cannot be bound.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
import { spawnServer } from './support.js';

const POISON = 4000;

async function post(url: string, body: unknown) {
  const res = await request(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.body.text();
  return { status: res.statusCode, json: () => JSON.parse(text) as Record<string, any> };
}

test('a dead engine thread fails every pending request at once (503), and the process exits 1', async () => {
  const server = await spawnServer(['test/support/serve-with-faults.ts', JSON.stringify({ port: 0, faults: { crashOnToken: POISON } })]);
  const model = 'calm-k4';
  const running = post(server.url, { model, prompt: 'A long one', max_tokens: 4000, ignore_eos: true });
  await new Promise((r) => setTimeout(r, 300));
  const crash = post(server.url, { model, prompt: [POISON, POISON, POISON, POISON], max_tokens: 8 });
  const [a, b] = await Promise.all([running, crash]);
  for (const r of [a, b]) {
    assert.equal(r.status, 503);
    assert.equal(r.json().error.code, 'engine_unavailable');
  }
  const { code } = await server.exited;
  assert.equal(code, 1, server.log());
  assert.match(server.log(), /the engine thread died/);
});

test('SIGTERM with a wedged engine: every client gets its answer and the process exits within the grace', async () => {
  const grace = 3000;
  const server = await spawnServer(['test/support/serve-with-faults.ts', JSON.stringify({ port: 0, drainGraceMs: grace, faults: { wedgeOnToken: POISON } })]);
  const model = 'calm-k4';
  const stuck = post(server.url, { model, prompt: [POISON, 5, 6, 7], max_tokens: 8 });
  await new Promise((r) => setTimeout(r, 500));
  const sent = Date.now();
  server.child.kill('SIGTERM');
  const r = await stuck;
  assert.equal(r.status, 503);
  assert.equal(r.json().error.code, 'draining');
  const { code, at } = await server.exited;
  assert.ok(at - sent <= grace + 500, `exited ${at - sent} ms after SIGTERM (grace ${grace} ms)`);
  assert.equal(code, 0);
});

test('a port that cannot be bound exits 1 at once with the reason', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--host', '127.0.0.1', '--port', String(port), '--threads', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 1);
    assert.match(err, /calm serve: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    assert.ok(Date.now() - started < 20_000);
  } finally {
    blocker.close();
  }
});

test('a bundle whose tokenizer cannot be read: exit 1 with a message naming the bundle', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'calm-bad-tokenizer-'));
  try {
    for (const f of readdirSync(DEFAULT_MODEL_DIR)) if (f !== 'tokenizer.json') symlinkSync(join(DEFAULT_MODEL_DIR, f), join(dir, f));
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0", "model": {');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--host', '127.0.0.1', '--port', '0', '--model', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 1);
    assert.ok(err.startsWith(`calm serve: cannot load the model bundle ${dir}: `), err);
    assert.match(err, /cannot load the tokenizer [^ ]*tokenizer\.json: /);
    const inspect = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'inspect', dir], { encoding: 'utf8' });
    assert.equal(inspect.status, 1, 'calm inspect fails on the same bundle');
    assert.match(inspect.stderr, /cannot load the tokenizer [^ ]*tokenizer\.json: /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM with no grace: running requests are cancelled and answered, and the process exits 0', async () => {
  const server = await spawnServer(['test/support/serve-with-faults.ts', JSON.stringify({ port: 0, drainGraceMs: 0 })]);
  const running = post(server.url, { model: 'calm-k4', prompt: 'A long one', max_tokens: 4000, ignore_eos: true });
  await new Promise((r) => setTimeout(r, 500));
  server.child.kill('SIGTERM');
  const r = await running;
  assert.equal(r.status, 200);
  assert.equal(r.json().choices[0].finish_reason, 'cancelled');
  const { code } = await server.exited;
  assert.equal(code, 0, server.log());
  assert.doesNotMatch(server.log(), /no API keys/, 'no warning on loopback');
});
