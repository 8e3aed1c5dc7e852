// The streamed request client against a scripted SSE server (no model): event parsing, timing,
// usage, and every way a request can fail. Also the command line's option parsing.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { completionBody, firstModel, SseParser, streamCompletion, toRecord } from '../../src/bench/client.js';
import { parseBenchArgs, parseGoodput } from '../../src/commands/bench.js';
import { UsageError } from '../../src/commands/io.js';

describe('SSE parsing', () => {
  test('events split anywhere, CRLF or LF, multi-line data, comments', () => {
    const p = new SseParser();
    assert.deepEqual(p.push('data: {"a"'), []);
    assert.deepEqual(p.push(':1}\n'), []);
    assert.deepEqual(p.push('\ndata: x\r'), ['{"a":1}']);
    assert.deepEqual(p.push('\n\r\n: a comment\n\ndata:y\ndata: z\n\n'), ['x', 'y\nz']);
    assert.deepEqual(p.push('data: [DONE]'), []);
    assert.deepEqual(p.end(), ['[DONE]']);
  });
});

type Script = (req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>) => Promise<void>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const event = (choices: unknown[], usage: unknown = null) => `data: ${JSON.stringify({ object: 'text_completion', choices, usage })}\n\n`;
const content = (text: string, finish: string | null = null) => event([{ index: 0, text, finish_reason: finish }]);

describe('streamCompletion against a scripted server', () => {
  let server: Server;
  let base: string;
  let script: Script;
  const seen: { headers: IncomingMessage['headers']; body: Record<string, unknown> }[] = [];

  before(async () => {
    server = createServer(async (req, res) => {
      let raw = '';
      for await (const c of req) raw += c;
      if (req.url === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'm1' }, { id: 'm2' }] }));
        return;
      }
      const body = JSON.parse(raw) as Record<string, unknown>;
      seen.push({ headers: req.headers, body });
      await script(req, res, body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('times content events, takes tokens from the usage chunk, sends the benchmark body', async () => {
    script = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      await sleep(60);
      res.write(content(' one two'));
      await sleep(40);
      // an event split across writes and one with empty text still count once each
      const e = content(' three');
      res.write(e.slice(0, 10));
      await sleep(5);
      res.write(e.slice(10));
      await sleep(40);
      res.write(content('', 'length'));
      res.write(event([], { prompt_tokens: 7, completion_tokens: 12, total_tokens: 19 }));
      res.end('data: [DONE]\n\n');
    };
    const r = await streamCompletion({ baseUrl: base, apiKey: 'k', model: 'm1', prompt: 'hello', maxTokens: 12, extraBody: { temperature: 0.5 }, keepText: true });
    assert.equal(r.error, null);
    assert.equal(r.success, true);
    assert.equal(r.contentEventMs.length, 3);
    assert.equal(r.outputTokens, 12);
    assert.equal(r.promptTokens, 7);
    assert.equal(r.usageReported, true);
    assert.equal(r.text, ' one two three');
    const rec = toRecord(0, r, r.sendMs);
    assert.ok(rec.ttftMs! >= 55, `ttft ${rec.ttftMs}`);
    assert.ok(rec.itlMs[0]! >= 30, `itl ${rec.itlMs}`);
    assert.ok(rec.e2elMs! >= rec.ttftMs! + 70);
    assert.equal(rec.tpotMs, (rec.e2elMs! - rec.ttftMs!) / 11);
    assert.equal(rec.startMs, 0);
    const last = seen.at(-1)!;
    assert.equal(last.headers.authorization, 'Bearer k');
    assert.deepEqual(last.body, { model: 'm1', prompt: 'hello', max_tokens: 12, stream: true, stream_options: { include_usage: true }, temperature: 0.5 });
    assert.equal('stop' in last.body, false);
  });

  test('an HTTP error fails the request with the OpenAI error message', async () => {
    script = async (_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'the queue is full', type: 'rate_limit_exceeded' } }));
    };
    const r = await streamCompletion({ baseUrl: base, model: 'm1', prompt: 'x', maxTokens: 4 });
    assert.equal(r.success, false);
    assert.equal(r.error, 'HTTP 429: the queue is full');
    assert.equal(toRecord(0, r, 0).ttftMs, null);
  });

  test('an error event, a stream without [DONE], a stream without content, a dead server', async () => {
    script = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(content('a'));
      res.end(`data: ${JSON.stringify({ error: { message: 'engine failed' } })}\n\ndata: [DONE]\n\n`);
    };
    assert.match((await streamCompletion({ baseUrl: base, model: 'm1', prompt: 'x', maxTokens: 4 })).error!, /engine failed/);
    script = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(content('a'));
    };
    assert.match((await streamCompletion({ baseUrl: base, model: 'm1', prompt: 'x', maxTokens: 4 })).error!, /without data: \[DONE\]/);
    script = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(event([], { prompt_tokens: 1, completion_tokens: 0, total_tokens: 1 }) + 'data: [DONE]\n\n');
    };
    assert.match((await streamCompletion({ baseUrl: base, model: 'm1', prompt: 'x', maxTokens: 4 })).error!, /TTFT undefined/);
    const dead = await streamCompletion({ baseUrl: 'http://127.0.0.1:1', model: 'm1', prompt: 'x', maxTokens: 4 });
    assert.equal(dead.success, false);
    assert.ok(dead.error && dead.error.length > 0);
  });

  test('without a usage chunk output tokens are the content events', async () => {
    script = async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(content('a') + content('b') + 'data: [DONE]\n\n');
    };
    const r = await streamCompletion({ baseUrl: base, model: 'm1', prompt: 'x', maxTokens: 4 });
    assert.equal(r.success, true);
    assert.equal(r.usageReported, false);
    assert.equal(r.outputTokens, 2);
  });

  test('the model defaults to the first of GET /v1/models', async () => {
    assert.equal(await firstModel(base), 'm1');
    await assert.rejects(firstModel('http://127.0.0.1:1'), /cannot reach/);
  });

  test('completionBody lets extra fields override', () => {
    assert.equal(completionBody({ model: 'm', prompt: 'p', maxTokens: 3, extraBody: { ignore_eos: true } }).ignore_eos, true);
  });
});

describe('calm bench options', () => {
  test('defaults, lists, vLLM-style goodput, inf', () => {
    const o = parseBenchArgs(['--base-url', 'http://h:1/v1/', '--max-concurrency', '1,4,16', '--goodput', 'ttft:500', 'tpot:50', '--seed', '3',
      '--temperature', '0.5', '--extra-body', '{"ignore_eos":true}', '--no-progress'], {})!;
    assert.equal(o.baseUrl, 'http://h:1');
    assert.deepEqual(o.maxConcurrencies, [1, 4, 16]);
    assert.deepEqual(o.requestRates, [Infinity]);
    assert.deepEqual(o.goodput, { ttft: 500, tpot: 50 });
    assert.deepEqual(o.extraBody, { ignore_eos: true, temperature: 0.5 });
    assert.equal(o.seed, 3);
    assert.equal(o.progress, false);
    assert.equal(o.dataset, 'synthetic');
    assert.equal(o.apiKey, undefined);
    const r = parseBenchArgs(['--request-rate', '1,2.5,inf', '--goodput', 'e2el:900,ttft:100', '--percentiles', '50,95'], { OPENAI_API_KEY: 'sk' })!;
    assert.deepEqual(r.requestRates, [1, 2.5, Infinity]);
    assert.deepEqual(r.goodput, { e2el: 900, ttft: 100 });
    assert.deepEqual(r.percentiles, [50, 95]);
    assert.equal(r.apiKey, 'sk');
    assert.equal(parseBenchArgs(['--help']), null);
  });

  test('bad options are refused with a reason', () => {
    const bad: [string[], RegExp][] = [
      [['--max-concurrency', '1,4', '--request-rate', '1,2'], /sweep either/],
      [['--num-prompts', '0'], /num-prompts/],
      [['--goodput', 'ttfb:5'], /goodput/],
      [['--request-rate', '-1'], /request-rate/],
      [['stray'], /unexpected argument/],
      [['--nope'], /nope/],
      [['--extra-body', '[1]'], /extra-body/],
      [['--base-url', 'localhost:8000'], /base-url/],
    ];
    for (const [argv, re] of bad) assert.throws(() => parseBenchArgs(argv, {}), (e: unknown) => e instanceof UsageError && re.test(e.message), argv.join(' '));
    assert.throws(() => parseGoodput(['ttft:-1']), UsageError);
  });
});
