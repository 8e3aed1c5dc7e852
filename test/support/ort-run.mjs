// Runs one ONNX graph with onnxruntime-node on tensors stored as raw little-endian files.
// The Python parity tests (models/tests) use it so that exported graphs are checked in the
// runtime the server uses. Request on stdin:
//   {"model": PATH, "inputs": {NAME: {"type": "float32"|"float16"|"int64", "dims": [...], "path": FILE}},
//    "outputs": [NAME, ...] | null, "outDir": DIR}
// Reply on stdout: {NAME: {"type", "dims", "path"}} with each output written to DIR/NAME.bin.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// Where the runtime has Float16Array (Node.js 24), onnxruntime-common turns the data of every
// float16 tensor into one, and onnxruntime-node 1.30's binding reads a Float16Array as 0 bytes
// ("not enough space: expected N, got 0"; microsoft/onnxruntime#32323). Hidden before the runtime
// loads, float16 data stays the Uint16Array this script passes. This script checks exported
// graphs, not Node.js: the server's own float16 path is src/model's concern.
delete globalThis.Float16Array;
const { default: ort } = await import('onnxruntime-node');

const ARRAYS = { float32: Float32Array, float16: Uint16Array, int64: BigInt64Array, int32: Int32Array };

const request = JSON.parse(readFileSync(0, 'utf8'));
const session = await ort.InferenceSession.create(request.model, { intraOpNumThreads: 2 });
const feeds = {};
for (const [name, spec] of Object.entries(request.inputs)) {
  const bytes = readFileSync(spec.path);
  const Ctor = ARRAYS[spec.type];
  const data = new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
  feeds[name] = new ort.Tensor(spec.type, data, spec.dims);
}
const results = await session.run(feeds, request.outputs ?? session.outputNames);
const reply = {};
for (const [name, tensor] of Object.entries(results)) {
  const path = join(request.outDir, `${name}.bin`);
  const data = tensor.data;
  writeFileSync(path, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  reply[name] = { type: tensor.type, dims: tensor.dims, path };
}
process.stdout.write(JSON.stringify(reply));
