#!/usr/bin/env node
// Runs a k6 script in Node with the emulated k6 modules: `node run.mjs SCRIPT.js` with the
// script's -e variables as JSON in K6_SHIM_ENV and K6_SHIM_ITERATIONS iterations per scenario
// (default 1). Validates the options, runs setup(), every scenario's exec function, teardown(),
// evaluates the thresholds, and prints one line "K6SHIM_RESULT {json}". It checks what a
// script does against a live server without a k6 binary; it does not reproduce k6's timing
// (executors run their iterations back to back on one VU).
import { register } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

register('./hooks.mjs', import.meta.url);

const script = process.argv[2];
if (!script) {
  console.error('usage: node run.mjs SCRIPT.js');
  process.exit(2);
}
globalThis.__ENV = JSON.parse(process.env.K6_SHIM_ENV || '{}');
globalThis.__VU = 0;
globalThis.__ITER = 0;
const iterations = Number(process.env.K6_SHIM_ITERATIONS || 1);

const { state, addSample } = await import('./state.mjs');
const { checkResults } = await import('./k6.mjs');
const { validateOptions, evaluateThresholds } = await import('./validate.mjs');

const started = Date.now();
const mod = await import(pathToFileURL(resolve(script)).href);
const declared = new Map(state.metrics);
const problems = validateOptions(mod.options, mod, declared);
if (typeof mod.default !== 'function' && !Object.values(mod.options?.scenarios ?? {}).every((s) => s.exec)) problems.push('no default function');
const errors = [];
const ran = {};
if (problems.length === 0) {
  state.phase = 'setup';
  const data = typeof mod.setup === 'function' ? JSON.parse(JSON.stringify(mod.setup() ?? null)) : undefined;
  state.phase = 'vu';
  for (const [name, sc] of Object.entries(mod.options.scenarios)) {
    const fn = mod[sc.exec ?? 'default'];
    ran[name] = 0;
    for (let i = 0; i < iterations; i++) {
      globalThis.__VU = 1;
      globalThis.__ITER = i;
      state.tags = { scenario: name };
      const t0 = Date.now();
      try {
        fn(data === undefined ? undefined : JSON.parse(JSON.stringify(data)));
        ran[name]++;
      } catch (err) {
        errors.push(`${name}: ${err && err.stack ? err.stack : err}`);
      }
      addSample('iterations', 'counter', 1);
      addSample('iteration_duration', 'trend', Date.now() - t0, {}, true);
    }
  }
  state.tags = {};
  state.phase = 'teardown';
  if (typeof mod.teardown === 'function') mod.teardown(data);
}
const thresholds = problems.length === 0 ? evaluateThresholds(mod.options.thresholds, state.metrics, (Date.now() - started) / 1000) : [];
const metrics = Object.fromEntries([...state.metrics].map(([name, m]) => [name, { type: m.type, builtin: m.builtin, count: m.samples.length, values: m.samples.map((s) => s.value) }]));
const result = { problems, errors, ran, thresholds, checks: Object.fromEntries(checkResults), metrics, options: mod.options };
console.log(`K6SHIM_RESULT ${JSON.stringify(result)}`);
process.exit(0);
