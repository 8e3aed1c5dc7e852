// ignore_eos counts (README, "The HTTP API"): every token the model writes counts, PAD and EOS
// included (they stay out of the text), so every choice gets exactly max_tokens tokens, even one
// that fills the whole context (`n: 16, max_tokens: 8188` once returned 130,844 of 131,008
// tokens, when PAD and EOS were dropped uncounted).
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

  test('max_tokens filling the context: exactly max_tokens tokens, PAD and EOS counted but not in the text', async () => {
    const contextTokens = server.ctx.served.engine.info.contextTokens;
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
    // Seed 3 writes 7 PAD/EOS tokens in its 2,048 chunks (measured), which used to go uncounted.
    ws.send(JSON.stringify({ type: 'generate', id: 'full', model, prompt: 'x', max_tokens: maxTokens, ignore_eos: true, seed: 3 }));
    const end = await done;
    ws.close();
    const chunks = messages.filter((m): m is ChunkMessage => m.type === 'chunk');
    const ids = chunks.flatMap((c) => c.token_ids);
    assert.equal(end.finish_reason, 'length');
    assert.equal(ids.length, maxTokens, 'exactly max_tokens tokens');
    assert.equal(end.usage.completion_tokens, maxTokens);
    const special = ids.filter((t) => t <= 2).length; // PAD 0, BOS 1, EOS 2
    assert.ok(special > 0, 'this seed writes PAD or EOS (the case that used to come up short)');
    assert.ok(!chunks.some((c) => /<pad>|<\/s>/.test(c.text)), 'special tokens stay out of the text');
  });
});
