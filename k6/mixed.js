// A mixed workload in one run, three scenarios side by side:
//   completions  POST /v1/completions, whole responses, at a constant arrival rate (open model)
//   sse          POST /v1/completions with "stream": true from a constant number of VUs; k6 buffers
//                the body, so it takes the time to first byte and the total time, then parses the events
//   websocket    GET /v1/stream sessions with VUs ramping up, holding and ramping down
//
//   k6 run k6/mixed.js -e BASE_URL=http://localhost:8000 [-e MODEL=calm-k4] [-e API_KEY=...]
//     [-e DURATION=1m] [-e MAX_TOKENS=32] [-e COMPLETIONS_RATE=1] [-e SSE_VUS=2] [-e WS_VUS=4] [-e RAMP=10s]
//     [-e GENERATIONS=2] [-e COMPLETIONS_P95_MS=5000] [-e TTFT_P95_MS=2000] [-e TTFC_P95_MS=2000]
//     [-e TBC_P95_MS=500] [-e MAX_ERROR_RATE=0] [-e TIMEOUT=120s]
//
// docs/load-testing.md explains every variable, metric and threshold.
import { check } from 'k6';
import http from 'k6/http';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  arrivalRate, BASE_URL, COMPLETIONS_PATH, completionBody, discoverModel, env, envInt, envNumber, jsonHeaders, parseSse, pickPrompt, wsSession,
} from './lib.js';

const DURATION = env('DURATION', '1m');
const MAX_TOKENS = envInt('MAX_TOKENS', 32);
const TIMEOUT = env('TIMEOUT', '120s');
const TIMEOUT_MS = envInt('TIMEOUT_MS', 120000);
const RAMP = env('RAMP', '10s');
const WS_VUS = envInt('WS_VUS', 4);
const MAX_ERROR_RATE = envNumber('MAX_ERROR_RATE', 0);
const arrivals = arrivalRate(envNumber('COMPLETIONS_RATE', 1));

const outputTokens = new Counter('output_tokens');
const sseMetrics = {
  ttfb: new Trend('sse_time_to_first_byte', true),
  duration: new Trend('sse_duration', true),
  tpot: new Trend('sse_time_per_output_token', true),
  events: new Counter('sse_events'),
  errors: new Rate('sse_errors'),
};
const wsMetrics = {
  ttfc: new Trend('time_to_first_chunk', true),
  tbc: new Trend('time_between_chunks', true),
  duration: new Trend('generation_duration', true),
  chunks: new Counter('chunks_received'),
  tokens: outputTokens,
  errors: new Rate('ws_errors'),
};

export const options = {
  scenarios: {
    completions: {
      executor: 'constant-arrival-rate',
      exec: 'completions',
      rate: arrivals.rate,
      timeUnit: arrivals.timeUnit,
      duration: DURATION,
      preAllocatedVUs: envInt('COMPLETIONS_VUS', 4),
      maxVUs: envInt('COMPLETIONS_MAX_VUS', 32),
      gracefulStop: TIMEOUT,
    },
    sse: {
      executor: 'constant-vus',
      exec: 'sse',
      vus: envInt('SSE_VUS', 2),
      duration: DURATION,
      gracefulStop: TIMEOUT,
    },
    websocket: {
      executor: 'ramping-vus',
      exec: 'websocket',
      startVUs: 0,
      stages: [
        { duration: RAMP, target: WS_VUS },
        { duration: DURATION, target: WS_VUS },
        { duration: RAMP, target: 0 },
      ],
      gracefulRampDown: Math.ceil(TIMEOUT_MS / 1000) + 's',
      gracefulStop: Math.ceil(TIMEOUT_MS / 1000) + 's',
    },
  },
  thresholds: {
    'http_req_failed{scenario:completions}': ['rate<=' + MAX_ERROR_RATE],
    'http_req_duration{scenario:completions}': ['p(95)<' + envNumber('COMPLETIONS_P95_MS', 5000)],
    'http_req_failed{scenario:sse}': ['rate<=' + MAX_ERROR_RATE],
    sse_time_to_first_byte: ['p(95)<' + envNumber('TTFT_P95_MS', 2000)],
    sse_errors: ['rate<=' + MAX_ERROR_RATE],
    time_to_first_chunk: ['p(95)<' + envNumber('TTFC_P95_MS', 2000)],
    time_between_chunks: ['p(95)<' + envNumber('TBC_P95_MS', 500)],
    ws_errors: ['rate<=' + MAX_ERROR_RATE],
    checks: ['rate>=' + envNumber('MIN_CHECK_RATE', 0.99)],
  },
};

export function setup() {
  const model = discoverModel();
  console.log('k6/mixed.js: ' + BASE_URL + ', model ' + model + ', max_tokens ' + MAX_TOKENS + ', for ' + DURATION);
  return { model: model };
}

/** Whole completions at a constant rate. */
export function completions(data) {
  const res = http.post(BASE_URL + COMPLETIONS_PATH, completionBody(data.model, pickPrompt(), MAX_TOKENS, false), {
    headers: jsonHeaders(), tags: { name: 'completions' }, timeout: TIMEOUT,
  });
  let body = null;
  try {
    body = res.json();
  } catch (e) {
    body = null;
  }
  check(res, {
    'completions: status 200': function (r) { return r.status === 200; },
    'completions: text and usage': function () {
      return body !== null && body.object === 'text_completion' && body.choices && body.choices.length === 1 &&
        typeof body.choices[0].text === 'string' && body.usage && body.usage.completion_tokens > 0 && body.usage.completion_tokens <= MAX_TOKENS;
    },
  });
  if (body && body.usage) outputTokens.add(body.usage.completion_tokens);
}

/**
 * Streamed completions over SSE. With calm-serve, response headers go out together with the
 * first event, so the time to first byte is the time to first token; receiving time divided by
 * (tokens - 1) approximates vLLM's TPOT. For exact per-event timing use `calm bench`.
 */
export function sse(data) {
  const res = http.post(BASE_URL + COMPLETIONS_PATH, completionBody(data.model, pickPrompt(), MAX_TOKENS, true), {
    headers: jsonHeaders(), tags: { name: 'completions_stream' }, timeout: TIMEOUT,
  });
  const s = parseSse(res.body);
  const tokens = s.usage ? s.usage.completion_tokens : 0;
  const ok = check(res, {
    'sse: status 200': function (r) { return r.status === 200; },
    'sse: text/event-stream': function (r) { return String(r.headers['Content-Type'] || '').indexOf('text/event-stream') === 0; },
    'sse: content events, no error event': function () { return s.contentEvents > 0 && s.error === null; },
    'sse: usage chunk within max_tokens': function () { return tokens > 0 && tokens <= MAX_TOKENS; },
    'sse: ends with [DONE]': function () { return s.done; },
  });
  sseMetrics.errors.add(ok ? 0 : 1);
  if (res.status !== 200) return;
  sseMetrics.ttfb.add(res.timings.waiting);
  sseMetrics.duration.add(res.timings.duration);
  sseMetrics.events.add(s.events);
  if (tokens > 1) sseMetrics.tpot.add(res.timings.receiving / (tokens - 1));
  outputTokens.add(tokens);
}

/** WebSocket sessions of GENERATIONS generations each. */
export function websocket(data) {
  wsSession(data.model, envInt('GENERATIONS', 2), MAX_TOKENS, TIMEOUT_MS, wsMetrics);
}
