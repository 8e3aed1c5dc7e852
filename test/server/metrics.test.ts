// GET /metrics against a real engine: every name dashboards rely on is there, the counters move
// with real generations, and `promtool check metrics` accepts the exposition.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { DoneEvent } from '../../src/engine/types.js';
import { ApiError } from '../../src/server/errors.js';
import { admit, startGeneration } from '../../src/server/generation.js';
import { Metrics, registerMetricsRoute } from '../../src/server/metrics.js';
import { skipWithout, TOOLS } from '../support/tools.mjs';
import { startTestServer, type TestServer } from './support.js';

const REQUIRED = [
  'calm_requests_running',
  'calm_requests_waiting',
  'calm_kv_cache_usage_ratio',
  'calm_prompt_tokens_total',
  'calm_generation_tokens_total',
  'calm_requests_finished_total',
  'calm_time_to_first_chunk_seconds',
  'calm_inter_chunk_latency_seconds',
  'calm_e2e_request_latency_seconds',
  'calm_request_queue_time_seconds',
  'calm_step_duration_seconds',
  'calm_batch_size',
];

/**
 * Value of the sample `series` of `model` (a name, or a name with its other labels as written:
 * the model label comes first), or undefined.
 */
function sample(body: string, series: string, model = MODEL): number | undefined {
  const brace = series.indexOf('{');
  const labelled = brace < 0 ? `${series}{model="${model}"}` : `${series.slice(0, brace)}{model="${model}",${series.slice(brace + 1)}`;
  const line = body.split('\n').find((l) => l.startsWith(`${labelled} `));
  return line === undefined ? undefined : Number(line.slice(labelled.length + 1));
}

const MODEL = 'calm-k4';

describe('metrics', () => {
  let server: TestServer;
  let body = '';
  let contentType = '';
  let done: DoneEvent[] = [];

  before(async () => {
    server = await startTestServer({ routes: (app, ctx, metrics) => registerMetricsRoute(app, ctx, metrics) });
    const { ctx } = server;
    const run = (id: string, maxTokens: number) => {
      admit(ctx.served.generation, 1);
      return startGeneration(ctx.served.generation, ctx.served.engine.prepare({ id, prompt: 'In the beginning God created', maxTokens, temperature: 1, seed: 5 }), () => {});
    };
    const results = await Promise.all([run('m1', 16).finished, run('m2', 12).finished]);
    for (const r of results) assert.ok(!(r instanceof ApiError), `generation failed: ${JSON.stringify(r)}`);
    done = results as DoneEvent[];
    assert.ok(done.some((r) => r.finishReason === 'length'), 'a generation ran to max_tokens');
    const res = await request(`${server.url}/metrics`);
    assert.equal(res.statusCode, 200);
    contentType = String(res.headers['content-type']);
    body = await res.body.text();
  });

  after(async () => {
    await server?.close();
  });

  test('every required metric is exposed, in the Prometheus text format', () => {
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    for (const name of REQUIRED) assert.match(body, new RegExp(`^# TYPE ${name} `, 'm'), `missing ${name}`);
    for (const name of ['process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds', 'calm_step_total_duration_seconds', 'calm_engine_heartbeat_age_seconds', 'calm_model_info']) {
      assert.match(body, new RegExp(`^# TYPE ${name} `, 'm'), `missing ${name}`);
    }
    assert.match(body, /^# TYPE calm_requests_running gauge$/m);
    assert.match(body, /^# TYPE calm_requests_finished_total counter$/m);
    assert.match(body, /^# TYPE calm_time_to_first_chunk_seconds histogram$/m);
    for (const reason of ['stop', 'length', 'cancelled', 'error', 'timeout']) {
      assert.notEqual(sample(body, `calm_requests_finished_total{reason="${reason}"}`), undefined, `finished_total{reason="${reason}"} present from the start`);
    }
  });

  test('the counters and histograms moved with the generations', () => {
    const sum = (f: (d: DoneEvent) => number) => done.reduce((n, d) => n + f(d), 0);
    assert.ok(sample(body, 'calm_generation_tokens_total')! > 0);
    assert.equal(sample(body, 'calm_generation_tokens_total'), sum((d) => d.usage.completionTokens));
    assert.equal(sample(body, 'calm_prompt_tokens_total'), sum((d) => d.usage.promptTokens));
    assert.ok(sample(body, 'calm_requests_finished_total{reason="length"}')! >= 1);
    assert.equal(sample(body, 'calm_e2e_request_latency_seconds_count'), 2);
    assert.equal(sample(body, 'calm_time_to_first_chunk_seconds_count'), 2);
    assert.ok(sample(body, 'calm_inter_chunk_latency_seconds_count')! >= 2);
    assert.ok(sample(body, 'calm_step_duration_seconds_count{stage="backbone"}')! >= 1);
    assert.ok(sample(body, 'calm_step_duration_seconds_count{stage="decoder"}')! >= 1, 'the CALM model runs its decoder');
    assert.ok(sample(body, 'calm_batch_size_count')! >= 1);
    assert.ok(sample(body, 'calm_engine_steps_total')! >= 4);
    assert.equal(sample(body, 'calm_requests_running'), 0);
    assert.equal(sample(body, 'calm_requests_inflight'), 0);
    assert.match(body, /^calm_model_info\{model="[^"]+",kind="calm",/m);
  });

  test('promtool check metrics accepts the exposition', { skip: skipWithout(TOOLS.promtool) }, () => {
    const res = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    assert.equal(`${res.stdout}${res.stderr}`, '', 'promtool reports nothing');
    assert.equal(res.status, 0);
  });

  test('a step records only the stages that ran (an AR step has no head or decoder)', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.addModel(MODEL, server.engine, { inflight: 0 }).observeStep({ totalMs: 12, backboneMs: 8, headMs: 0, decoderMs: 0, samplerMs: 1, batch: 3, sampled: 3, draws: 0, fallbacks: 0 });
    const { body: text } = await metrics.render();
    assert.equal(sample(text, 'calm_step_duration_seconds_count{stage="backbone"}'), 1);
    assert.equal(sample(text, 'calm_step_duration_seconds_count{stage="sampler"}'), 1);
    assert.equal(sample(text, 'calm_step_duration_seconds_count{stage="head"}'), undefined);
    assert.equal(sample(text, 'calm_step_duration_seconds_count{stage="decoder"}'), undefined);
    assert.equal(sample(text, 'calm_batch_size_sum'), 3);
    assert.doesNotMatch(text, /^process_/m);
  });

  test('observers count errors, timeouts and refusals', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const view = metrics.addModel(MODEL, server.engine, { inflight: 0 });
    const o = view.startRequest();
    o.finished('error', { promptTokens: 0, completionTokens: 0 }, 0);
    o.finished('error', { promptTokens: 0, completionTokens: 0 }, 0);
    const t = view.startRequest();
    t.firstChunk();
    t.chunk();
    t.finished('timeout', { promptTokens: 5, completionTokens: 8 }, 2);
    view.refused();
    const { body: text } = await metrics.render();
    assert.equal(sample(text, 'calm_requests_finished_total{reason="refused"}'), 1);
    assert.equal(sample(text, 'calm_requests_finished_total{reason="error"}'), 1, 'a second finished() is ignored');
    assert.equal(sample(text, 'calm_requests_finished_total{reason="timeout"}'), 1);
    assert.equal(sample(text, 'calm_generation_tokens_total'), 8);
    assert.equal(sample(text, 'calm_request_queue_time_seconds_count'), 1);
    assert.equal(sample(text, 'calm_inter_chunk_latency_seconds_count'), 1);
  });
});
