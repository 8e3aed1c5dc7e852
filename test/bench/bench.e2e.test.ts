// `calm bench` end to end against a real calm-serve started in this process: every request
// succeeds with the exact output length, latencies are consistent, the JSON and the SVG chart
// are written, and a sweep over two concurrency levels charts both.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { BenchIO } from '../../src/bench/runner.js';
import { benchCommand } from '../../src/commands/bench.js';
import { SERVER_DEFAULTS } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/server/start.js';
import { checkWellFormedXml } from './xml.js';

const WIKITEXT = fileURLToPath(new URL('../../../shared/data/wikitext103-test-documents.jsonl', import.meta.url));

function capture(): BenchIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (s) => void out.push(s), stderr: (s) => void err.push(s), stderrIsTTY: false };
}

interface RunJson {
  max_concurrency: number | null;
  completed: number;
  failed: number;
  total_output_tokens: number;
  total_input_tokens: number;
  max_concurrent_requests: number;
  output_throughput: number;
  median_ttft_ms: number;
  p99_tpot_ms: number;
  requests: { success: boolean; output_tokens: number; prompt_tokens: number; ttft_ms: number; e2el_ms: number; tpot_ms: number; itl_ms: number[]; content_events: number }[];
}

describe('calm bench against a real server', () => {
  let server: RunningServer;
  let dir: string;
  before(async () => {
    server = await startServer({ ...SERVER_DEFAULTS, host: '127.0.0.1', port: 0, intraOpThreads: 1, logLevel: 'silent' });
    dir = mkdtempSync(join(tmpdir(), 'calm-bench-'));
  });
  after(async () => {
    await server.drain();
    rmSync(dir, { recursive: true, force: true });
  });

  test('6 prompts, max concurrency 2, 8 tokens: all succeed; JSON and SVG written', async () => {
    const io = capture();
    const json = join(dir, 'out', 'bench.json');
    const svg = join(dir, 'out', 'bench.svg');
    const dataset = existsSync(WIKITEXT) ? WIKITEXT : 'synthetic';
    const code = await benchCommand(['--base-url', server.url, '--dataset', dataset, '--prompt-len', '16', '--num-prompts', '6',
      '--max-concurrency', '2', '--max-tokens', '8', '--goodput', 'ttft:60000', 'e2el:60000', '--output', json, '--svg', svg, '--seed', '1',
      '--extra-body', '{"ignore_eos":true}'], io); // every request writes its 8 tokens, whatever the model
    const stdout = io.out.join('');
    console.log(stdout); // the summary, in the test log
    assert.equal(code, 0, stdout + io.err.join(''));
    const result = JSON.parse(readFileSync(json, 'utf8')) as { model: string; runs: RunJson[]; max_tokens: number; dataset: string };
    assert.equal(result.model, server.ctx.served.id);
    assert.equal(result.runs.length, 1);
    const run = result.runs[0]!;
    assert.equal(run.max_concurrency, 2);
    assert.equal(run.completed, 6);
    assert.equal(run.failed, 0);
    assert.equal(run.total_output_tokens, 6 * 8);
    assert.ok(run.total_input_tokens >= 6 * 16, `input tokens ${run.total_input_tokens}`);
    assert.ok(run.max_concurrent_requests >= 1 && run.max_concurrent_requests <= 2);
    assert.ok(run.output_throughput > 0);
    assert.equal(run.requests.length, 6);
    for (const r of run.requests) {
      assert.equal(r.success, true);
      assert.equal(r.output_tokens, 8);
      assert.ok(r.ttft_ms > 0);
      assert.ok(r.e2el_ms >= r.ttft_ms);
      assert.ok(r.tpot_ms >= 0);
      assert.equal(r.itl_ms.length, r.content_events - 1);
      assert.ok(Math.abs(r.tpot_ms - (r.e2el_ms - r.ttft_ms) / 7) < 1e-9);
    }
    assert.match(stdout, /=+ Serving Benchmark Result =+/);
    assert.match(stdout, /Successful requests: +6\n/);
    assert.match(stdout, /Total generated tokens: +48\n/);
    assert.match(stdout, /Request goodput \(req\/s\):/);
    assert.equal(checkWellFormedXml(readFileSync(svg, 'utf8')), 'svg');
  });

  test('two concurrency levels: one run each, a sweep table, a chart with both', async () => {
    const io = capture();
    const svg = join(dir, 'sweep.svg');
    const json = join(dir, 'sweep.json');
    const code = await benchCommand(['--base-url', server.url, '--num-prompts', '2', '--max-tokens', '4', '--prompt-len', '8',
      '--max-concurrency', '1,2', '--warmup', '0', '--output', json, '--svg', svg, '--extra-body', '{"ignore_eos":true}'], io);
    const stdout = io.out.join('');
    assert.equal(code, 0, stdout);
    const runs = (JSON.parse(readFileSync(json, 'utf8')) as { runs: RunJson[] }).runs;
    assert.deepEqual(runs.map((r) => [r.max_concurrency, r.completed, r.total_output_tokens]), [[1, 2, 8], [2, 2, 8]]);
    assert.equal(runs[0]!.max_concurrent_requests, 1);
    assert.match(stdout, /Sweep \(latencies in ms\)/);
    const chart = readFileSync(svg, 'utf8');
    assert.equal(checkWellFormedXml(chart), 'svg');
    for (const level of ['1', '2']) {
      assert.ok(chart.includes(`output tok/s at max concurrency ${level}:`), level);
      assert.ok(chart.includes(`TTFT p99 at max concurrency ${level}:`), level);
      assert.ok(chart.includes(`TPOT p50 at max concurrency ${level}:`), level);
    }
    // the progress lines went to stderr, not stdout
    assert.match(io.err.join(''), /max concurrency 2: 2 ok, 0 failed/);
  });

  test('a wrong model fails the warm-up with the server\'s reason; bad options exit 2', async () => {
    const io = capture();
    await assert.rejects(benchCommand(['--base-url', server.url, '--model', 'nope', '--num-prompts', '1', '--max-tokens', '4'], io), /warm-up request failed: HTTP 404/);
    assert.equal(await benchCommand(['--num-prompts', 'x'], io), 2);
    assert.match(io.err.join(''), /--num-prompts must be an integer/);
    const help = capture();
    assert.equal(await benchCommand(['--help'], help), 0);
    assert.match(help.out.join(''), /--max-concurrency/);
  });
});
