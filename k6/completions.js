// POST /v1/completions (whole responses) under a constant arrival rate: an open-model load
// test. k6 starts RATE requests per second whatever the server's latency, so a slow server
// meets a growing queue (up to MAX_VUS requests in flight) rather than a slower client.
//
//   k6 run k6/completions.js -e BASE_URL=http://localhost:8000 [-e MODEL=calm-k4] [-e API_KEY=...]
//     [-e RATE=2] [-e DURATION=1m] [-e MAX_TOKENS=32] [-e VUS=8] [-e MAX_VUS=64] [-e TEMPERATURE=0.7]
//     [-e P95_MS=5000] [-e P99_MS=10000] [-e MAX_ERROR_RATE=0] [-e TIMEOUT=120s]
//
// docs/load-testing.md explains every variable and threshold.
import { check } from 'k6';
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import {
  arrivalRate, BASE_URL, COMPLETIONS_PATH, completionBody, discoverModel, env, envInt, envNumber, jsonHeaders, pickPrompt,
} from './lib.js';

const RATE = envNumber('RATE', 2);
const MAX_TOKENS = envInt('MAX_TOKENS', 32);
const TIMEOUT = env('TIMEOUT', '120s');
const arrivals = arrivalRate(RATE);

const outputTokens = new Counter('output_tokens');
const msPerOutputToken = new Trend('ms_per_output_token', true);

export const options = {
  scenarios: {
    completions: {
      executor: 'constant-arrival-rate',
      rate: arrivals.rate,
      timeUnit: arrivals.timeUnit,
      duration: env('DURATION', '1m'),
      preAllocatedVUs: envInt('VUS', 8),
      maxVUs: envInt('MAX_VUS', 64),
      gracefulStop: TIMEOUT,
    },
  },
  thresholds: {
    'http_req_failed{scenario:completions}': ['rate<=' + envNumber('MAX_ERROR_RATE', 0)],
    'http_req_duration{scenario:completions}': ['p(95)<' + envNumber('P95_MS', 5000), 'p(99)<' + envNumber('P99_MS', 10000)],
    checks: ['rate>=' + envNumber('MIN_CHECK_RATE', 0.99)],
  },
};

export function setup() {
  const model = discoverModel();
  console.log('k6/completions.js: ' + BASE_URL + ', model ' + model + ', ' + arrivals.rate + ' requests per ' + arrivals.timeUnit + ', max_tokens ' + MAX_TOKENS);
  return { model: model };
}

export default function (data) {
  const res = http.post(BASE_URL + COMPLETIONS_PATH, completionBody(data.model, pickPrompt(), MAX_TOKENS, false), {
    headers: jsonHeaders(),
    tags: { name: 'completions' },
    timeout: TIMEOUT,
  });
  let body = null;
  try {
    body = res.json();
  } catch (e) {
    body = null;
  }
  const choice = body && body.choices && body.choices[0];
  const usage = body && body.usage;
  check(res, {
    'status is 200': function (r) { return r.status === 200; },
    'object is text_completion': function () { return body !== null && body.object === 'text_completion'; },
    'one choice with text': function () { return Boolean(choice) && typeof choice.text === 'string' && body.choices.length === 1; },
    'finish_reason length or stop': function () { return Boolean(choice) && (choice.finish_reason === 'length' || choice.finish_reason === 'stop'); },
    'usage within max_tokens': function () {
      return Boolean(usage) && usage.completion_tokens > 0 && usage.completion_tokens <= MAX_TOKENS &&
        usage.total_tokens === usage.prompt_tokens + usage.completion_tokens;
    },
  });
  if (res.status === 200 && usage && usage.completion_tokens > 0) {
    outputTokens.add(usage.completion_tokens);
    msPerOutputToken.add(res.timings.duration / usage.completion_tokens);
  }
}
