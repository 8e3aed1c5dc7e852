// The GPU check's steps (scripts/check-gpu.sh sets up the machine): each step's outcome goes into
// one JSON, written after every step so that a run cut short still reports what it did.
//   node --import tsx scripts/check-gpu.ts OUT.json
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { describeAdapter, probeWebGpu } from '../src/model/webgpu.js';

const out = process.argv[2] ?? 'gpu-check.json';
const started = Date.now();
const DEADLINE_S = Number(process.env.CALM_GPU_CHECK_SECONDS ?? 540);
const left = () => DEADLINE_S - (Date.now() - started) / 1000;
const results: Record<string, unknown> = {
  started: new Date(started).toISOString(), node: process.version, cpus: cpus().length, vk_driver_files: process.env.VK_DRIVER_FILES ?? null,
};
const save = () => writeFileSync(out, `${JSON.stringify({ ...results, elapsed_s: Math.round((Date.now() - started) / 1000) }, null, 2)}\n`);

function run(name: string, cmd: string[], timeoutS: number): { ok: boolean; stdout: string } {
  const t0 = Date.now();
  const res = spawnSync(process.execPath, cmd, { encoding: 'utf8', timeout: Math.round(Math.max(1, timeoutS) * 1000), maxBuffer: 64 << 20 });
  const ok = res.status === 0;
  results[name] = { ok, seconds: Math.round((Date.now() - t0) / 100) / 10, ...(ok ? {} : { status: res.status, signal: res.signal, tail: `${res.stdout ?? ''}${res.stderr ?? ''}`.slice(-3000) }) };
  save();
  return { ok, stdout: res.stdout ?? '' };
}

/** bench:engine --json rows, kept in the results as a table of the figures that matter. */
function bench(name: string, args: string[], timeoutS: number): void {
  const { ok, stdout } = run(name, ['--import', 'tsx', 'src/bench/engine.ts', '--json', ...args], timeoutS);
  if (!ok) return;
  const rows = JSON.parse(stdout.slice(stdout.indexOf('['))) as Record<string, unknown>[];
  (results[name] as Record<string, unknown>).rows = rows.map((r) => ({
    scenario: r.scenario, concurrency: r.concurrency, tokens_per_s: r.tokensPerSecond, ms_per_step: r.msPerStep, kb_per_step: r.kbPerStep, gmac_per_s: r.gmacPerSecond,
  }));
  save();
}

try {
  const adapter = await probeWebGpu();
  results.adapter = { ...adapter, text: describeAdapter(adapter) };
  save();
  // CALM_GPU_CHECK_SOFTWARE=1 lets the check run on lavapipe: a dry run of the script itself, not a GPU check.
  if (adapter.software && process.env.CALM_GPU_CHECK_SOFTWARE !== '1') throw new Error(`the adapter is ${describeAdapter(adapter)}, not the GPU: is NVIDIA's Vulkan driver (nvidia_icd.json) installed and named by VK_DRIVER_FILES?`);
  run('tests', ['--import', 'tsx', '--test', 'test/model/device-pool.test.ts', 'test/engine/webgpu.test.ts'], Math.min(150, left()));
  bench('bench_shipped_webgpu', ['--device', 'webgpu', '--concurrency', '1,16,64', '--rounds', '2', '--min-tokens', '1024'], Math.min(150, left()));
  bench('bench_shipped_cpu', ['--device', 'cpu', '--concurrency', '1,16,64', '--rounds', '2', '--min-tokens', '1024', '--only', 'T=1'], Math.min(90, left()));
  run('transfer', ['--import', 'tsx', 'src/bench/engine.ts', '--device', 'webgpu', '--scenario', 'transfer', '--json'], Math.min(60, left()));
  // The paper's CALM-M size, random weights (speed does not depend on them), where python3 can build it.
  const python = spawnSync('python3', ['-c', 'import torch, onnx'], { cwd: 'models' });
  if (python.status !== 0) results.calm_m = { skipped: 'python3 lacks torch or onnx' };
  else if (left() < 150) results.calm_m = { skipped: `${Math.round(left())} s left` };
  else {
    const build = spawnSync('python3', ['-m', 'calmtk.random_bundle', '--preset', 'calm-m', '--work', '/tmp/calm-m-gpu'], { cwd: 'models', encoding: 'utf8', timeout: 150_000 });
    if (build.status !== 0 || !existsSync('/tmp/calm-m-gpu/bundle/manifest.json')) results.calm_m = { skipped: `building it failed: ${`${build.stderr}`.slice(-1500)}` };
    else bench('bench_calm_m_webgpu', ['--device', 'webgpu', '--calm', '/tmp/calm-m-gpu/bundle', '--only', 'CALM', '--concurrency', '1,16', '--rounds', '1', '--min-tokens', '512'], Math.min(150, left()));
  }
  results.ok = Object.values(results).every((r) => typeof r !== 'object' || r === null || !('ok' in r) || (r as { ok: boolean }).ok);
} catch (err) {
  results.ok = false;
  results.error = (err as Error).message;
}
save();
console.log(JSON.stringify(results, null, 2));
process.exit(results.ok ? 0 : 1);
