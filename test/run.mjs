#!/usr/bin/env node
// `npm test`: the TypeScript tests (node:test through tsx) and the model toolkit's pytest suite.
// The Python suite needs Debian's torch; without it this says so plainly and skips it, and CI
// (.ci/run) installs it and requires it (CALM_REQUIRE_TOOLS, test/support/tools.mjs).
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { skipWithout, TOOLS } from './support/tools.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const PYTHON = TOOLS.torch.probe[0];

function findTests(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'support' ? [] : findTests(path);
    return name.endsWith('.test.ts') ? [relative(root, path)] : [];
  });
}

function run(cmd, args, env = {}) {
  console.log(`\n$ ${cmd} ${args.join(' ')}`);
  return spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1;
}

const results = [];
if (!only || only === 'ts') {
  // Emitting dist/ (not --noEmit): the README's examples run `npx calm`, which runs dist/cli.js.
  results.push(['typecheck and build', run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'])]);
  // tsc writes files without the execute bit; `npx calm` runs dist/cli.js as the package's bin
  chmodSync(join(root, 'dist/cli.js'), 0o755);
  const files = findTests(join(root, 'test')).sort();
  results.push(['typescript', run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...files])]);
  // The engine's tests once more with every graph on WebGPU (lavapipe where there is no GPU: minutes).
  let skip;
  try {
    skip = skipWithout(TOOLS.webgpu);
  } catch (err) {
    console.log(`\nFAILED the engine tests on WebGPU: ${err.message}`);
    skip = null;
  }
  if (skip === false) {
    results.push(['engine on webgpu', run(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', 'test/engine/engine.test.ts'], { CALM_TEST_DEVICE: 'webgpu' })]);
  } else if (skip === null) {
    results.push(['engine on webgpu', 1]);
  } else {
    console.log(`\nSKIPPED the engine tests on WebGPU: ${skip}`);
    results.push(['engine on webgpu', 'skipped']);
  }
}
if (!only || only === 'models') {
  let skip;
  try {
    skip = skipWithout(TOOLS.torch);
  } catch (err) {
    console.log(`\nFAILED the model toolkit tests (models/tests): ${err.message}`);
    skip = null;
  }
  if (skip === false) {
    results.push(['models (pytest)', run(PYTHON, ['-m', 'pytest', '-q', 'models/tests'], { OPENBLAS_NUM_THREADS: '2' })]);
  } else if (skip === null) {
    results.push(['models (pytest)', 1]);
  } else {
    console.log(`\nSKIPPED the model toolkit tests (models/tests): ${PYTHON} cannot import torch, onnx, numpy, pytest and regex; ${skip}`);
    results.push(['models (pytest)', 'skipped']);
  }
}
console.log('\nsummary:');
for (const [name, status] of results) console.log(`  ${name}: ${status === 0 ? 'passed' : status === 'skipped' ? 'SKIPPED' : 'FAILED'}`);
process.exitCode = results.some(([, s]) => s !== 0 && s !== 'skipped') ? 1 : 0;
