// The protocol edges, tried as a hostile client would, on the real server: whatever Node's
// parser, fastify's router or the WebSocket handshake refuse is answered in OpenAI's error shape;
// the whole request read is bounded (slow headers and trickling bodies get 408) while a long
// response is not; request bodies follow one rule (UTF-8 JSON, uncompressed, 415 otherwise).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { gzipSync, deflateSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import WebSocket from 'ws';
import { SERVER_DEFAULTS } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/server/start.js';

const READ_TIMEOUT_MS = 1000;

/** Exactly OpenAI's shape: {"error": {"message", "type", "param", "code"}}, nothing else. */
function assertErrorShape(body: string, code: string): void {
  const json = JSON.parse(body) as { error: Record<string, unknown> };
  assert.deepEqual(Object.keys(json), ['error'], body);
  assert.deepEqual(Object.keys(json.error).sort(), ['code', 'message', 'param', 'type'], body);
  assert.equal(typeof json.error.message, 'string');
  assert.equal(json.error.type, 'invalid_request_error');
  assert.equal(json.error.code, code, body);
}

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** ms from the first byte sent to the socket's close */
  ms: number;
}

/** Sends `first` on a raw socket, then `drip` every `everyMs` until the server answers and closes. */
function raw(url: string, first: string, drip?: { text: string; everyMs: number }): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const started = Date.now();
    let data = '';
    socket.write(first);
    const timer = drip ? setInterval(() => socket.writable && socket.write(drip.text), drip.everyMs) : undefined;
    socket.on('data', (d) => (data += d.toString()));
    socket.on('error', () => {}); // the server closes while the drip writes: the answer is what counts
    socket.on('close', () => {
      clearInterval(timer);
      const [head = '', ...rest] = data.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
      if (!m) return reject(new Error(`no HTTP answer: ${JSON.stringify(data)}`));
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      resolve({ status: Number(m[1]), headers, body: rest.join('\r\n\r\n'), ms: Date.now() - started });
    });
  });
}

describe('protocol edges', () => {
  let server: RunningServer;
  let model: string;
  const body = () => JSON.stringify({ model, prompt: 'x', max_tokens: 4, seed: 1 });
  const post = async (headers: Record<string, string>, payload: string | Buffer = body()) => {
    const res = await request(`${server.url}/v1/completions`, { method: 'POST', headers, body: payload });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };

  before(async () => {
    server = await startServer({ ...SERVER_DEFAULTS, host: '127.0.0.1', port: 0, intraOpThreads: 1, logLevel: 'silent', readTimeoutMs: READ_TIMEOUT_MS });
    model = server.ctx.served.id;
  });
  after(() => server.drain());

  test('a URL with bad percent-encoding: 400', async () => {
    const res = await request(`${server.url}/v1/%ZZ`);
    assert.equal(res.statusCode, 400);
    assertErrorShape(await res.body.text(), 'invalid_url');
  });

  test('Content-Length together with Transfer-Encoding: 400 (request smuggling)', async () => {
    const res = await raw(server.url, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.equal(res.status, 400);
    assertErrorShape(res.body, 'malformed_request');
    assert.match(res.body, /Content-Length/);
  });

  test('a request that is not HTTP: 400', async () => {
    const res = await raw(server.url, 'HELLO THERE\r\n\r\n');
    assert.equal(res.status, 400);
    assertErrorShape(res.body, 'malformed_request');
  });

  test('20 KB of headers: 431', async () => {
    const res = await raw(server.url, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.equal(res.status, 431);
    assertErrorShape(res.body, 'headers_too_large');
  });

  test('headers that never end: 408 within the read timeout', async () => {
    const res = await raw(server.url, 'GET /health HTTP/1.1\r\nHost: x\r\n', { text: 'X-Slow: 1\r\n', everyMs: 100 });
    assert.equal(res.status, 408);
    assertErrorShape(res.body, 'request_timeout');
    assert.ok(res.ms >= READ_TIMEOUT_MS - 50 && res.ms < READ_TIMEOUT_MS + 1500, `answered after ${res.ms} ms`);
  });

  test('a body that trickles in: 408 within the read timeout, the whole request bounded', async () => {
    const head = 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"model": ';
    const res = await raw(server.url, head, { text: ' ', everyMs: 100 });
    assert.equal(res.status, 408);
    assertErrorShape(res.body, 'request_timeout');
    assert.ok(res.ms < READ_TIMEOUT_MS + 1500, `answered after ${res.ms} ms`);
  });

  test('a response may take longer than the read timeout: only reading the request is bounded', async () => {
    const started = Date.now();
    const res = await post({ 'content-type': 'application/json' }, JSON.stringify({ model, prompt: 'x', max_tokens: 1200, ignore_eos: true, stream: true }));
    assert.equal(res.status, 200);
    assert.ok(Date.now() - started > READ_TIMEOUT_MS, 'the generation outlasted the read timeout (else this proves nothing)');
    assert.ok(res.text.endsWith('data: [DONE]\n\n'));
  });

  test('a plain GET on the WebSocket route: 426 with Upgrade: websocket', async () => {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await request(`${server.url}/v1/stream`, { method });
      assert.equal(res.statusCode, 426, method);
      assert.equal(res.headers.upgrade, 'websocket');
      const text = await res.body.text();
      if (method === 'GET') assertErrorShape(text, 'websocket_upgrade_required');
    }
  });

  test('a WebSocket handshake with a bad version or key: 400 in the error shape, not text/html', async () => {
    const handshake = (version: string, key: string) =>
      `GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: ${version}\r\nSec-WebSocket-Key: ${key}\r\n\r\n`;
    const version = await raw(server.url, handshake('99', 'dGhlIHNhbXBsZSBub25jZQ=='));
    assert.equal(version.status, 400);
    assert.match(version.headers['content-type']!, /^application\/json/);
    assert.equal(version.headers['sec-websocket-version'], '13, 8');
    assertErrorShape(version.body, 'invalid_websocket_handshake');
    const key = await raw(server.url, handshake('13', 'short'));
    assert.equal(key.status, 400);
    assertErrorShape(key.body, 'invalid_websocket_handshake');
  });

  test('a WebSocket upgrade on another route: 400, only /v1/stream upgrades', async () => {
    const res = await raw(server.url, 'GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    assert.equal(res.status, 400);
    assertErrorShape(res.body, 'websocket_not_supported');
  });

  test('a WebSocket stays open past the read timeout (it bounds the handshake, not the socket)', async () => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/v1/stream`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    await new Promise((r) => setTimeout(r, READ_TIMEOUT_MS + 1200));
    const done = new Promise<Record<string, unknown>>((resolve) => ws.on('message', (m) => {
      const msg = JSON.parse(String(m)) as Record<string, unknown>;
      if (msg.type === 'done') resolve(msg);
    }));
    ws.send(JSON.stringify({ type: 'generate', id: 'late', model, prompt: 'x', max_tokens: 4, ignore_eos: true }));
    assert.equal((await done).finish_reason, 'length');
    ws.close();
  });

  describe('one rule for request bodies: UTF-8 JSON, uncompressed', () => {
    const cases: [string, Record<string, string>, number, string | null][] = [
      ['application/json', { 'content-type': 'application/json' }, 200, null],
      ['charset=utf-8', { 'content-type': 'application/json; charset=utf-8' }, 200, null],
      ['charset="UTF-8" (quoted, upper case)', { 'content-type': 'application/json; charset="UTF-8"' }, 200, null],
      ['Content-Encoding: identity', { 'content-type': 'application/json', 'content-encoding': 'identity' }, 200, null],
      ['text/plain', { 'content-type': 'text/plain' }, 415, 'unsupported_media_type'],
      ['form-urlencoded', { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type'],
      ['no Content-Type', {}, 415, 'unsupported_media_type'],
      ['charset=utf-16', { 'content-type': 'application/json; charset=utf-16' }, 415, 'unsupported_charset'],
      ['charset=iso-8859-1', { 'content-type': 'application/json; charset=iso-8859-1' }, 415, 'unsupported_charset'],
    ];
    for (const [name, headers, status, code] of cases) {
      test(name, async () => {
        const res = await post(headers);
        assert.equal(res.status, status, res.text);
        if (code) assertErrorShape(res.text, code);
        else assert.equal(JSON.parse(res.text).object, 'text_completion');
      });
    }

    test('gzip and deflate bodies: 415 with Accept-Encoding: identity', async () => {
      for (const [encoding, payload] of [['gzip', gzipSync(body())], ['deflate', deflateSync(body())]] as const) {
        const res = await post({ 'content-type': 'application/json', 'content-encoding': encoding }, payload);
        assert.equal(res.status, 415, encoding);
        assert.equal(res.headers['accept-encoding'], 'identity');
        assertErrorShape(res.text, 'unsupported_content_encoding');
      }
    });

    test('a UTF-16 body sent as UTF-8 JSON, and bytes that are not UTF-8: 400', async () => {
      const utf16 = await post({ 'content-type': 'application/json' }, Buffer.from(body(), 'utf16le'));
      assert.equal(utf16.status, 400);
      assertErrorShape(utf16.text, 'invalid_json');
      const latin1 = await post({ 'content-type': 'application/json' }, Buffer.from(`{"model": "${model}", "prompt": "caf\u00e9", "max_tokens": 4}`, 'latin1'));
      assert.equal(latin1.status, 400);
      assertErrorShape(latin1.text, 'invalid_json');
    });

    test('UTF-8 text survives the decoding', async () => {
      const res = await post({ 'content-type': 'application/json' }, JSON.stringify({ model, prompt: 'Caf\u00e9 \u{1F600}', max_tokens: 4, echo: true }));
      assert.equal(res.status, 200, res.text);
      assert.ok(JSON.parse(res.text).choices[0].text.startsWith('Caf\u00e9 \u{1F600}'));
    });
  });
});
