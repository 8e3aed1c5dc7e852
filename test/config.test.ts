import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, helpText, loadConfig, OPTIONS, SERVER_DEFAULTS } from '../src/config.js';

test('defaults: port 8000 on every interface, the shipped CALM bundle', () => {
  const c = loadConfig([], {});
  assert.equal(c.port, 8000);
  assert.equal(c.host, '0.0.0.0');
  assert.deepEqual(c.modelDirs, SERVER_DEFAULTS.modelDirs);
  assert.deepEqual(c.modelNames, []);
});

test('flags beat CALM_* variables, which beat defaults; PORT and HOST work too', () => {
  const env = { CALM_MAX_RUNNING: '8', CALM_PORT: '9000', PORT: '9100', HOST: '127.0.0.1', CALM_KV_CACHE_BYTES: '512m', CALM_LOG_PROMPTS: 'true' };
  const c = loadConfig(['--max-running', '4', '--prompt-policy=left'], env);
  assert.equal(c.maxRunning, 4);
  assert.equal(c.port, 9100);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.kvCacheBytes, 512 * 1024 * 1024);
  assert.equal(c.promptPolicy, 'left');
  assert.equal(c.logPrompts, true);
  assert.equal(loadConfig(['--port', '7000'], env).port, 7000);
});

test('API keys from a comma list and from a file, one per line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'calm-keys-'));
  writeFileSync(join(dir, 'keys'), '# team keys\nk3\n\nk4\n');
  const c = loadConfig(['--api-keys-file', join(dir, 'keys')], { CALM_API_KEYS: 'k1, k2' });
  assert.deepEqual(c.apiKeys, ['k1', 'k2', 'k3', 'k4']);
});

test('bad values are refused with the option named', () => {
  assert.throws(() => loadConfig(['--port', 'x'], {}), (e: unknown) => e instanceof ConfigError && /--port must be a non-negative integer/.test(e.message));
  assert.throws(() => loadConfig([], { CALM_DEVICE: 'tpu' }), /CALM_DEVICE must be one of cpu, webgpu, cuda/);
  assert.throws(() => loadConfig(['--nope', '1'], {}), /unknown option --nope/);
  assert.throws(() => loadConfig(['--kv-cache-bytes', 'lots'], {}), /must be a size/);
});

test('--help lists every option with its environment variable', () => {
  const help = helpText();
  for (const o of OPTIONS) assert.ok(help.includes(`--${o.flag}`) && help.includes(`CALM_${o.flag.toUpperCase().replace(/-/g, '_')}`), o.flag);
});

test('several models: --model repeated or a comma list (CALM_MODEL too), --model-name one id per model', () => {
  assert.deepEqual(loadConfig(['--model', 'a', '--model', 'b'], {}).modelDirs, ['a', 'b']);
  assert.deepEqual(loadConfig([], { CALM_MODEL: 'a, b' }).modelDirs, ['a', 'b']);
  assert.deepEqual(loadConfig(['--model=a,b'], { CALM_MODEL: 'c' }).modelDirs, ['a', 'b'], 'flags win over the environment');
  const named = loadConfig(['--model', 'a', '--model', 'b', '--model-name', 'x,y'], {});
  assert.deepEqual(named.modelNames, ['x', 'y']);
  assert.deepEqual(loadConfig(['--model-name', 'mine'], {}).modelNames, ['mine'], 'one model, one name, as before');
  assert.throws(() => loadConfig(['--model', 'a', '--model', 'b', '--model-name', 'x'], {}), /model-name gives 1 id\(s\) for 2 model\(s\)/);
  assert.throws(() => loadConfig(['--model', 'a,b', '--model-name', 'x,x'], {}), /model-name "x" is given twice/);
  assert.throws(() => loadConfig([], { CALM_MODEL: '' }), /at least one bundle/);
});
