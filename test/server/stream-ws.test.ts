// GET /v1/stream against a real engine: streaming, concurrency on one socket, cancellation,
// disconnects, bad messages, keep-alive and authentication before the upgrade.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { registerAuth } from '../../src/server/auth.js';
import type { ChunkMessage, DoneMessage, ErrorMessage, ServerMessage } from '../../src/server/stream-ws.js';
import { registerStreamRoute, STREAM_PATH } from '../../src/server/stream-ws.js';
import { startTestServer, type TestServer, waitFor } from './support.js';

const KEY = 'test-key';
const PING_MS = 250;

class Client {
  readonly messages: ServerMessage[] = [];
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as ServerMessage);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static open(url: string, options: WebSocket.ClientOptions = {}): Promise<Client> {
    const ws = new WebSocket(`${url}${STREAM_PATH}`, { headers: { authorization: `Bearer ${KEY}` }, ...options });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Client(ws)));
      ws.once('error', reject);
    });
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** Resolves with the first message (received or to come) that matches. */
  async wait<T extends ServerMessage>(match: (m: ServerMessage) => m is T, timeoutMs = 20_000, what = 'a message'): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found) return found;
      if (this.closed) throw new Error(`socket closed while waiting for ${what}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages.slice(-5))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** The `done` or `error` that ends choice `index` of `id`. */
  end(id: string, index = 0): Promise<DoneMessage | ErrorMessage> {
    return this.wait((m): m is DoneMessage | ErrorMessage => (m.type === 'done' || m.type === 'error') && m.id === id && (m.index ?? 0) === index, 20_000, `the end of ${id}`);
  }

  done(id: string, index = 0): Promise<DoneMessage> {
    return this.end(id, index).then((m) => {
      assert.equal(m.type, 'done', `expected done for ${id}, got ${JSON.stringify(m)}`);
      return m as DoneMessage;
    });
  }

  error(id: string | null, code: string): Promise<ErrorMessage> {
    return this.wait((m): m is ErrorMessage => m.type === 'error' && m.id === id && m.error.code === code, 10_000, `error ${code} for ${id}`);
  }

  chunks(id: string, index = 0): ChunkMessage[] {
    return this.messages.filter((m): m is ChunkMessage => m.type === 'chunk' && m.id === id && m.index === index);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => {
      this.ws.once('close', () => r());
      this.ws.close();
    });
  }
}

describe('websocket stream', () => {
  let server: TestServer;
  let model: string;
  const clients: Client[] = [];
  const open = async (options?: WebSocket.ClientOptions) => {
    const c = await Client.open(server.wsUrl, options);
    clients.push(c);
    return c;
  };
  const gen = (id: string, extra: Record<string, unknown> = {}) => ({
    type: 'generate',
    id,
    model,
    prompt: 'In the beginning God created',
    max_tokens: 16,
    temperature: 1,
    seed: 3,
    ...extra,
  });

  before(async () => {
    server = await startTestServer({
      routes: async (app, ctx) => {
        registerAuth(app, [KEY]);
        await registerStreamRoute(app, ctx, { pingIntervalMs: PING_MS });
      },
    });
    model = server.ctx.served.id;
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.close();
  });

  test('generate streams K-token chunks, then done with usage', async () => {
    const c = await open();
    c.send(gen('g1'));
    const done = await c.done('g1');
    const chunks = c.chunks('g1');
    const withIds = chunks.filter((m) => m.token_ids.length > 0);
    assert.ok(withIds.length >= 1);
    withIds.slice(0, -1).forEach((m) => assert.equal(m.token_ids.length, 4));
    assert.ok(withIds.at(-1)!.token_ids.length <= 4);
    assert.ok(chunks.every((m) => m.text.length > 0 || m.token_ids.length > 0), 'no empty chunks');
    assert.ok(chunks.map((m) => m.text).join('').length > 0, 'some text');
    assert.ok(done.finish_reason === 'length' || done.finish_reason === 'stop');
    const ids = withIds.reduce((n, m) => n + m.token_ids.length, 0);
    assert.equal(done.usage.completion_tokens, ids);
    if (done.finish_reason === 'length') assert.equal(ids, 16);
    assert.ok(done.usage.prompt_tokens > 0);
    assert.equal(done.usage.total_tokens, done.usage.prompt_tokens + done.usage.completion_tokens);
    assert.equal(done.seed, 3);
    assert.equal(c.messages.at(-1), done, 'done is the last message of the generation');
  });

  test('two concurrent generations on one socket both complete with their own ids', async () => {
    const c = await open();
    c.send(gen('a', { seed: 1 }));
    c.send(gen('b', { seed: 2, max_tokens: 12 }));
    const [a, b] = await Promise.all([c.done('a'), c.done('b')]);
    assert.equal(a.id, 'a');
    assert.equal(b.id, 'b');
    assert.ok(c.chunks('a').length > 0 && c.chunks('b').length > 0);
    assert.ok(c.messages.every((m) => m.id === 'a' || m.id === 'b'));
    assert.ok(b.usage.completion_tokens <= 12);
  });

  test('n=2 streams both choices with their index', async () => {
    const c = await open();
    c.send(gen('multi', { n: 2, max_tokens: 8 }));
    const [d0, d1] = await Promise.all([c.done('multi', 0), c.done('multi', 1)]);
    assert.equal(d0.index, 0);
    assert.equal(d1.index, 1);
    assert.ok(c.chunks('multi', 0).length > 0 && c.chunks('multi', 1).length > 0);
  });

  test('cancel stops one generation while the other completes', async () => {
    const c = await open();
    c.send(gen('long', { max_tokens: 2000, ignore_eos: true }));
    c.send(gen('short', { max_tokens: 16 }));
    await c.wait((m): m is ChunkMessage => m.type === 'chunk' && m.id === 'long', 20_000, 'a chunk of long');
    c.send({ type: 'cancel', id: 'long' });
    const [long, short] = await Promise.all([c.done('long'), c.done('short')]);
    assert.equal(long.finish_reason, 'cancelled');
    assert.ok(long.usage.completion_tokens < 2000);
    assert.notEqual(short.finish_reason, 'cancelled');
    // a cancel for an id that is not running is ignored
    c.send({ type: 'cancel', id: 'long' });
    c.send({ type: 'ping', id: 'after' });
    await c.wait((m): m is ServerMessage => m.type === 'pong' && m.id === 'after');
    assert.equal(c.messages.filter((m) => m.type === 'error').length, 0);
  });

  test('closing the socket cancels its generations and frees the engine', async () => {
    const c = await open();
    c.send(gen('x1', { max_tokens: 2000, ignore_eos: true }));
    c.send(gen('x2', { max_tokens: 2000, ignore_eos: true }));
    await c.wait((m): m is ChunkMessage => m.type === 'chunk' && m.id === 'x1', 20_000, 'a chunk of x1');
    assert.ok(server.ctx.admission.inflight >= 1);
    await c.close();
    assert.ok(await waitFor(() => server.ctx.admission.inflight === 0, 3000), 'generations finished after the close');
    assert.ok(await waitFor(() => server.engine.stats.running === 0 && server.engine.stats.waiting === 0, 3000), `engine idle: ${JSON.stringify(server.engine.stats)}`);
  });

  test('bad messages get errors and disturb neither the socket nor its other generations', async () => {
    const c = await open();
    c.send(gen('ok1', { max_tokens: 24 }));
    c.send('{not json');
    const badJson = await c.error(null, 'invalid_json');
    assert.equal(badJson.error.type, 'invalid_request_error');
    c.send({ type: 'nope', id: 'u1' });
    const unknown = await c.error('u1', 'unknown_message_type');
    assert.equal(unknown.error.param, 'type');
    c.send([1, 2]);
    await c.error(null, 'invalid_type');
    c.send({ type: 'generate', model, prompt: 'x' });
    const noId = await c.error(null, 'missing_required_parameter');
    assert.equal(noId.error.param, 'id');
    c.send(gen('hot', { temperature: 1.5 }));
    const hot = await c.error('hot', 'invalid_value');
    assert.equal(hot.error.param, 'temperature');
    assert.equal(hot.index, undefined);
    c.send(gen('wrong-model', { model: 'gpt-4' }));
    const wrong = await c.error('wrong-model', 'model_not_found');
    assert.equal(wrong.error.type, 'not_found_error');
    c.send(gen('lp', { logprobs: 1 }));
    assert.equal((await c.error('lp', 'unsupported_parameter')).error.param, 'logprobs');
    const ok1 = await c.done('ok1');
    assert.notEqual(ok1.finish_reason, 'cancelled');
    assert.equal(c.closed, false);
    // still usable
    c.send(gen('ok2', { max_tokens: 8 }));
    await c.done('ok2');
  });

  test('a duplicate id of a running generation is an error; the original goes on', async () => {
    const c = await open();
    c.send(gen('dup', { max_tokens: 24 }));
    c.send(gen('dup', { max_tokens: 8 }));
    const err = await c.error('dup', 'duplicate_id');
    assert.equal(err.error.param, 'id');
    const done = await c.wait((m): m is DoneMessage => m.type === 'done' && m.id === 'dup', 20_000, 'done of dup');
    assert.notEqual(done.finish_reason, 'cancelled');
    assert.equal(c.messages.filter((m) => m.type === 'done').length, 1);
    // once finished, the id may be used again
    c.send(gen('dup', { max_tokens: 8 }));
    await c.wait((m): m is DoneMessage => m.type === 'done' && m.id === 'dup' && m !== done, 20_000, 'the second dup');
  });

  test('admission: over capacity and draining are error messages', async () => {
    const c = await open();
    const { admission } = server.ctx;
    const { generation } = server.ctx.served;
    // More generations than the server can ever hold: the request's fault, not a reason to retry.
    c.send(gen('big', { prompt: Array.from({ length: generation.capacity + 1 }, () => 'hi') }));
    const never = await c.error('big', 'limit_exceeded');
    assert.equal(never.error.type, 'invalid_request_error');
    assert.equal(never.retry_after, undefined);
    // A full queue right now: 429, retry later.
    generation.load.inflight += generation.capacity;
    try {
      c.send(gen('full'));
      const full = await c.error('full', 'queue_full');
      assert.equal(full.error.type, 'rate_limit_exceeded');
      assert.equal(full.retry_after, 1);
    } finally {
      generation.load.inflight -= generation.capacity;
    }
    admission.draining = true;
    try {
      c.send(gen('late'));
      await c.error('late', 'draining');
    } finally {
      admission.draining = false;
    }
  });

  test('keep-alive: a client that answers pings stays, one that does not is dropped', async () => {
    const good = await open();
    const mute = await open({ autoPong: false });
    await new Promise((r) => setTimeout(r, PING_MS * 4));
    assert.equal(good.closed, false);
    assert.ok(await waitFor(() => mute.closed, PING_MS * 4), 'the mute client was terminated');
  });

  test('authentication runs before the upgrade, and a refused upgrade leaves no connection behind', async () => {
    const connections = () => new Promise<number>((r) => server.app.server.getConnections((_e, n) => r(n)));
    const before = await connections();
    await assert.rejects(Client.open(server.wsUrl, { headers: {} }), /401/);
    await assert.rejects(Client.open(server.wsUrl, { headers: { authorization: 'Bearer wrong' } }), /401/);
    // (a lingering socket would also make app.close() wait forever)
    let now = await connections();
    for (let i = 0; i < 50 && now > before; i++) {
      await new Promise((r) => setTimeout(r, 20));
      now = await connections();
    }
    assert.equal(now, before);
  });
});
