// k6/http emulation: synchronous requests through the I/O worker, with k6's Response shape
// (status, body, canonical headers, timings, json()) and its built-in http_* metrics.
import { addSample, nextMessage, post as toWorker, state } from './state.mjs';

let seq = 0;

function canonical(name) {
  return name.split('-').map((p) => p.charAt(0).toUpperCase() + p.slice(1).toLowerCase()).join('-');
}

function parseDuration(v, fallbackMs) {
  if (v === undefined || v === null) return fallbackMs;
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(v));
  if (!m) throw new Error(`k6 shim: bad timeout ${JSON.stringify(v)}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
}

export function request(method, url, body, params) {
  if (state.phase === 'init') throw new Error('k6 shim: HTTP requests are not allowed in the init context');
  params = params ?? {};
  const id = ++seq;
  const timeoutMs = parseDuration(params.timeout, 60000);
  toWorker({ op: 'http', id, method, url, headers: params.headers ?? {}, body: body === undefined || body === null ? null : String(body), timeoutMs });
  const msg = nextMessage(timeoutMs + 5000);
  if (!msg || msg.id !== id) throw new Error(`k6 shim: no answer for ${method} ${url}`);
  const headers = {};
  for (const [k, v] of Object.entries(msg.headers)) headers[canonical(k)] = v;
  const tags = { method, name: (params.tags && params.tags.name) || url, status: String(msg.status), ...(params.tags ?? {}) };
  const failed = msg.status < 200 || msg.status >= 400;
  addSample('http_reqs', 'counter', 1, tags);
  addSample('http_req_failed', 'rate', failed ? 1 : 0, tags);
  for (const k of ['blocked', 'connecting', 'tls_handshaking', 'sending', 'waiting', 'receiving', 'duration']) {
    addSample(`http_req_${k}`, 'trend', msg.timings[k], tags, true);
  }
  return {
    status: msg.status,
    body: msg.body,
    headers,
    timings: msg.timings,
    error: msg.error,
    error_code: msg.status === 0 ? 1000 : 0,
    url,
    request: { method, url, body },
    json(selector) {
      const v = JSON.parse(this.body);
      if (!selector) return v;
      return selector.split('.').reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), v);
    },
  };
}

export const get = (url, params) => request('GET', url, null, params);
export const post = (url, body, params) => request('POST', url, body, params);
export const put = (url, body, params) => request('PUT', url, body, params);
export const patch = (url, body, params) => request('PATCH', url, body, params);
export const del = (url, body, params) => request('DELETE', url, body, params);
export const head = (url, params) => request('HEAD', url, null, params);
export default { request, get, post, put, patch, del, head };
