// Which WebGPU adapter onnxruntime will get, and whether it gets one at all. onnxruntime-node's
// WebGPU provider (Dawn, on Vulkan) does not report its adapter to JavaScript, so the adapter is
// inferred from what Dawn chooses among: the Vulkan drivers installed (ICD files, or the ones
// VK_DRIVER_FILES names) and the GPUs on the PCI bus. Dawn prefers a hardware GPU to a CPU
// (software) adapter. Then a probe graph runs on the provider: if that fails there is no adapter.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import ort from './ort.js';
import { writeModel } from './onnx-writer.js';

export interface WebGpuAdapter {
  vendor: string;
  /** what is known of the device: its model where the driver says it, else PCI ids */
  device: string;
  /** a CPU implementation (Mesa's lavapipe): correct, slow, for tests */
  software: boolean;
  /** the Vulkan driver files considered */
  drivers: string[];
}

export class WebGpuUnavailable extends Error {}

const PCI_VENDORS: Record<string, { vendor: string; driver: RegExp }> = {
  '0x10de': { vendor: 'NVIDIA', driver: /nvidia/i },
  '0x1002': { vendor: 'AMD', driver: /radeon|amd/i },
  '0x8086': { vendor: 'Intel', driver: /intel/i },
};

const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/lib/x86_64-linux-gnu'];

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The Vulkan driver (ICD) files the loader will use. */
function vulkanDrivers(env: NodeJS.ProcessEnv): string[] {
  const named = env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES;
  if (named) return named.split(':').filter(Boolean);
  return ICD_DIRS.flatMap((dir) => list(dir).filter((f) => f.endsWith('.json')).map((f) => join(dir, f)));
}

/** Display controllers on the PCI bus (class 0x03....), with NVIDIA's model name where its driver gives it. */
function pciGpus(): { vendorId: string; deviceId: string; model?: string }[] {
  const root = '/sys/bus/pci/devices';
  const gpus = list(root).filter((d) => read(join(root, d, 'class')).startsWith('0x03')).map((d) => ({
    bus: d, vendorId: read(join(root, d, 'vendor')), deviceId: read(join(root, d, 'device')),
  }));
  return gpus.map((g) => {
    const info = read(join('/proc/driver/nvidia/gpus', g.bus, 'information'));
    const model = /^Model:\s*(.+)$/m.exec(info)?.[1]?.trim();
    return { vendorId: g.vendorId, deviceId: g.deviceId, ...(model ? { model } : {}) };
  });
}

function hasVulkanLoader(env: NodeJS.ProcessEnv): boolean {
  const dirs = [...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...LIB_DIRS];
  return dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')));
}

const INSTALL =
  'install a Vulkan driver: your GPU\'s (NVIDIA\'s driver ships one; Mesa\'s mesa-vulkan-drivers for AMD and Intel), or, for tests ' +
  'without a GPU, Mesa 25\'s lavapipe (Debian bookworm: `apt-get install -t bookworm-backports mesa-vulkan-drivers`, then ' +
  'VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.json); see docs/gpu.md';

/** The adapter Dawn will choose, from the drivers and GPUs present (no GPU call). */
export function inferAdapter(env: NodeJS.ProcessEnv = process.env): WebGpuAdapter {
  if (!hasVulkanLoader(env)) throw new WebGpuUnavailable(`no WebGPU adapter: the Vulkan loader libvulkan.so.1 is not installed (Debian: libvulkan1); ${INSTALL}`);
  const drivers = vulkanDrivers(env);
  const names = drivers.map((d) => basename(d));
  for (const gpu of pciGpus()) {
    const known = PCI_VENDORS[gpu.vendorId];
    if (!known || !names.some((n) => known.driver.test(n))) continue;
    return { vendor: known.vendor, device: gpu.model ?? `PCI ${gpu.vendorId.slice(2)}:${gpu.deviceId.slice(2)}`, software: false, drivers };
  }
  if (names.some((n) => /lvp/.test(n))) return { vendor: 'Mesa', device: 'lavapipe (llvmpipe, on the CPU)', software: true, drivers };
  throw new WebGpuUnavailable(`no WebGPU adapter: no GPU with a Vulkan driver and no software driver among ${names.length > 0 ? names.join(', ') : 'no Vulkan driver files'}; ${INSTALL}`);
}

/** A graph that needs the device to run: one Add. */
function probeGraph(): Uint8Array {
  return writeModel({
    name: 'probe', opset: 17,
    inputs: [{ name: 'x', type: 'float32', dims: [2] }],
    outputs: [{ name: 'y', type: 'float32', dims: [2] }],
    nodes: [{ op: 'Add', inputs: ['x', 'x'], outputs: ['y'] }],
  });
}

/** The adapter, after checking that the WebGPU provider runs a graph on it; WebGpuUnavailable with the reason otherwise. */
export async function probeWebGpu(env: NodeJS.ProcessEnv = process.env): Promise<WebGpuAdapter> {
  const adapter = inferAdapter(env);
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(probeGraph(), { executionProviders: ['webgpu'], logSeverityLevel: 3 });
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 2), [2]) });
    const y = out.y!.data as Float32Array;
    if (y[0] !== 2 || y[1] !== 4) throw new Error(`the probe graph computed ${Array.from(y)} for 2 * [1, 2]`);
  } catch (err) {
    throw new WebGpuUnavailable(`no WebGPU adapter: onnxruntime's WebGPU provider failed (${(err as Error).message.split('\n')[0]}); ${INSTALL}`);
  } finally {
    await session?.release();
  }
  return adapter;
}

export function describeAdapter(a: WebGpuAdapter): string {
  return `${a.vendor} ${a.device}${a.software ? ', a software adapter: correct but slow, for tests only' : ''}`;
}
