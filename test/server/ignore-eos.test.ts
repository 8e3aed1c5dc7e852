// ignore_eos counts (README, "The HTTP API"): the server reports exactly the tokens it sent, and
// `max_tokens` of them unless the context ran out first. Tokens count as they reach the text, so
// an EOS or PAD the model writes is dropped uncounted; a request whose max_tokens fills the
// context can then reach the context's end a few tokens short (the 130,844 of 131,008 tokens of
// `n: 16, max_tokens: 8188`). This pins that down: every missing token is one the chunks
// dropped, and only a request that used the whole context misses any.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import WebSocket from 'ws';
import { SERVER_DEFAULTS } from '../../src/config.js';
import type { ChunkMessage, DoneMessage, ServerMessage } from '../../src/server/stream-ws.js';
import { type RunningServer, startServer } from '../../src/server/start.js';

const K = 4;

describe('ignore_eos', () => {
  let server: RunningServer;
  let model: string;
  before(async () => {
    server = await startServer({ ...SERVER_DEFAULTS, host: '127.0.0.1', port: 0, intraOpThreads: 1, logLevel: 'silent' });
    model = server.ctx.served.id;
  });
  after(() => server.drain());

  test('with room in the context, every choice gets exactly max_tokens', async () => {
    const res = await request(`${server.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: 'x', max_tokens: 256, n: 4, ignore_eos: true, seed: 3 }),
    });
    const body = (await res.body.json()) as { usage: { completion_tokens: number }; choices: { finish_reason: string }[] };
    assert.equal(body.usage.completion_tokens, 4 * 256);
    assert.deepEqual(body.choices.map((c) => c.finish_reason), ['length', 'length', 'length', 'length']);
  });

  test('max_tokens filling the context: the count is what was sent, short only by dropped tokens at the context end', async () => {
    const contextTokens = server.ctx.engine.info.contextTokens;
    const maxTokens = contextTokens - K; // the prompt (BOS + "x") takes one chunk
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/v1/stream`);
    const messages: ServerMessage[] = [];
    const done = new Promise<DoneMessage>((resolve, reject) => {
      ws.on('message', (data) => {
        const msg = JSON.parse(String(data)) as ServerMessage;
        messages.push(msg);
        if (msg.type === 'done') resolve(msg);
        if (msg.type === 'error') reject(new Error(JSON.stringify(msg)));
      });
      ws.once('error', reject);
    });
    await new Promise((resolve) => ws.once('open', resolve));
    // Seed 3 writes 7 PAD/EOS tokens in its 2,048 chunks (measured): 3 more than the 4 the context spares.
    ws.send(JSON.stringify({ type: 'generate', id: 'full', model, prompt: 'x', max_tokens: maxTokens, ignore_eos: true, seed: 3 }));
    const end = await done;
    ws.close();
    const chunks = messages.filter((m): m is ChunkMessage => m.type === 'chunk');
    const sent = chunks.reduce((n, c) => n + c.token_ids.length, 0);
    assert.equal(end.finish_reason, 'length');
    assert.equal(end.usage.completion_tokens, sent, 'usage counts exactly the tokens sent');
    const short = maxTokens - sent;
    if (short > 0) {
      // Every chunk is a decode step; the context ran out: one chunk per position the prompt left, plus the last one sampled.
      assert.equal(chunks.length, contextTokens / K, 'short of max_tokens only when the context is used up');
      const dropped = chunks.length * K - sent;
      assert.equal(dropped - short, contextTokens - maxTokens, 'each missing token is one the chunks dropped, less the room the context had');
    }
  });
});
