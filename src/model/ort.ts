// onnxruntime-node, as every module here must import it. Where the runtime has Float16Array
// (Node.js 24), onnxruntime-common stores float16 tensor data in one, and onnxruntime-node
// 1.30's binding reads a Float16Array as 0 bytes ("not enough space: expected N, got 0",
// microsoft/onnxruntime#32323). onnxruntime-common looks for Float16Array when the first tensor
// is made, so hiding it here, before any, keeps float16 data in the Uint16Array this code passes,
// as on Node.js 22. Nothing else here uses Float16Array.
import ort from 'onnxruntime-node';

delete (globalThis as { Float16Array?: unknown }).Float16Array;

export default ort;
