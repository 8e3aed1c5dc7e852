// Shared helpers of the k6 scripts (k6/completions.js, k6/stream-ws.js, k6/mixed.js):
// environment variables, the model id (GET /v1/models when MODEL is not set), the
// Authorization header, request bodies, SSE parsing and one WebSocket session.
// Plain ES2015+ without optional chaining or `??`, so any k6 release runs it.
import { check } from 'k6';
import http from 'k6/http';
import ws from 'k6/ws';

/** The environment variable, or the fallback when it is unset or empty. */
export function env(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

export function envNumber(name, fallback) {
  const raw = env(name, undefined);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!isFinite(n) || n < 0) throw new Error(name + ' must be a non-negative number, got ' + JSON.stringify(raw));
  return n;
}

export function envInt(name, fallback) {
  const n = envNumber(name, fallback);
  if (Math.floor(n) !== n) throw new Error(name + ' must be an integer, got ' + n);
  return n;
}

/**
 * A constant-arrival-rate executor's `rate` and `timeUnit` for a rate in requests per second:
 * k6 wants a whole number of iterations per time unit, so 0.5/s becomes 5 per 10s.
 */
export function arrivalRate(perSecond) {
  if (!(perSecond > 0)) throw new Error('the request rate must be positive, got ' + perSecond);
  const units = [1, 10, 60, 100, 1000];
  for (let i = 0; i < units.length; i++) {
    const n = perSecond * units[i];
    if (Math.abs(n - Math.round(n)) < 1e-9) return { rate: Math.round(n), timeUnit: units[i] + 's' };
  }
  return { rate: Math.max(1, Math.round(perSecond * 1000)), timeUnit: '1000s' };
}

/** Server root, without a trailing slash or /v1. */
export const BASE_URL = env('BASE_URL', 'http://localhost:8000').replace(/\/+$/, '').replace(/\/v1$/, '');
/** ws://... or wss://... for the same server. */
export const WS_URL = BASE_URL.replace(/^http/, 'ws');
export const COMPLETIONS_PATH = '/v1/completions';
export const STREAM_PATH = '/v1/stream';
export const MODELS_PATH = '/v1/models';

/** Headers with `Authorization: Bearer API_KEY` when API_KEY is set. */
export function authHeaders(extra) {
  const h = {};
  const key = env('API_KEY', '');
  if (key) h.Authorization = 'Bearer ' + key;
  if (extra) Object.keys(extra).forEach(function (k) { h[k] = extra[k]; });
  return h;
}

export function jsonHeaders() {
  return authHeaders({ 'Content-Type': 'application/json' });
}

/** MODEL, or the first model GET /v1/models lists. Call it from setup(): the init context cannot make requests. */
export function discoverModel() {
  const given = env('MODEL', '');
  if (given) return given;
  const res = http.get(BASE_URL + MODELS_PATH, { headers: authHeaders(), tags: { name: 'models' } });
  if (res.status !== 200) {
    throw new Error('GET ' + BASE_URL + MODELS_PATH + ' answered ' + res.status + ' (' + String(res.body).slice(0, 200) + '); set MODEL or API_KEY');
  }
  const data = res.json().data;
  if (!data || data.length === 0 || typeof data[0].id !== 'string') throw new Error('GET /v1/models listed no model; set MODEL');
  return data[0].id;
}

export const PROMPTS = [
  'In the beginning God created the heaven and the earth.',
  'And the LORD spake unto Moses, saying,',
  'The history of the city begins in the year',
  'A hacker is a person who enjoys exploring the details of programmable systems',
  'The river rises in the hills to the north and flows',
  'Blessed are the poor in spirit: for theirs is the kingdom of heaven.',
  'The station was opened in 1885 by the railway company',
  'She was born in a small village near the coast, where her father',
];

/** A prompt that differs between VUs and iterations. */
export function pickPrompt() {
  return PROMPTS[(__VU * 7 + __ITER) % PROMPTS.length];
}

/**
 * Sampling fields from the environment: TEMPERATURE (optional), and IGNORE_EOS (default 1):
 * every request then writes max_tokens tokens, so loads are comparable whatever the model writes.
 */
function samplingFields(body) {
  const t = env('TEMPERATURE', '');
  if (t !== '') body.temperature = Number(t);
  if (env('IGNORE_EOS', '1') !== '0') body.ignore_eos = true;
  return body;
}

/** The JSON body of POST /v1/completions; stream adds stream_options.include_usage. */
export function completionBody(model, prompt, maxTokens, stream) {
  const body = { model: model, prompt: prompt, max_tokens: maxTokens };
  if (stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return JSON.stringify(samplingFields(body));
}

/** The `generate` message of the WebSocket protocol (docs/websocket.md). */
export function generateMessage(id, model, prompt, maxTokens) {
  return JSON.stringify(samplingFields({ type: 'generate', id: id, model: model, prompt: prompt, max_tokens: maxTokens }));
}

/**
 * Parses a whole SSE body (k6 buffers it): the JSON events, how many carry non-empty choices,
 * the usage chunk, whether it ended with [DONE], and any error event.
 */
export function parseSse(body) {
  const out = { events: 0, contentEvents: 0, text: '', usage: null, done: false, error: null, finishReason: null };
  const blocks = String(body || '').split(/\r?\n\r?\n/);
  for (let i = 0; i < blocks.length; i++) {
    const lines = blocks[i].split(/\r?\n/).filter(function (l) { return l.indexOf('data:') === 0; });
    if (lines.length === 0) continue;
    const data = lines.map(function (l) { return l.slice(l.charAt(5) === ' ' ? 6 : 5); }).join('\n');
    if (data === '[DONE]') {
      out.done = true;
      continue;
    }
    let ev;
    try {
      ev = JSON.parse(data);
    } catch (e) {
      out.error = 'invalid JSON event: ' + data.slice(0, 100);
      continue;
    }
    out.events++;
    if (ev.error) out.error = ev.error.message || JSON.stringify(ev.error);
    if (ev.choices && ev.choices.length > 0) {
      out.contentEvents++;
      out.text += ev.choices[0].text || '';
      if (ev.choices[0].finish_reason) out.finishReason = ev.choices[0].finish_reason;
    }
    if (ev.usage) out.usage = ev.usage;
  }
  return out;
}

/**
 * One WebSocket session at /v1/stream running `generations` generations one after another.
 * Records per generation: m.ttfc (send of `generate` to its first `chunk`), m.tbc (between
 * chunks), m.duration (to `done`), m.tokens and m.chunks (Counters), m.errors (Rate: 0 for a
 * generation that ended with `done`, 1 for an `error`, a timeout or a broken socket).
 */
export function wsSession(model, generations, maxTokens, timeoutMs, m) {
  let started = 0;
  let finished = 0;
  let t0 = 0;
  let last = 0;
  let first = true;
  const params = { headers: authHeaders(), tags: { name: 'stream' } };
  const res = ws.connect(WS_URL + STREAM_PATH, params, function (socket) {
    function next() {
      if (started >= generations) {
        socket.close();
        return;
      }
      started++;
      first = true;
      t0 = Date.now();
      socket.send(generateMessage('g' + started, model, pickPrompt(), maxTokens));
    }
    function fail(why) {
      m.errors.add(1);
      finished++;
      console.warn('stream generation g' + started + ' failed: ' + why);
    }
    socket.on('open', next);
    socket.on('message', function (raw) {
      let msg;
      try {
        msg = JSON.parse(raw);
      } catch (e) {
        fail('a message that is not JSON');
        socket.close();
        return;
      }
      if (msg.id !== 'g' + started) return; // pong, or a late message of an earlier generation
      const now = Date.now();
      if (msg.type === 'chunk') {
        if (first) m.ttfc.add(now - t0);
        else m.tbc.add(now - last);
        first = false;
        last = now;
        m.chunks.add(1);
      } else if (msg.type === 'done') {
        const ok = check(msg, {
          'ws: done after at least one chunk': function () { return !first; },
          'ws: finish_reason length or stop': function (d) { return d.finish_reason === 'length' || d.finish_reason === 'stop'; },
          'ws: usage.completion_tokens within max_tokens': function (d) {
            return d.usage && d.usage.completion_tokens > 0 && d.usage.completion_tokens <= maxTokens;
          },
        });
        m.duration.add(now - t0);
        if (msg.usage) m.tokens.add(msg.usage.completion_tokens);
        m.errors.add(ok ? 0 : 1);
        finished++;
        next();
      } else if (msg.type === 'error') {
        fail(msg.error ? msg.error.code + ': ' + msg.error.message : 'error message');
        next();
      }
    });
    socket.on('error', function (e) {
      const why = e && typeof e.error === 'function' ? e.error() : String(e);
      if (finished < started) fail('socket error: ' + why);
    });
    socket.on('close', function () {
      if (finished < started) fail('the socket closed before done');
    });
    socket.setTimeout(function () {
      if (finished < started) fail('no done within ' + timeoutMs + ' ms');
      socket.close();
    }, timeoutMs);
  });
  const upgraded = check(res, { 'ws: upgraded (101)': function (r) { return r && r.status === 101; } });
  if (!upgraded) m.errors.add(1);
  // generations never sent because the socket closed early count as errors too
  for (let i = started; i < generations && upgraded; i++) m.errors.add(1);
}
