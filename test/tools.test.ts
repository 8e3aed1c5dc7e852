// Tests that need a system tool skip where it is missing, with the package to install, and fail
// instead where CALM_REQUIRE_TOOLS (set by .ci/run) requires it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { skipWithout, TOOLS } from './support/tools.mjs';

const absent = { name: 'no-such-tool', probe: ['/nonexistent/no-such-tool', '--version'], install: 'apt-get install no-such-package' };

test('a missing tool is a skip naming its package, or a failure where CALM_REQUIRE_TOOLS lists it', () => {
  const before = process.env.CALM_REQUIRE_TOOLS;
  try {
    delete process.env.CALM_REQUIRE_TOOLS;
    assert.equal(skipWithout(absent), 'no-such-tool is not available: install it with apt-get install no-such-package');
    process.env.CALM_REQUIRE_TOOLS = 'promtool,no-such-tool';
    assert.throws(() => skipWithout(absent), /CALM_REQUIRE_TOOLS requires no-such-tool/);
    process.env.CALM_REQUIRE_TOOLS = 'all';
    assert.throws(() => skipWithout(absent), /CALM_REQUIRE_TOOLS requires/);
    assert.equal(skipWithout({ ...absent, name: 'node', probe: [process.execPath, '--version'] }), false);
  } finally {
    if (before === undefined) delete process.env.CALM_REQUIRE_TOOLS;
    else process.env.CALM_REQUIRE_TOOLS = before;
  }
});

test('npm test skips the pytest suite without PyTorch, and fails it where CI requires it', () => {
  const env = { ...process.env, CALM_PYTHON: '/nonexistent/python3' };
  delete env.CALM_REQUIRE_TOOLS;
  const skipped = spawnSync(process.execPath, ['test/run.mjs', '--only', 'models'], { env, encoding: 'utf8' });
  assert.equal(skipped.status, 0, skipped.stdout);
  assert.match(skipped.stdout, /SKIPPED the model toolkit tests .*apt-get install -y --no-install-recommends python3-torch/);
  const required = spawnSync(process.execPath, ['test/run.mjs', '--only', 'models'], { env: { ...env, CALM_REQUIRE_TOOLS: 'torch' }, encoding: 'utf8' });
  assert.equal(required.status, 1, required.stdout);
  assert.match(required.stdout, /models \(pytest\): FAILED/);
});

test('CI installs and requires every tool it names', () => {
  const ci = readFileSync(new URL('../.ci/run', import.meta.url), 'utf8');
  const names = /^export CALM_REQUIRE_TOOLS=(\S+)$/m.exec(ci)?.[1]?.split(',') ?? [];
  for (const name of ['torch', 'promtool', 'curl']) assert.ok(names.includes(name), `CI requires ${name}`);
  const apt = 'apt-get install -y --no-install-recommends ';
  for (const name of names) {
    const tool = TOOLS[name as keyof typeof TOOLS];
    assert.ok(tool, `CALM_REQUIRE_TOOLS names ${name}, which test/support/tools.mjs does not know`);
    if (!tool.install.startsWith(apt)) continue;
    for (const pkg of tool.install.slice(apt.length).split(' ')) assert.match(ci, new RegExp(`\\b${pkg}\\b`), `.ci/run installs ${pkg} for ${name}`);
  }
});
