// `k6` module emulation: check, sleep, fail, group.
import { addSample, sleepMs, state } from './state.mjs';

export const checkResults = new Map();

export function check(value, sets, tags) {
  if (state.phase === 'init') throw new Error('k6 shim: check() in the init context');
  let all = true;
  for (const [name, fn] of Object.entries(sets)) {
    const ok = Boolean(typeof fn === 'function' ? fn(value) : fn);
    addSample('checks', 'rate', ok ? 1 : 0, { ...(tags ?? {}), check: name });
    const r = checkResults.get(name) ?? { passes: 0, fails: 0 };
    if (ok) r.passes++;
    else r.fails++;
    checkResults.set(name, r);
    all &&= ok;
  }
  return all;
}

export function sleep(seconds) {
  sleepMs(seconds * 1000);
}

export function fail(message) {
  throw new Error(message);
}

export function group(name, fn) {
  return fn();
}

export default { check, sleep, fail, group };
