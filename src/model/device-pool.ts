// The KV pool resident on a WebGPU device. The same layout as the host pool (kv-pool.ts), but
// its memory is device buffers that onnxruntime allocated once, so a backbone call reads the
// past without any upload, and the new keys and values it produces go from its outputs into the
// pool without a download: a small graph built here scatters them in place (the write graph's
// outputs are fetched into the pool's own tensors). Per step only the write indices go up.
//
// Node's onnxruntime binding cannot create a device buffer directly, so the pool is the
// output of an allocation graph (zeros of the pool's shape) run once with its outputs kept on
// the device.
import ort from './ort.js';
import type { KvGeometry } from './kv-pool.js';
import { bytesPerPosition } from './kv-pool.js';
import { type ElemType, type GraphSpec, int64Tensor, type NodeSpec, type ValueSpec, writeModel } from './onnx-writer.js';

const OPSET = 17;

function cacheNames(layers: number): { cache: string; fresh: string }[] {
  const out: { cache: string; fresh: string }[] = [];
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) out.push({ cache: `${kind}_cache.${i}`, fresh: `new_${kind}.${i}` });
  }
  return out;
}

const CACHE_DIMS = ['blocks', 'kv_heads', 'block_size', 'head_dim'];

/** Zeros of shape `shape` (int64 [4]) for every `key_cache.i` / `value_cache.i`. */
export function allocGraph(g: KvGeometry): GraphSpec {
  const type: ElemType = g.dtype;
  const names = cacheNames(g.layers);
  return {
    name: 'kv_alloc',
    opset: OPSET,
    inputs: [{ name: 'shape', type: 'int64', dims: [4] }],
    outputs: names.map(({ cache }) => ({ name: cache, type, dims: CACHE_DIMS })),
    nodes: names.map(({ cache }) => ({ op: 'ConstantOfShape', inputs: ['shape'], outputs: [cache], attributes: { value: { type, dims: [1] } } })),
  };
}

/**
 * Writes a backbone call's new positions into the pool. Inputs: `src` [m], rows of the call's
 * new_key.i / new_value.i viewed as [rows * kv_heads * newLen, head_dim]; `dst` [m, 3], the
 * (block, kv_head, position in block) each row goes to; every cache and every new tensor.
 * Outputs `<cache>.out`, fetched into the cache tensors themselves.
 */
export function writeGraph(g: KvGeometry): GraphSpec {
  const type: ElemType = g.dtype;
  const names = cacheNames(g.layers);
  const inputs: ValueSpec[] = [{ name: 'src', type: 'int64', dims: ['m'] }, { name: 'dst', type: 'int64', dims: ['m', 3] }];
  const nodes: NodeSpec[] = [];
  for (const { cache, fresh } of names) {
    inputs.push({ name: cache, type, dims: CACHE_DIMS }, { name: fresh, type, dims: ['rows', 'kv_heads', 'new_len', 'head_dim'] });
    nodes.push(
      { op: 'Reshape', inputs: [fresh, 'row_shape'], outputs: [`${fresh}.flat`] },
      { op: 'Gather', inputs: [`${fresh}.flat`, 'src'], outputs: [`${fresh}.rows`], attributes: { axis: 0 } },
      { op: 'ScatterND', inputs: [cache, 'dst', `${fresh}.rows`], outputs: [`${cache}.out`] },
    );
  }
  return {
    name: 'kv_write',
    opset: OPSET,
    inputs,
    outputs: names.map(({ cache }) => ({ name: `${cache}.out`, type, dims: CACHE_DIMS })),
    initializers: [{ name: 'row_shape', ...int64Tensor([-1, g.headDim]) }],
    nodes,
  };
}

/** Opens a graph given as bytes on the pool's device, keeping the outputs named in `deviceOutputs` there. */
export type OpenDeviceGraph = (model: Uint8Array, deviceOutputs: string[]) => Promise<ort.InferenceSession>;

export class DeviceKvPool {
  /** every `key_cache.i` / `value_cache.i`, on the device */
  readonly caches: Record<string, ort.Tensor>;
  private readonly names: { cache: string; fresh: string }[];

  /**
   * `alloc` made the caches and must outlive them: disposing a device tensor after the session
   * that allocated it is released crashes the process.
   */
  private constructor(readonly geometry: KvGeometry, readonly blocks: number, readonly blockSize: number,
    caches: Record<string, ort.Tensor>, private readonly alloc: ort.InferenceSession, private readonly writer: ort.InferenceSession) {
    this.caches = caches;
    this.names = cacheNames(geometry.layers);
  }

  static async create(geometry: KvGeometry, blocks: number, blockSize: number, open: OpenDeviceGraph): Promise<DeviceKvPool> {
    if (!Number.isInteger(blocks) || blocks < 1) throw new RangeError(`a KV pool needs at least one block, got ${blocks}`);
    const alloc = await open(writeModel(allocGraph(geometry)), cacheNames(geometry.layers).map((n) => n.cache));
    const shape = [blocks, geometry.kvHeads, blockSize, geometry.headDim];
    const caches = await alloc.run({ shape: new ort.Tensor('int64', BigInt64Array.from(shape, BigInt), [4]) });
    return new DeviceKvPool(geometry, blocks, blockSize, caches, alloc, await open(writeModel(writeGraph(geometry)), []));
  }

  get bytes(): number {
    return this.blocks * this.blockSize * bytesPerPosition(this.geometry);
  }

  /**
   * Writes a call's new keys and values (its device outputs new_key.i / new_value.i,
   * [rows, kv_heads, newLen, head_dim]) at the positions pastLen[r].. of each row's first valid[r],
   * in the blocks of its table, as KvPool.scatter does on the host. Returns the bytes uploaded.
   */
  async write(out: Record<string, ort.Tensor>, newLen: number, pastLen: ArrayLike<number>, valid: ArrayLike<number>,
    table: BigInt64Array, width: number): Promise<number> {
    const h = this.geometry.kvHeads;
    const bs = this.blockSize;
    let m = 0;
    for (let r = 0; r < valid.length; r++) m += valid[r]! * h;
    const src = new BigInt64Array(m);
    const dst = new BigInt64Array(m * 3);
    let j = 0;
    for (let r = 0; r < valid.length; r++) {
      for (let p = 0; p < valid[r]!; p++) {
        const pos = pastLen[r]! + p;
        const slot = Math.floor(pos / bs);
        if (slot >= width) throw new RangeError(`row ${r}: position ${pos} is beyond its block table of ${width} blocks`);
        const block = table[r * width + slot]!;
        for (let head = 0; head < h; head++, j++) {
          src[j] = BigInt((r * h + head) * newLen + p);
          dst[j * 3] = block;
          dst[j * 3 + 1] = BigInt(head);
          dst[j * 3 + 2] = BigInt(pos - slot * bs);
        }
      }
    }
    if (m === 0) return 0;
    const feeds: Record<string, ort.Tensor> = {
      src: new ort.Tensor('int64', src, [m]),
      dst: new ort.Tensor('int64', dst, [m, 3]),
    };
    const fetches: Record<string, ort.Tensor> = {};
    for (const { cache, fresh } of this.names) {
      feeds[cache] = this.caches[cache]!;
      feeds[fresh] = out[fresh]!;
      fetches[`${cache}.out`] = this.caches[cache]!;
    }
    await this.writer.run(feeds, fetches);
    return src.byteLength + dst.byteLength;
  }

  async release(): Promise<void> {
    for (const t of Object.values(this.caches)) t.dispose();
    await this.alloc.release();
    await this.writer.release();
  }
}
