// The benchmark's definitions on synthetic event timings, with exact numbers: TTFT, ITL, E2EL,
// TPOT per request; throughput, goodput and percentiles per run; the summary and the chart.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { escapeXml, niceScale, renderChart } from '../../src/bench/chart.js';
import { toRecord, type CompletionResult } from '../../src/bench/client.js';
import {
  distribution, formatSummary, formatSweep, metricsJson, percentile, type RequestRecord, requestLatencies, runMetrics,
} from '../../src/bench/report.js';
import { checkWellFormedXml } from './xml.js';

function record(index: number, sendMs: number, events: number[], outputTokens: number, promptTokens = 10): RequestRecord {
  const res: CompletionResult = {
    success: events.length > 0, error: events.length > 0 ? null : 'HTTP 429: busy', sendMs, contentEventMs: events,
    promptTokens, outputTokens, usageReported: true, text: '',
  };
  return toRecord(index, res, 0);
}

describe('per-request latencies (vLLM definitions)', () => {
  test('TTFT, ITL, E2EL and TPOT from event times', () => {
    const lat = requestLatencies({ sendMs: 1000, contentEventMs: [1100, 1130, 1170, 1250], outputTokens: 13 });
    assert.deepEqual(lat, { ttftMs: 100, itlMs: [30, 40, 80], e2elMs: 250, tpotMs: 12.5 });
  });

  test('one content event: no ITL; TPOT left out for a single output token', () => {
    assert.deepEqual(requestLatencies({ sendMs: 0, contentEventMs: [40], outputTokens: 1 }), { ttftMs: 40, itlMs: [], e2elMs: 40, tpotMs: null });
    // a chunked server: 4 tokens in one event still has a TPOT, 0 here since E2EL = TTFT
    assert.deepEqual(requestLatencies({ sendMs: 0, contentEventMs: [40], outputTokens: 4 }), { ttftMs: 40, itlMs: [], e2elMs: 40, tpotMs: 0 });
  });

  test('no content event: no latencies (the request failed)', () => {
    assert.equal(requestLatencies({ sendMs: 0, contentEventMs: [], outputTokens: 0 }), null);
  });

  test('CALM chunks: TPOT is the chunk gap over K when every event carries K = 4 tokens', () => {
    // 4 events of 4 tokens, 20 ms apart: TPOT = 60 / 15 = 4 ms, ITL 20 ms (per chunk)
    const lat = requestLatencies({ sendMs: 0, contentEventMs: [50, 70, 90, 110], outputTokens: 16 })!;
    assert.equal(lat.tpotMs, 4);
    assert.deepEqual(lat.itlMs, [20, 20, 20]);
  });
});

describe('statistics', () => {
  test('percentiles interpolate linearly between closest ranks (numpy default)', () => {
    assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
    assert.ok(Math.abs(percentile([1, 2, 3, 4], 99) - 3.97) < 1e-12);
    assert.equal(percentile([10, 20, 30, 40, 50], 90), 46);
    assert.equal(percentile([10, 20, 30, 40, 50], 0), 10);
    assert.equal(percentile([10, 20, 30, 40, 50], 100), 50);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([], 99), 0);
  });

  test('distribution: mean, median, population std, min, max, percentiles', () => {
    const d = distribution([4, 1, 3, 2], [90, 99]);
    assert.equal(d.count, 4);
    assert.equal(d.mean, 2.5);
    assert.equal(d.median, 2.5);
    assert.equal(d.std, Math.sqrt(1.25));
    assert.equal(d.min, 1);
    assert.equal(d.max, 4);
    assert.ok(Math.abs(d.percentiles['90']! - 3.7) < 1e-12);
    assert.ok(Math.abs(d.percentiles['99']! - 3.97) < 1e-12);
    assert.deepEqual(distribution([], [99]), { count: 0, mean: 0, median: 0, std: 0, min: 0, max: 0, percentiles: { '99': 0 } });
  });
});

describe('run metrics', () => {
  // three successful requests and one refused, over 2 s
  const records = [
    record(0, 0, [100, 120, 140], 9, 10), // TTFT 100, E2EL 140, TPOT 40/8 = 5, ITL 20 20
    record(1, 0, [200, 260], 5, 20), // TTFT 200, E2EL 260, TPOT 60/4 = 15, ITL 60
    record(2, 500, [600, 610, 620, 630], 13, 30), // TTFT 100, E2EL 130, TPOT 30/12 = 2.5, ITL 10 10 10
    record(3, 0, [], 0, 0),
  ];

  test('throughputs, completed and failed, latency distributions', () => {
    const m = runMetrics(records, 2, [90, 99], {}, 3);
    assert.equal(m.completed, 3);
    assert.equal(m.failed, 1);
    assert.equal(m.totalInputTokens, 60);
    assert.equal(m.totalOutputTokens, 27);
    assert.equal(m.requestThroughput, 1.5);
    assert.equal(m.outputThroughput, 13.5);
    assert.equal(m.totalTokenThroughput, 43.5);
    assert.equal(m.requestGoodput, null);
    assert.equal(m.peakConcurrency, 3);
    assert.equal(m.tokensPerEvent, 27 / 9);
    assert.deepEqual([m.ttft.mean, m.ttft.median], [400 / 3, 100]);
    assert.deepEqual([m.tpot.mean, m.tpot.median], [22.5 / 3, 5]);
    assert.deepEqual([m.e2el.mean, m.e2el.median], [530 / 3, 140]);
    // ITL pools the gaps of every request: 10 10 10 20 20 60
    assert.equal(m.itl.count, 6);
    assert.equal(m.itl.mean, 130 / 6);
    assert.equal(m.itl.median, 15);
    assert.ok(Math.abs(m.itl.percentiles['99']! - (20 + 0.95 * 40)) < 1e-9);
  });

  test('goodput counts requests meeting every target, per second', () => {
    assert.equal(runMetrics(records, 2, [99], { ttft: 150 }).goodRequests, 2);
    assert.equal(runMetrics(records, 2, [99], { ttft: 150, tpot: 4 }).goodRequests, 1);
    assert.equal(runMetrics(records, 2, [99], { ttft: 150, tpot: 4 }).requestGoodput, 0.5);
    assert.equal(runMetrics(records, 2, [99], { e2el: 260 }).goodRequests, 3);
    assert.equal(runMetrics(records, 2, [99], { e2el: 259.9 }).goodRequests, 2);
    // a request with one output token has TPOT 0 for goodput (as in vLLM)
    const single = [record(0, 0, [50], 1)];
    assert.equal(runMetrics(single, 1, [99], { tpot: 0.001 }).goodRequests, 1);
  });

  test('JSON names follow vLLM', () => {
    const j = metricsJson(runMetrics(records, 2, [90, 99], { ttft: 150 }));
    for (const k of ['completed', 'duration', 'request_throughput', 'request_goodput', 'output_throughput', 'total_token_throughput',
      'mean_ttft_ms', 'median_ttft_ms', 'std_ttft_ms', 'p90_ttft_ms', 'p99_ttft_ms', 'mean_tpot_ms', 'p99_itl_ms', 'median_e2el_ms']) {
      assert.ok(k in j, k);
    }
    assert.equal(j.request_goodput, 1);
    assert.equal(j.median_ttft_ms, 100);
  });

  test('the summary reads like vLLM\'s', () => {
    const m = runMetrics(records, 2, [90, 99], { ttft: 150 }, 3);
    const text = formatSummary(m, { maxConcurrency: 4, requestRate: Infinity, burstiness: 1, goodput: { ttft: 150 } });
    const lines = text.split('\n');
    assert.equal(lines[0], '============ Serving Benchmark Result ============');
    assert.equal(lines.at(-1), '='.repeat(50));
    assert.ok(lines.includes(`${'Successful requests:'.padEnd(40)} 3`));
    assert.ok(lines.includes(`${'Failed requests:'.padEnd(40)} 1`));
    assert.ok(lines.includes(`${'Maximum request concurrency:'.padEnd(40)} 4`));
    assert.ok(lines.includes(`${'Request rate configured (RPS):'.padEnd(40)} inf`));
    assert.ok(lines.includes(`${'Request throughput (req/s):'.padEnd(40)} 1.50`));
    assert.ok(lines.includes(`${'Request goodput (req/s):'.padEnd(40)} 1.00`));
    assert.ok(lines.includes(`${'Output token throughput (tok/s):'.padEnd(40)} 13.50`));
    assert.ok(lines.includes(`${'Median TTFT (ms):'.padEnd(40)} 100.00`));
    assert.ok(lines.includes(`${'P90 TPOT (ms):'.padEnd(40)} 13.00`));
    assert.ok(lines.includes('-----Time per Output Token (excl. 1st token)------'));
    assert.ok(lines.includes('---------------Time to First Token----------------'));
    for (const l of lines) assert.ok(l.length <= 50 || !l.startsWith('='), l);
    const sweep = formatSweep([{ label: '1', metrics: m }, { label: '4', metrics: m }], 'max concurrency');
    assert.match(sweep, /max concurrency\s+ok\s+fail/);
    assert.equal(sweep.split('\n').length, 5);
  });
});

describe('chart', () => {
  test('nice axis scales', () => {
    assert.deepEqual(niceScale(97), { max: 100, step: 20 });
    assert.deepEqual(niceScale(12), { max: 12.5, step: 2.5 });
    assert.deepEqual(niceScale(0), { max: 1, step: 0.2 });
    assert.equal(escapeXml(`<a & "b">`), '&lt;a &amp; &quot;b&quot;&gt;');
  });

  test('an SVG with three panels and every level, well-formed', () => {
    const svg = renderChart([
      { label: '1', outputThroughput: 120, ttftP50: 30, ttftP99: 45, tpotP50: 5, tpotP99: 7 },
      { label: '4', outputThroughput: 300, ttftP50: 60, ttftP99: 120, tpotP50: 8, tpotP99: 11 },
      { label: '16', outputThroughput: 410.5, ttftP50: 200, ttftP99: 480, tpotP50: 20, tpotP99: 31 },
    ], { title: 'calm bench: calm-k4 <test> & co', subtitle: 'sub', xLabel: 'max concurrency' });
    assert.equal(checkWellFormedXml(svg), 'svg');
    assert.equal((svg.match(/<g class="panel">/g) ?? []).length, 3);
    assert.equal((svg.match(/<polyline /g) ?? []).length, 5);
    for (const name of ['output tok/s', 'TTFT p50', 'TTFT p99', 'TPOT p50', 'TPOT p99']) assert.ok(svg.includes(`data-name="${name}"`), name);
    assert.ok(svg.includes('max concurrency 16: 410.5 tokens/s'));
    assert.ok(!svg.includes('NaN'));
    // one level: points in the middle, still well-formed
    const one = renderChart([{ label: 'inf', outputThroughput: 0, ttftP50: 0, ttftP99: 0, tpotP50: 0, tpotP99: 0 }], { title: 't', xLabel: 'request rate' });
    assert.equal(checkWellFormedXml(one), 'svg');
    assert.ok(!one.includes('NaN'));
  });

  test('the XML checker rejects what is not well-formed', () => {
    assert.throws(() => checkWellFormedXml('<svg><g></svg>'));
    assert.throws(() => checkWellFormedXml('<svg a="1" a="2"/>'));
    assert.throws(() => checkWellFormedXml('<svg>a & b</svg>'));
    assert.throws(() => checkWellFormedXml('<svg/><svg/>'));
    assert.equal(checkWellFormedXml('<?xml version="1.0"?>\n<svg><g a=\'x\'>&amp;</g></svg>\n'), 'svg');
  });
});
