// Writes small ONNX models (protobuf) from a description, for the graphs the runtime builds
// itself to fit a bundle's dimensions: the device KV pool's allocation and writes
// (device-graphs.ts). Covers only what those graphs use: nodes with int / tensor attributes,
// int64 and float initializers, tensor inputs and outputs with symbolic or fixed dimensions.
// Field numbers are onnx.proto's (onnx/onnx, proto2).

export type ElemType = 'float32' | 'float16' | 'int64';

const ELEM: Record<ElemType, number> = { float32: 1, int64: 7, float16: 10 };
const ELEM_BYTES: Record<ElemType, number> = { float32: 4, int64: 8, float16: 2 };

export interface TensorValue {
  type: ElemType;
  dims: number[];
  /** little-endian bytes of the values; all zeros when left out */
  raw?: Uint8Array;
}

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, number | TensorValue>;
}

export interface ValueSpec {
  name: string;
  type: ElemType;
  /** a number is a fixed size, a string a symbolic one */
  dims: (number | string)[];
}

export interface GraphSpec {
  name: string;
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  initializers?: (TensorValue & { name: string })[];
  nodes: NodeSpec[];
  opset: number;
}

class Writer {
  private readonly parts: number[] = [];

  varint(field: number, value: number): this {
    this.tag(field, 0);
    this.raw(value);
    return this;
  }

  bytes(field: number, data: Uint8Array | Writer): this {
    const body = data instanceof Writer ? data.finish() : data;
    this.tag(field, 2);
    this.raw(body.length);
    for (const b of body) this.parts.push(b);
    return this;
  }

  string(field: number, text: string): this {
    return this.bytes(field, new TextEncoder().encode(text));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }

  private tag(field: number, wire: number): void {
    this.raw(field * 8 + wire);
  }

  /** An unsigned varint; every value written here is a non-negative safe integer. */
  private raw(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`onnx-writer: cannot encode ${value}`);
    let v = value;
    while (v >= 0x80) {
      this.parts.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.parts.push(v);
  }
}

function tensor(t: TensorValue, name?: string): Writer {
  const w = new Writer();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, ELEM[t.type]);
  if (name !== undefined) w.string(8, name);
  const count = t.dims.reduce((a, b) => a * b, 1);
  const raw = t.raw ?? new Uint8Array(count * ELEM_BYTES[t.type]);
  if (raw.length !== count * ELEM_BYTES[t.type]) throw new RangeError(`onnx-writer: tensor ${name ?? ''} has ${raw.length} bytes for ${count} ${t.type}`);
  return w.bytes(9, raw);
}

function valueInfo(v: ValueSpec): Writer {
  const shape = new Writer();
  for (const d of v.dims) shape.bytes(1, typeof d === 'number' ? new Writer().varint(1, d) : new Writer().string(2, d));
  const tensorType = new Writer().varint(1, ELEM[v.type]).bytes(2, shape);
  return new Writer().string(1, v.name).bytes(2, new Writer().bytes(1, tensorType));
}

function node(n: NodeSpec, index: number): Writer {
  const w = new Writer();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, `${n.op}_${index}`).string(4, n.op);
  for (const [name, value] of Object.entries(n.attributes ?? {})) {
    const a = new Writer().string(1, name);
    // AttributeProto.type: INT = 2, TENSOR = 4
    if (typeof value === 'number') a.varint(3, value).varint(20, 2);
    else a.bytes(5, tensor(value)).varint(20, 4);
    w.bytes(5, a);
  }
  return w;
}

export function int64Tensor(values: number[]): TensorValue {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return { type: 'int64', dims: [values.length], raw };
}

/** The serialized ModelProto (IR version 8). */
export function writeModel(g: GraphSpec): Uint8Array {
  const graph = new Writer();
  g.nodes.forEach((n, i) => graph.bytes(1, node(n, i)));
  graph.string(2, g.name);
  for (const init of g.initializers ?? []) graph.bytes(5, tensor(init, init.name));
  for (const i of g.inputs) graph.bytes(11, valueInfo(i));
  for (const o of g.outputs) graph.bytes(12, valueInfo(o));
  return new Writer()
    .varint(1, 8)
    .string(2, 'calm-serve')
    .bytes(7, graph)
    .bytes(8, new Writer().string(1, '').varint(2, g.opset))
    .finish();
}
