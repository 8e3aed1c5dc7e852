// The Dockerfile and .dockerignore, checked without a Docker engine: the Dockerfile parses and
// lints clean (dockerfile-utils, the checker behind VS Code's Docker support); it runs the
// package's own npm scripts; everything it COPYs exists and passes .dockerignore (matched with
// Docker's rules); its port, environment, command and HEALTHCHECK agree with the server, and the
// HEALTHCHECK command itself is run against a stub server.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { envName, loadConfig, OPTIONS, SERVER_DEFAULTS } from '../../src/config.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const TEXT = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const dockerfile = DockerfileParser.parse(TEXT);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  engines: { node: string };
  allowScripts: Record<string, boolean>;
};
const SERVER_ENV = new Set(OPTIONS.flatMap((o) => [envName(o.flag), ...(o.alias ? [o.alias] : [])]));

interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** The build stages in order, each with its own instructions (FROM included). */
const stages: Stage[] = (() => {
  const out: Stage[] = [];
  for (const ins of dockerfile.getInstructions()) {
    if (ins.getKeyword() === 'FROM') {
      const args = ins.getArguments().map((a) => a.getValue());
      assert.ok(args.length === 3 && args[1]!.toUpperCase() === 'AS', `every stage is named: FROM ${args.join(' ')}`);
      out.push({ name: args[2]!, from: args[0]!, instructions: [ins] });
    } else if (out.length > 0) out.at(-1)!.instructions.push(ins);
  }
  return out;
})();
const stage = (name: string): Stage => {
  const s = stages.find((x) => x.name === name);
  assert.ok(s, `stage ${name}`);
  return s;
};
const RUNTIME = ['cpu', 'gpu', 'cuda'];
/** The execution provider each runtime image selects (CALM_DEVICE, or the server's default). */
const DEVICE: Record<string, string> = { cpu: 'cpu', gpu: 'webgpu', cuda: 'cuda' };

/** `npm start` as the environment it sets and the command it runs: `A=1 B=2 node ...`. */
const START = (() => {
  const words = pkg.scripts.start.split(' ');
  const env: Record<string, string> = {};
  while (/^[A-Z_][A-Z0-9_]*=/.test(words[0] ?? '')) {
    const [k, ...v] = words.shift()!.split('=');
    env[k!] = v.join('=');
  }
  return { env, argv: words };
})();

const keyword = (s: Stage, kw: string) => s.instructions.filter((i) => i.getKeyword() === kw);
const args = (i: Instruction) => i.getArguments().map((a) => a.getValue());
/** The instructions of a stage and the stages it is built FROM, base first. */
function lineage(s: Stage): Instruction[] {
  const parent = stages.find((x) => x.name === s.from && stages.indexOf(x) < stages.indexOf(s));
  return [...(parent ? lineage(parent) : []), ...s.instructions.slice(1)];
}
function stageEnv(s: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of lineage(s)) {
    if (i.getKeyword() !== 'ENV') continue;
    for (const p of (i as unknown as { getProperties(): { getName(): string; getValue(): string | null }[] }).getProperties()) env[p.getName()] = p.getValue() ?? '';
  }
  return env;
}
function jsonForm(i: Instruction): string[] {
  const content = i.getArgumentsContent() ?? '';
  const json = content.slice(content.indexOf('['));
  return JSON.parse(json) as string[];
}
const ARG_DEFAULTS = Object.fromEntries(
  dockerfile.getInitialARGs().map((a) => {
    const p = a.getProperty();
    return [p?.getName() ?? '', p?.getValue() ?? ''];
  }),
);
const expand = (s: string) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => ARG_DEFAULTS[(a ?? b)!] ?? '');

// ---- .dockerignore with Docker's rules (moby/patternmatcher) -----------------------------------

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') {
        i++;
        re += '(?:.*/)?';
      } else re += '.*';
    } else if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i);
      re += pattern.slice(i, end + 1);
      i = end;
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const IGNORE = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))
  .map((l) => {
    const exclusion = l.startsWith('!');
    const clean = (exclusion ? l.slice(1) : l).trim().replace(/^\/+/, '').replace(/\/+$/, '');
    return { exclusion, re: globToRegExp(clean) };
  });

/** Whether Docker leaves path (relative to the context) out of the build context. */
function ignored(path: string): boolean {
  const parts = path.split('/');
  let out = false;
  for (const p of IGNORE) {
    // A pattern matches the path or any of its parent directories.
    const hit = parts.some((_, i) => p.re.test(parts.slice(0, i + 1).join('/')));
    if (hit) out = !p.exclusion;
  }
  return out;
}

function filesUnder(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).flatMap((n) => filesUnder(join(path, n)));
}

// ---- tests ------------------------------------------------------------------------------------

test('the Dockerfile parses and lints clean', () => {
  const problems = validate(TEXT).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
  assert.deepEqual(problems, []);
  assert.deepEqual(
    stages.map((s) => s.name),
    ['node', 'build', 'deps', 'cuda-deps', 'cuda', 'gpu', 'cpu'],
  );
  for (const s of stages) {
    const parent = stages.find((x) => x.name === s.from);
    if (parent) assert.ok(stages.indexOf(parent) < stages.indexOf(s), `${s.name} is built FROM the later stage ${s.from}`);
    else assert.match(expand(s.from), /^[\w.-]+(\/[\w.-]+)*:[\w.-]+$/, `${s.name}: FROM ${s.from} pins a tag`);
  }
});

test('the default target is the CPU image on an LTS node:N-bookworm-slim that package.json engines admits; gpu adds the Vulkan loader; cuda has CUDA 12 with cuDNN', () => {
  assert.equal(stages.at(-1)!.name, 'cpu', '`docker build .` builds the last stage: the CPU image');
  const node = expand(stage('node').from);
  assert.match(node, /^node:(\d+)-bookworm-slim$/);
  const major = Number(node.match(/^node:(\d+)/)![1]);
  assert.ok(major >= Number(/^>=\s*(\d+)$/.exec(pkg.engines.node)![1]), `node ${major} is admitted by engines ${pkg.engines.node}`);
  assert.equal(major % 2, 0, 'an even major: only those become LTS lines');
  // One Node.js for every image: the CUDA image takes the node binary of the same stage (float16
  // bundles run on Node 24 too: src/model/ort.ts).
  const nodeCopy = keyword(stage('cuda'), 'COPY').find((c) => args(c).join(' ') === '/usr/local/bin/node /usr/local/bin/node');
  assert.ok(nodeCopy, 'the CUDA image takes its node binary');
  assert.equal((nodeCopy as unknown as { getFromFlag(): { getValue(): string } | null }).getFromFlag()?.getValue(), 'node', 'from the node stage');
  assert.equal(stage('cpu').from, 'node');
  assert.equal(stage('gpu').from, 'node', 'the gpu image is the CPU image plus the Vulkan loader');
  const gpuRuns = keyword(stage('gpu'), 'RUN').map((i) => args(i).join(' '));
  assert.equal(gpuRuns.length, 1);
  assert.match(gpuRuns[0]!, /^apt-get update && apt-get install -y --no-install-recommends libvulkan1 && rm -rf \/var\/lib\/apt\/lists\/\*$/, 'gpu: Debian\'s libvulkan1, nothing recommended, no package lists left');
  const gpuEnv = stageEnv(stage('gpu'));
  assert.equal(gpuEnv.NVIDIA_VISIBLE_DEVICES, 'all');
  // The NVIDIA container toolkit mounts the driver's Vulkan ICD only for the graphics capability.
  assert.deepEqual(gpuEnv.NVIDIA_DRIVER_CAPABILITIES?.split(',').sort(), ['compute', 'graphics', 'utility']);
  assert.match(expand(stage('cuda').from), /^nvidia\/cuda:12\.[\d.]+-cudnn-runtime-ubuntu\d+\.\d+$/);
});

test('the build runs the same npm commands as CI, and only scripts package.json has', () => {
  const runs = stages.flatMap((s) => keyword(s, 'RUN').map((i) => ({ stage: s.name, cmd: args(i).join(' ') })));
  for (const { stage: s, cmd } of runs) {
    for (const m of cmd.matchAll(/npm run (\S+)/g)) assert.ok(pkg.scripts[m[1]!], `${s}: npm run ${m[1]} is not a script of package.json`);
    for (const m of cmd.matchAll(/npm (start|test)\b/g)) assert.ok(pkg.scripts[m[1]!], `${s}: npm ${m[1]}`);
  }
  const build = runs.filter((r) => r.stage === 'build').map((r) => r.cmd);
  assert.ok(build.some((c) => /^npm ci\b/.test(c)), 'build: npm ci');
  assert.ok(build.includes('npm run build'), 'build: npm run build');
  // the compiler, then the execute bit on the CLI (the package's bin, which `npx calm` runs)
  assert.match(pkg.scripts.build, /^tsc -p tsconfig\.json && .*chmodSync\('dist\/cli\.js', 0o755\)/);
  const deps = runs.filter((r) => r.stage === 'deps').map((r) => r.cmd);
  assert.ok(deps.some((c) => /^npm ci --omit=dev --ignore-scripts\b/.test(c)), 'deps: production dependencies only');
  const cuda = runs.filter((r) => r.stage === 'cuda-deps').map((r) => r.cmd);
  // package.json's allowScripts denies onnxruntime-node's install script (a CUDA download), which
  // `npm rebuild` honours too: the cuda build runs the script itself.
  assert.ok(cuda.some((c) => c.startsWith('ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install')), 'cuda-deps: the CUDA 12 provider');
  assert.ok(existsSync(join(ROOT, 'node_modules/onnxruntime-node/script/install.js')), 'the install script the cuda build runs');
  assert.ok(pkg.dependencies['onnxruntime-node'], 'onnxruntime-node is a runtime dependency');
  assert.equal(pkg.allowScripts['onnxruntime-node'], false, 'npm never runs the CUDA download on its own');
});

test('every COPY source exists, passes .dockerignore, and the runtime images hold what the server loads', () => {
  for (const s of stages) {
    for (const copy of keyword(s, 'COPY')) {
      const from = (copy as unknown as { getFromFlag(): { getValue(): string } | null }).getFromFlag()?.getValue();
      const a = args(copy);
      const sources = a.slice(0, -1);
      if (from) {
        const src = stages.find((x) => x.name === from);
        assert.ok(src && stages.indexOf(src) < stages.indexOf(s), `${s.name}: COPY --from=${from} is not an earlier stage`);
        continue;
      }
      for (const source of sources) {
        const path = join(ROOT, source);
        assert.ok(existsSync(path), `${s.name}: COPY ${source}: not in the repository`);
        const files = filesUnder(path).map((f) => relative(ROOT, f));
        const kept = files.filter((f) => !ignored(f));
        assert.ok(kept.length > 0, `${s.name}: COPY ${source}: .dockerignore leaves it out`);
        if (!statSync(path).isDirectory()) assert.deepEqual(kept, files, `${s.name}: COPY ${source}`);
      }
    }
  }
  // What must reach the image, and what must not.
  const bundles = [DEFAULT_MODEL_DIR, DEFAULT_AR_MODEL_DIR].map((d) => relative(ROOT, d));
  assert.deepEqual(bundles, ['models/bundles/calm-k4', 'models/bundles/ar-baseline']);
  for (const b of bundles) for (const f of filesUnder(join(ROOT, b))) assert.ok(!ignored(relative(ROOT, f)), `${relative(ROOT, f)} is left out`);
  for (const f of filesUnder(join(ROOT, 'src'))) assert.ok(!ignored(relative(ROOT, f)), `${relative(ROOT, f)} is left out`);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json']) assert.ok(!ignored(f), `${f} is left out`);
  for (const f of [
    'node_modules/fastify/package.json',
    'dist/cli.js',
    '.git/HEAD',
    'models/data/train.bin',
    'models/runs/calm/ckpt.pt',
    'models/calmtk/export.py',
    'models/tests/test_export.py',
    'models/bundles/calm-k4-fp16/backbone.onnx',
    'test/config.test.ts',
    'deploy/base/deployment.yaml',
    'bundle-fp16/backbone.onnx',
  ]) {
    assert.ok(ignored(f), `${f} would be sent to the Docker daemon`);
  }
  for (const name of RUNTIME) {
    const copies = keyword(stage(name), 'COPY').map((i) => args(i).join(' '));
    assert.ok(copies.includes('models/bundles ./models/bundles'), `${name}: the bundles at /app/models/bundles, where DEFAULT_MODEL_DIR points`);
    assert.ok(copies.includes('package.json ./'), `${name}: package.json ("type": "module" for dist/)`);
    assert.ok(copies.includes('/app/dist ./dist'), `${name}: dist/`);
    assert.ok(copies.includes('/app/node_modules ./node_modules'), `${name}: node_modules/`);
    assert.ok(!copies.some((c) => /\bmodels\/(calmtk|data|runs|tests)\b|^models /.test(c)), `${name}: only the bundles of models/`);
  }
});

test('the command is `npm start`, run by node directly, from the compiled CLI, with its environment', () => {
  assert.deepEqual(START.argv.filter((a) => !a.startsWith('--')), ['node', 'dist/cli.js', 'serve']);
  const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
  assert.equal(tsconfig.compilerOptions.outDir, 'dist');
  assert.equal(tsconfig.compilerOptions.rootDir, 'src');
  assert.ok(existsSync(join(ROOT, 'src/cli.ts')), 'dist/cli.js is compiled from src/cli.ts');
  for (const name of RUNTIME) {
    const cmds = keyword(stage(name), 'CMD');
    assert.equal(cmds.length, 1);
    assert.deepEqual(jsonForm(cmds[0]!), START.argv, `${name}: CMD`);
    const env = stageEnv(stage(name));
    for (const [k, v] of Object.entries(START.env)) assert.equal(env[k], v, `${name}: ENV ${k}=${v}, as npm start sets it`);
    assert.equal(keyword(stage(name), 'ENTRYPOINT').length, 0, `${name}: no ENTRYPOINT in front of it`);
    const workdir = lineage(stage(name)).filter((i) => i.getKeyword() === 'WORKDIR').map((i) => args(i)[0]);
    assert.equal(workdir.at(-1), '/app');
  }
});

test('port, environment, user and stop signal agree with the server', () => {
  for (const name of RUNTIME) {
    const s = stage(name);
    const expose = keyword(s, 'EXPOSE').map((i) => args(i).join(' '));
    assert.deepEqual(expose, [String(SERVER_DEFAULTS.port)], `${name}: EXPOSE the default port`);
    const env = stageEnv(s);
    for (const k of Object.keys(env).filter((k) => k.startsWith('CALM_') || k === 'HOST' || k === 'PORT')) assert.ok(SERVER_ENV.has(k), `${name}: ENV ${k} is not a server option`);
    const config = loadConfig([], env);
    assert.equal(config.port, SERVER_DEFAULTS.port, `${name}: listens on the exposed port`);
    assert.equal(config.host, '0.0.0.0', `${name}: listens on every interface`);
    assert.equal(config.device, DEVICE[name], `${name}: CALM_DEVICE`);
    // The image must not shadow CALM_PORT/CALM_HOST with the PORT/HOST aliases, which win.
    assert.equal(env.PORT, undefined, `${name}: set CALM_PORT, not PORT`);
    assert.equal(env.HOST, undefined, `${name}: set CALM_HOST, not HOST`);
    assert.equal(loadConfig([], { ...env, CALM_PORT: '9000' }).port, 9000, `${name}: CALM_PORT still overrides`);
    const users = keyword(s, 'USER').map((i) => args(i)[0]!);
    assert.equal(users.length, 1, `${name}: one USER`);
    assert.match(users[0]!, /^[1-9]\d*(:\d+)?$/, `${name}: a numeric non-root user (Kubernetes runAsNonRoot can check it)`);
    assert.deepEqual(keyword(s, 'STOPSIGNAL').map((i) => args(i)[0]), ['SIGTERM'], `${name}: SIGTERM starts the drain`);
    assert.ok(keyword(s, 'RUN').every((i) => !/\b(chown|chmod)\b/.test(args(i).join(' '))), `${name}: the app stays root-owned and read-only`);
  }
  assert.equal(stageEnv(stage('cuda')).CUDA_CACHE_PATH?.startsWith('/tmp/'), true, 'cuda: the kernel cache goes to the writable /tmp');
  assert.equal(stageEnv(stage('gpu')).XDG_CACHE_HOME?.startsWith('/tmp/'), true, 'gpu: the Vulkan shader caches go to the writable /tmp');
});

test('memory: npm start and every runtime image cap the main thread\'s young generation and glibc\'s malloc arenas', () => {
  // docs/benchmarks.md, "Memory over many requests": +24 to +34 % RSS after 10,000 requests
  // without these, +10 to +12 % (then flat) with them, at no throughput cost. The engine
  // thread's own young generation is capped in src/engine/client.ts.
  assert.equal(START.env.MALLOC_ARENA_MAX, '2', 'npm start: MALLOC_ARENA_MAX=2');
  assert.ok(START.argv.includes('--max-semi-space-size=2'), 'npm start: node --max-semi-space-size=2');
  assert.ok(START.argv.indexOf('--max-semi-space-size=2') < START.argv.indexOf('dist/cli.js'), 'a node flag, before the script');
  for (const name of RUNTIME) {
    const env = stageEnv(stage(name));
    assert.equal(env.MALLOC_ARENA_MAX, '2', `${name}: ENV MALLOC_ARENA_MAX=2`);
    const cmd = jsonForm(keyword(stage(name), 'CMD')[0]!);
    const flags = [...cmd, ...(env.NODE_OPTIONS ?? '').split(/\s+/)];
    assert.ok(flags.includes('--max-semi-space-size=2'), `${name}: node runs with --max-semi-space-size=2 (CMD or NODE_OPTIONS)`);
  }
  // node accepts the flag on its command line and in NODE_OPTIONS (which admits only some V8 flags).
  for (const [argv, extra] of [[['--max-semi-space-size=2'], {}], [[], { NODE_OPTIONS: '--max-semi-space-size=2' }]] as const) {
    const res = spawnSync(process.execPath, [...argv, '-p', "process.execArgv.join(' ') + '|' + (process.env.NODE_OPTIONS ?? '')"], { env: { PATH: process.env.PATH ?? '', ...extra }, encoding: 'utf8' });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /--max-semi-space-size=2/);
  }
});

test('HEALTHCHECK: GET /health with node (no curl in slim images), on the port the server listens on', async () => {
  for (const name of RUNTIME) {
    const checks = keyword(stage(name), 'HEALTHCHECK');
    assert.equal(checks.length, 1, `${name}: one HEALTHCHECK`);
    const cmd = jsonForm(checks[0]!);
    assert.equal(cmd[0], 'node');
    assert.equal(cmd[1], '-e');
    assert.match(cmd[2]!, /\/health'/);
    assert.doesNotMatch(cmd.join(' '), /\b(curl|wget)\b/);
    const flags = Object.fromEntries(
      (checks[0] as unknown as { getFlags(): { getName(): string; getValue(): string }[] }).getFlags().map((f) => [f.getName(), f.getValue()]),
    );
    assert.ok(flags['start-period'] && flags.interval && flags.timeout, `${name}: interval, timeout and start period`);
  }
  // Run the command against a stub: 200 on /health -> exit 0; 503 -> 1; nothing listening -> 1.
  const script = jsonForm(keyword(stage('cpu'), 'HEALTHCHECK')[0]!)[2]!;
  let status = 200;
  const seen: string[] = [];
  const stub = createServer((req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(req.url === '/health' ? status : 404).end('{}');
  });
  await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
  const port = (stub.address() as AddressInfo).port;
  const env = stageEnv(stage('cpu'));
  const run = (extra: Record<string, string>) =>
    new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', script], { env: { PATH: process.env.PATH ?? '', ...env, ...extra }, stdio: 'ignore' });
      child.on('exit', (code) => resolve(code ?? -1));
    });
  try {
    assert.equal(await run({ CALM_PORT: String(port) }), 0, 'healthy via CALM_PORT');
    assert.equal(await run({ PORT: String(port), CALM_PORT: '1' }), 0, 'PORT wins over CALM_PORT, as in the server');
    status = 503;
    assert.equal(await run({ CALM_PORT: String(port) }), 1, 'unhealthy on 503');
    assert.deepEqual(seen, ['/health', '/health', '/health']);
  } finally {
    await new Promise((r) => stub.close(r));
  }
  assert.equal(await run({ CALM_PORT: String(port) }), 1, 'unhealthy when nothing listens');
});
