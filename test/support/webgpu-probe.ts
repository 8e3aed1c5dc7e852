// Exits 0 where onnxruntime's WebGPU provider runs a graph (tools.mjs, the `webgpu` tool).
import { probeWebGpu } from '../../src/model/webgpu.js';

try {
  await probeWebGpu();
  process.exit(0);
} catch {
  process.exit(1);
}
