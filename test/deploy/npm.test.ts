// npm's side of a fresh clone: `npm ci` must not download onnxruntime-node's CUDA libraries
// (it fails offline and is useless without a GPU) and must print no warning about the project's
// own configuration. package.json's allowScripts says which dependencies may run install
// scripts; npm (11.16 and later) skips the denied ones silently and warns about any not listed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { hasInstallScript?: boolean }>;
};

test('allowScripts covers every dependency with an install script, and denies the CUDA download', () => {
  const withScripts = Object.entries(lock.packages)
    .filter(([path, p]) => path !== '' && p.hasInstallScript)
    .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
  assert.ok(withScripts.includes('onnxruntime-node'), 'the lock records onnxruntime-node install script');
  const policy = pkg.allowScripts ?? {};
  for (const name of withScripts) assert.equal(typeof policy[name], 'boolean', `${name}: not in allowScripts, so npm warns at every install`);
  assert.equal(policy['onnxruntime-node'], false);
  for (const name of Object.keys(policy)) assert.ok(withScripts.includes(name), `allowScripts lists ${name}, which has no install script`);
});

test('npm reads the project configuration without a warning', () => {
  // Project-level .npmrc keys npm does not know (the old onnxruntime-node-install=skip) warn on
  // every npm command; the user's own ~/.npmrc is not the project's concern.
  const res = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  assert.doesNotMatch(res.stderr, /project config/i);
});
