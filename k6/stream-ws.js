// WebSocket streaming at GET /v1/stream (docs/websocket.md): each iteration opens a socket,
// runs GENERATIONS generations on it one after another, and times every decoded chunk.
// VUs ramp up to VUS, hold, and ramp down (a closed model: each VU waits for its stream).
//
//   k6 run k6/stream-ws.js -e BASE_URL=http://localhost:8000 [-e MODEL=calm-k4] [-e API_KEY=...]
//     [-e VUS=4] [-e RAMP=10s] [-e DURATION=40s] [-e GENERATIONS=2] [-e MAX_TOKENS=64] [-e TEMPERATURE=0.7]
//     [-e TTFC_P95_MS=2000] [-e TBC_P95_MS=500] [-e MAX_ERROR_RATE=0] [-e TIMEOUT_MS=120000]
//
// Metrics (ms): time_to_first_chunk (generate sent -> first chunk: time to first token),
// time_between_chunks (between chunks of one generation; / K for time per token),
// generation_duration (generate -> done); Counters chunks_received, output_tokens; the Rate
// ws_errors (generations that did not end with a good done).
import { Counter, Rate, Trend } from 'k6/metrics';
import { BASE_URL, discoverModel, env, envInt, envNumber, WS_URL, STREAM_PATH, wsSession } from './lib.js';

const VUS = envInt('VUS', 4);
const RAMP = env('RAMP', '10s');
const GENERATIONS = envInt('GENERATIONS', 2);
const MAX_TOKENS = envInt('MAX_TOKENS', 64);
const TIMEOUT_MS = envInt('TIMEOUT_MS', 120000);

const metrics = {
  ttfc: new Trend('time_to_first_chunk', true),
  tbc: new Trend('time_between_chunks', true),
  duration: new Trend('generation_duration', true),
  chunks: new Counter('chunks_received'),
  tokens: new Counter('output_tokens'),
  errors: new Rate('ws_errors'),
};

export const options = {
  scenarios: {
    stream: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: RAMP, target: VUS },
        { duration: env('DURATION', '40s'), target: VUS },
        { duration: RAMP, target: 0 },
      ],
      gracefulRampDown: Math.ceil(TIMEOUT_MS / 1000) + 's',
      gracefulStop: Math.ceil(TIMEOUT_MS / 1000) + 's',
    },
  },
  thresholds: {
    time_to_first_chunk: ['p(95)<' + envNumber('TTFC_P95_MS', 2000)],
    time_between_chunks: ['p(95)<' + envNumber('TBC_P95_MS', 500)],
    ws_errors: ['rate<=' + envNumber('MAX_ERROR_RATE', 0)],
    checks: ['rate>=' + envNumber('MIN_CHECK_RATE', 0.99)],
  },
};

export function setup() {
  const model = discoverModel();
  console.log('k6/stream-ws.js: ' + WS_URL + STREAM_PATH + ' (' + BASE_URL + '), model ' + model + ', up to ' + VUS + ' VUs, ' +
    GENERATIONS + ' generations of ' + MAX_TOKENS + ' tokens per socket');
  return { model: model };
}

export default function (data) {
  wsSession(data.model, GENERATIONS, MAX_TOKENS, TIMEOUT_MS, metrics);
}
