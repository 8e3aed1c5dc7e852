// System tools some tests need (promtool, PyTorch, curl...). `npm ci && npm test` must pass on a
// machine with only Node.js and npm, so a test whose tool is missing is skipped with a line that
// names the package to install. CI installs them and lists them in CALM_REQUIRE_TOOLS
// (comma-separated names, or `all`): there a missing tool fails instead, so CI cannot skip silently.
import { spawnSync } from 'node:child_process';

/**
 * @typedef {object} Tool
 * @property {string} name the name CALM_REQUIRE_TOOLS uses
 * @property {string[]} probe a command that succeeds only where the tool works
 * @property {string} install how to get it (a Debian package)
 */

/** @type {Record<string, Tool>} */
export const TOOLS = {
  promtool: { name: 'promtool', probe: ['promtool', '--version'], install: 'apt-get install -y --no-install-recommends prometheus' },
  torch: {
    name: 'torch',
    probe: [process.env.CALM_PYTHON ?? '/usr/bin/python3', '-c', 'import torch, onnx, numpy, pytest, regex'],
    install: 'apt-get install -y --no-install-recommends python3-torch python3-onnx python3-numpy python3-pytest python3-regex libopenblas0-pthread',
  },
  webgpu: {
    name: 'webgpu',
    probe: [process.execPath, '--import', 'tsx', 'test/support/webgpu-probe.ts'],
    install: 'a Vulkan driver for onnxruntime\'s WebGPU provider; without a GPU, Mesa 25\'s lavapipe (Debian bookworm: add the bookworm-backports source, then apt-get install -y -t bookworm-backports mesa-vulkan-drivers)',
  },
  curl: { name: 'curl', probe: ['curl', '--version'], install: 'apt-get install -y --no-install-recommends curl' },
  docker: { name: 'docker', probe: ['docker', 'version'], install: 'a Docker engine (https://docs.docker.com/engine/install/)' },
  kubectl: { name: 'kubectl', probe: ['kubectl', 'version', '--request-timeout=5s'], install: 'kubectl with a reachable cluster (https://kubernetes.io/docs/tasks/tools/)' },
  k6: { name: 'k6', probe: ['k6', 'version'], install: 'k6 (https://grafana.com/docs/k6/latest/set-up/install-k6/)' },
};

/** @returns {Set<string>} */
function required() {
  return new Set((process.env.CALM_REQUIRE_TOOLS ?? '').split(',').map((s) => s.trim()).filter(Boolean));
}

/** @type {Map<string, boolean>} */
const seen = new Map();

/** Whether the tool runs here (probed once per process). */
export function hasTool(/** @type {Tool} */ tool) {
  let ok = seen.get(tool.name);
  if (ok === undefined) {
    const [cmd, ...args] = tool.probe;
    ok = spawnSync(/** @type {string} */ (cmd), args, { stdio: 'ignore' }).status === 0;
    seen.set(tool.name, ok);
  }
  return ok;
}

/**
 * `false` where the tool runs; otherwise the reason to skip, naming what to install. Throws
 * where CALM_REQUIRE_TOOLS requires the tool (CI), so that a missing tool fails the run there.
 * @returns {string | false}
 */
export function skipWithout(/** @type {Tool} */ tool) {
  if (hasTool(tool)) return false;
  const reason = `${tool.name} is not available: install it with ${tool.install}`;
  const req = required();
  if (req.has(tool.name) || req.has('all')) throw new Error(`${reason} (CALM_REQUIRE_TOOLS requires ${tool.name})`);
  return reason;
}
