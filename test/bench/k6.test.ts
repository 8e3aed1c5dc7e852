// The k6 scripts (k6/*.js), without a k6 binary: (1) static checks: they parse (TypeScript's
// parser and `node --check`), use only k6's documented modules and syntax every k6 release
// takes, and export options with scenarios and thresholds that k6's schema accepts; (2) a live
// run against a real calm-serve (with an API key) through test/bench/k6-shim, which emulates
// k6/http, k6/ws, k6/metrics and k6 in Node: every scenario runs, every check passes, every
// threshold is evaluated on real samples and holds.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import ts from 'typescript';
import { SERVER_DEFAULTS } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/server/start.js';
import { STREAM_PATH } from '../../src/server/stream-ws.js';
// @ts-expect-error: a plain .mjs module of the shim, without types
import { evaluateThresholds, validateOptions } from './k6-shim/validate.mjs';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K6 = join(ROOT, 'k6');
const SCRIPTS = ['completions.js', 'stream-ws.js', 'mixed.js'];
const ALLOWED_IMPORTS = new Set(['k6', 'k6/http', 'k6/ws', 'k6/metrics', './lib.js']);
const read = (f: string) => readFileSync(join(K6, f), 'utf8');

describe('k6 scripts: static checks', () => {
  test('the k6 folder holds the three scripts and lib.js', () => {
    assert.deepEqual(readdirSync(K6).filter((f) => f.endsWith('.js')).sort(), ['completions.js', 'lib.js', 'mixed.js', 'stream-ws.js']);
  });

  for (const file of [...SCRIPTS, 'lib.js']) {
    test(`${file}: parses, imports only k6 modules, no syntax newer than k6 takes`, async () => {
      const text = read(file);
      const out = ts.transpileModule(text, { fileName: file, reportDiagnostics: true, compilerOptions: { allowJs: true, module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2020 } });
      assert.deepEqual((out.diagnostics ?? []).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), []);
      await run(process.execPath, ['--check', join(K6, file)]); // early errors (duplicate declarations...) too
      const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.JS);
      const imports: string[] = [];
      const newer: string[] = [];
      const visit = (n: ts.Node) => {
        if (ts.isImportDeclaration(n)) imports.push((n.moduleSpecifier as ts.StringLiteral).text);
        if ((ts.isPropertyAccessExpression(n) || ts.isElementAccessExpression(n) || ts.isCallExpression(n)) && n.questionDotToken) newer.push(`?. at ${n.getStart()}`);
        if (ts.isBinaryExpression(n) && (n.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken || n.operatorToken.kind === ts.SyntaxKind.QuestionQuestionEqualsToken)) newer.push(`?? at ${n.getStart()}`);
        if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) newer.push('dynamic import');
        if (ts.isIdentifier(n) && ['require', 'process', 'setTimeout', 'fetch'].includes(n.text) && !ts.isPropertyAccessExpression(n.parent)) newer.push(`${n.text} (not in k6)`);
        ts.forEachChild(n, visit);
      };
      visit(sf);
      assert.deepEqual(newer, []);
      for (const i of imports) assert.ok(ALLOWED_IMPORTS.has(i), `${file} imports ${i}`);
      if (file !== 'lib.js') {
        assert.match(text, /^export const options = \{/m);
        assert.match(text, /thresholds: \{/);
        assert.match(text, /^export function setup\(\)/m);
      }
    });
  }

  test('the scripts use the server\'s real routes and WebSocket message types', () => {
    const lib = read('lib.js');
    assert.ok(lib.includes(`'${STREAM_PATH}'`));
    assert.ok(lib.includes("'/v1/completions'") && lib.includes("'/v1/models'"));
    for (const type of ['generate', 'chunk', 'done', 'error']) {
      assert.ok(lib.includes(`type === '${type}'`) || lib.includes(`type: '${type}'`), type);
      assert.ok(readFileSync(join(ROOT, 'docs/websocket.md'), 'utf8').includes(`"type": "${type}"`), `docs/websocket.md has ${type}`);
    }
    for (const field of ['token_ids', 'finish_reason', 'completion_tokens']) assert.ok(readFileSync(join(ROOT, 'docs/websocket.md'), 'utf8').includes(field));
    assert.ok(lib.includes('stream_options') && lib.includes('include_usage'));
  });

  test('the options validator refuses what k6 would refuse', () => {
    const fn = () => {};
    const good = { scenarios: { a: { executor: 'constant-vus', vus: 1, duration: '10s' } }, thresholds: { http_req_failed: ['rate<0.01'] } };
    assert.deepEqual(validateOptions(good, { default: fn }, new Map()), []);
    const bad = {
      scenarios: {
        a: { executor: 'constant-arrival-rate', rate: 0.5, duration: '1 minute', preAllocatedVUs: 1, maxVUs: 4 },
        b: { executor: 'ramping-vus', stages: [{ duration: '5s', target: 2 }], exec: 'missing', vus: 3 },
        c: { executor: 'nope' },
      },
      thresholds: { http_req_duration: ['rate<1'], 'custom{scenario:zz}': ['p(95)<1'], checks: ['p95 < 3'] },
    };
    const problems = validateOptions(bad, { default: fn }, new Map()) as string[];
    for (const re of [/rate must be a whole number/, /duration is not a duration/, /exec missing/, /ramping-vus has no field vus/, /unknown executor nope/,
      /rate does not apply to a trend/, /no metric custom/, /no scenario zz/, /cannot parse "p95 < 3"/]) {
      assert.ok(problems.some((p) => re.test(p)), `${re} in ${JSON.stringify(problems)}`);
    }
    const metrics = new Map([['t', { type: 'trend', samples: [1, 2, 3, 4].map((value) => ({ value, tags: { scenario: 's' } })) }]]);
    const r = evaluateThresholds({ 't{scenario:s}': ['p(50)<3', 'max<=3'], 't{scenario:x}': ['avg<1'] }, metrics, 1) as { pass: boolean; value: number; samples: number }[];
    assert.deepEqual(r.map((x) => [x.value, x.pass, x.samples]), [[2.5, true, 4], [4, false, 4], [0, false, 0]]);
  });
});

interface ShimResult {
  problems: string[];
  errors: string[];
  ran: Record<string, number>;
  thresholds: { key: string; expr: string; value: number; pass: boolean; samples: number }[];
  checks: Record<string, { passes: number; fails: number }>;
  metrics: Record<string, { type: string; count: number; values: number[] }>;
}

describe('k6 scripts against a real server (k6 emulated in Node)', () => {
  const KEY = 'k6-test-key';
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ...SERVER_DEFAULTS, host: '127.0.0.1', port: 0, intraOpThreads: 1, logLevel: 'silent', apiKeys: [KEY] });
  });
  after(() => server.drain());

  async function k6(script: string, env: Record<string, string>): Promise<ShimResult> {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, 'test/bench/k6-shim/run.mjs'), join(K6, script)], {
      env: { ...process.env, K6_SHIM_ENV: JSON.stringify({ BASE_URL: server.url, API_KEY: KEY, MAX_TOKENS: '8', ...env }) },
      timeout: 120_000,
    });
    const line = stdout.split('\n').find((l) => l.startsWith('K6SHIM_RESULT '));
    assert.ok(line, `no result from ${script}: ${stdout}\n${stderr}`);
    return JSON.parse(line.slice('K6SHIM_RESULT '.length)) as ShimResult;
  }

  function assertClean(r: ShimResult, scenarios: string[]) {
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(Object.keys(r.ran).sort(), [...scenarios].sort());
    for (const s of scenarios) assert.equal(r.ran[s], 1, s);
    assert.ok(Object.keys(r.checks).length > 0);
    for (const [name, c] of Object.entries(r.checks)) assert.equal(c.fails, 0, `check failed: ${name}`);
    for (const t of r.thresholds) {
      assert.ok(t.samples > 0, `threshold ${t.key} ${t.expr} saw no samples`);
      assert.ok(t.pass, `threshold ${t.key} ${t.expr} failed with ${t.value}`);
    }
  }

  test('completions.js: constant arrival rate of whole completions', async () => {
    const r = await k6('completions.js', { RATE: '0.5', DURATION: '10s', P95_MS: '60000', P99_MS: '60000' });
    assertClean(r, ['completions']);
    assert.deepEqual(r.metrics.output_tokens!.values, [8]);
    assert.equal(r.metrics.ms_per_output_token!.count, 1);
    assert.ok(r.thresholds.some((t) => t.key === 'http_req_failed{scenario:completions}'));
  });

  test('stream-ws.js: WebSocket chunks timed (given MODEL)', async () => {
    const r = await k6('stream-ws.js', { MODEL: server.ctx.served.id, GENERATIONS: '2', TTFC_P95_MS: '60000', TBC_P95_MS: '60000' });
    assertClean(r, ['stream']);
    assert.equal(r.metrics.time_to_first_chunk!.count, 2);
    assert.ok(r.metrics.time_between_chunks!.count >= 2); // 8 tokens = 2 chunks of K = 4 per generation
    assert.deepEqual(r.metrics.output_tokens!.values, [8, 8]);
    assert.deepEqual(r.metrics.ws_errors!.values, [0, 0]);
    assert.equal(r.metrics.ws_sessions!.count, 1);
  });

  test('mixed.js: completions, SSE and WebSocket scenarios in one run', async () => {
    const r = await k6('mixed.js', { GENERATIONS: '1', COMPLETIONS_P95_MS: '60000', TTFT_P95_MS: '60000', TTFC_P95_MS: '60000', TBC_P95_MS: '60000' });
    assertClean(r, ['completions', 'sse', 'websocket']);
    assert.equal(r.metrics.sse_time_to_first_byte!.count, 1);
    assert.ok(r.metrics.sse_events!.values[0]! >= 3); // content events and the usage chunk
    assert.deepEqual(r.metrics.sse_errors!.values, [0]);
    assert.deepEqual(r.metrics.output_tokens!.values, [8, 8, 8]);
    assert.equal(r.metrics.time_to_first_chunk!.count, 1);
  });

  test('without the API key every request fails and the thresholds say so', async () => {
    const r = await k6('stream-ws.js', { API_KEY: '', MODEL: server.ctx.served.id, GENERATIONS: '1' });
    assert.deepEqual(r.errors, []);
    assert.ok(r.checks['ws: upgraded (101)']!.fails === 1);
    assert.ok(r.thresholds.some((t) => t.key === 'ws_errors' && !t.pass));
  });
});
