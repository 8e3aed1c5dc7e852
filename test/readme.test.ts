// Every shell and JavaScript example of README.md, run as written from this clone against a
// started server (localhost:8000 becomes its address). A command is skipped only by a rule below
// that says why (long-running, a GPU, placeholders) or when the tool it needs is missing (a WebGPU
// example runs wherever there is an adapter, lavapipe included); a README command no rule knows
// runs, so a new example is tested by default. Every repository path an example names must
// exist, and none may reach outside the clone.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OPTIONS, SERVER_DEFAULTS } from '../src/config.js';
import { type RunningServer, startServer } from '../src/server/start.js';
import { skipWithout, TOOLS } from './support/tools.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

interface Example {
  lang: 'bash' | 'js';
  code: string;
}

/** The README's code blocks; shell blocks one command per entry (continuation lines joined). */
function examples(): Example[] {
  const out: Example[] = [];
  for (const m of README.matchAll(/^```(bash|js)\n([\s\S]*?)^```$/gm)) {
    const [, lang, body] = m as unknown as [string, 'bash' | 'js', string];
    if (lang === 'js') {
      out.push({ lang, code: body });
      continue;
    }
    for (const command of body.replace(/\\\n\s*/g, '').split('\n').map((l) => l.trim()).filter(Boolean)) out.push({ lang, code: command });
  }
  return out;
}

/** Why a command is not run here; `undefined`: it runs. */
const RULES: [RegExp, () => string | false][] = [
  [/^npm ci && npm start\b/, () => 'installs and starts a server that runs until stopped (this test starts its own)'],
  [/^(\w+=\S+ )*(npm start|node .*dist\/cli\.js serve|npx calm serve)\b/, () => 'starts a server that runs until stopped (this test starts its own)'],
  [/^bash scripts\/gpu-kit\.sh\b/, () => 'downloads a Node.js binary (npm) and libvulkan1 (apt) to pack the GPU check'],
  [/^npm run check:gpu\b/, () => 'needs an NVIDIA GPU (it asserts that the adapter is not lavapipe) and the kit gpu-kit.sh packs'],
  [/--device webgpu/, () => skipWithout(TOOLS.webgpu)],
  [/^docker .*--gpus\b/, () => 'needs a GPU and the NVIDIA container toolkit'],
  [/^npm ci && npm test\b/, () => 'the test suite this test is part of'],
  [/^npm run bench:engine\b/, () => 'a benchmark: it keeps every core busy (run it on purpose)'],
  [/^npx calm bench\b/, () => 'a benchmark: full load at four concurrencies, and it writes bench.json and bench.svg'],
  [/ONNXRUNTIME_NODE_INSTALL=cuda12|--device cuda/, () => 'needs an NVIDIA GPU with CUDA 12 and cuDNN 9 (and downloads its onnxruntime provider)'],
  [/calmtk\.export .*--ae AE/, () => "needs the authors' checkpoints (AE_DIR, CALM_DIR and the tokenizer are placeholders)"],
  [/^npx calm inspect my-bundle\b/, () => 'inspects the bundle that the export before it writes'],
  [/^docker /, () => skipWithout(TOOLS.docker)],
  [/^kubectl /, () => skipWithout(TOOLS.kubectl)],
  [/^k6 /, () => skipWithout(TOOLS.k6)],
  [/^curl /, () => skipWithout(TOOLS.curl)],
];

function skipReason(command: string): string | false {
  for (const [match, reason] of RULES) if (match.test(command)) return reason();
  return false;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} still running after ${timeoutMs} ms (an example must end on its own)\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Node.js older than package.json's engines (20, still on some machines and in CI here):
 * npm's EBADENGINE warning is then the truthful answer, not a fault of the example.
 */
const BELOW_ENGINES = Number(process.versions.node.split('.')[0]) < Number(/\d+/.exec((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node)![0]);

/** npm warnings about this project (not about the user's own ~/.npmrc) fail the example. */
function assertNoProjectWarnings(stderr: string): void {
  const warnings = stderr.split('\n').filter((l) => /^npm warn/i.test(l) && !/Unknown (user|global|env) config/.test(l) && !(BELOW_ENGINES && /EBADENGINE/.test(l)));
  assert.deepEqual(warnings, [], 'npm prints no warning');
}

/** Rebuilds dist/ when a source is newer than its output: `npx calm` runs dist/cli.js. */
async function freshDist(): Promise<void> {
  const stale = (dir: string): boolean => readdirSync(dir).some((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return stale(path);
    if (!name.endsWith('.ts')) return false;
    const out = join(ROOT, 'dist', relative(join(ROOT, 'src'), path).replace(/\.ts$/, '.js'));
    return !existsSync(out) || statSync(out).mtimeMs < statSync(path).mtimeMs;
  });
  if (!stale(join(ROOT, 'src'))) return;
  const built = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], ROOT, 300_000);
  assert.equal(built.code, 0, `tsc: ${built.stdout}${built.stderr}`);
}

test('the README names only paths that exist in a clone', () => {
  for (const { code } of examples()) {
    // (an export may write next to the clone: --out ../my-bundle)
    assert.doesNotMatch(code.replace(/--out \S+/g, ''), /(^|\s|=)\.\.\//, `reads outside the clone: ${code}`);
    for (const m of code.matchAll(/(?:^|[\s=])((?:models|test|k6|deploy|docs|src)\/[\w./-]*\w)/g)) {
      assert.ok(existsSync(join(ROOT, m[1]!)), `${m[1]} (in: ${code}) is not in the repository`);
    }
  }
});

test('the README lists every server option with its environment variable', () => {
  const rows = [...README.matchAll(/^\| `--([a-z-]+)` \| ([^|]*) \|/gm)].map((m) => [m[1]!, m[2]!] as const);
  assert.deepEqual(rows.map(([flag]) => flag).sort(), OPTIONS.map((o) => o.flag).sort());
  for (const [flag, env] of rows) assert.ok(env.includes(`CALM_${flag.toUpperCase().replace(/-/g, '_')}`), `--${flag}: ${env}`);
});

describe('README examples, run against a started server', () => {
  let server: RunningServer;
  let host: string;
  before(async () => {
    await freshDist();
    server = await startServer({ ...SERVER_DEFAULTS, host: '127.0.0.1', port: 0, intraOpThreads: 1, logLevel: 'silent' });
    host = new URL(server.url).host;
  });
  after(() => server?.drain());
  const local = (code: string) => code.replaceAll('localhost:8000', host);

  for (const [i, example] of examples().entries()) {
    const title = `${example.lang} ${i + 1}: ${example.code.split('\n')[0]!.slice(0, 100)}`;
    if (example.lang === 'js') {
      test(title, async () => {
        const dir = mkdtempSync(join(tmpdir(), 'calm-readme-'));
        try {
          writeFileSync(join(dir, 'stream.mjs'), local(example.code));
          // As the README says: Node 22 and later have WebSocket built in, Node 20 behind a flag.
          const flags = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket'] : [];
          const res = await run(process.execPath, [...flags, 'stream.mjs'], dir, 60_000);
          assert.equal(res.code, 0, res.stderr);
          assert.match(res.stdout, /type: 'chunk'/);
          assert.match(res.stdout, /type: 'done'[\s\S]*finish_reason: 'length'/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
      continue;
    }
    const skip = skipReason(example.code);
    test(title, { skip }, async () => {
      const res = await run('bash', ['-c', local(example.code)], ROOT, 180_000);
      assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`);
      assert.ok(res.stdout.trim().length > 0, 'it printed something');
      assertNoProjectWarnings(res.stderr);
      if (example.code.startsWith('curl')) {
        // max_tokens 32; the model may write EOS before (finish_reason "stop")
        let tokens: number;
        if (example.code.includes('"stream": true')) {
          tokens = Number(/"usage":\{"prompt_tokens":\d+,"completion_tokens":(\d+)/.exec(res.stdout)?.[1]);
          assert.ok(res.stdout.trimEnd().endsWith('data: [DONE]'));
        } else tokens = (JSON.parse(res.stdout) as { usage: { completion_tokens: number } }).usage.completion_tokens;
        assert.ok(tokens >= 1 && tokens <= 32, `${tokens} completion tokens`);
      }
    });
  }
});
