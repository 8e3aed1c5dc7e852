// The KV pool's memory: for each layer one key array and one value array, laid out
// [block, kv_head, position in block, head_dim], which is exactly the `key_cache.i` /
// `value_cache.i` input of a version-2 backbone (docs/model-bundle.md). The graph gathers each
// row's past through its block table; the new positions a call produces are scattered here.
// This module knows blocks only as numbers: which block belongs to whom is the engine's
// business (src/engine/block-manager.ts).
//
// The arrays are allocated once at their full size. Their pages are zero until first written,
// and the block manager hands out low block ids first, so the memory actually touched follows
// the peak number of blocks in use plus the prefix cache's unreferenced blocks, never more
// than the budget.

export type KvDtype = 'float32' | 'float16';
export type KvArray = Float32Array | Uint16Array;

export interface KvGeometry {
  layers: number;
  kvHeads: number;
  headDim: number;
  dtype: KvDtype;
}

export function bytesPerPosition(g: KvGeometry): number {
  return g.layers * 2 * g.kvHeads * g.headDim * (g.dtype === 'float16' ? 2 : 4);
}

export class KvPool {
  readonly keys: KvArray[];
  readonly values: KvArray[];

  constructor(readonly geometry: KvGeometry, readonly blocks: number, readonly blockSize: number) {
    if (!Number.isInteger(blocks) || blocks < 1) throw new RangeError(`a KV pool needs at least one block, got ${blocks}`);
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
    const size = blocks * geometry.kvHeads * blockSize * geometry.headDim;
    const make = (): KvArray => (geometry.dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size));
    this.keys = Array.from({ length: geometry.layers }, make);
    this.values = Array.from({ length: geometry.layers }, make);
  }

  get bytes(): number {
    return this.blocks * this.blockSize * bytesPerPosition(this.geometry);
  }

  /** The tensor shape of one layer's `key_cache.i` / `value_cache.i`. */
  get dims(): number[] {
    return [this.blocks, this.geometry.kvHeads, this.blockSize, this.geometry.headDim];
  }

  /**
   * Scatters one layer's new keys or values: `out` is the graph's new_key.l / new_value.l,
   * [rows, kv_heads, newLen, head_dim]; row r's first valid[r] positions are its absolute
   * positions pastLen[r].., stored in the blocks its table names (row r's table is
   * table[r * width .. (r + 1) * width)).
   */
  scatter(layer: number, kind: 'key' | 'value', out: KvArray, newLen: number, pastLen: ArrayLike<number>, valid: ArrayLike<number>,
    table: BigInt64Array, width: number): void {
    const { kvHeads: h, headDim: d } = this.geometry;
    const bs = this.blockSize;
    const dst = (kind === 'key' ? this.keys : this.values)[layer]!;
    for (let r = 0; r < pastLen.length; r++) {
      const first = pastLen[r]!;
      const end = first + valid[r]!;
      // One contiguous run per (block, head): the positions of the row that fall into one block.
      for (let pos = first; pos < end;) {
        const slot = Math.floor(pos / bs);
        if (slot >= width) throw new RangeError(`row ${r}: position ${pos} is beyond its block table of ${width} blocks`);
        const block = Number(table[r * width + slot]!);
        const offset = pos - slot * bs;
        const run = Math.min(end - pos, bs - offset);
        for (let head = 0; head < h; head++) {
          const src = ((r * h + head) * newLen + (pos - first)) * d;
          dst.set(out.subarray(src, src + run * d), ((block * h + head) * bs + offset) * d);
        }
        pos += run;
      }
    }
  }

  /** Copies the first `positions` positions of block `from` into block `to` (copy-on-write of a shared partial block). */
  copyBlock(from: number, to: number, positions = this.blockSize): void {
    const { kvHeads: h, headDim: d } = this.geometry;
    const bs = this.blockSize;
    for (const arrays of [this.keys, this.values]) {
      for (const arr of arrays) {
        for (let head = 0; head < h; head++) {
          const src = ((from * h + head) * bs) * d;
          arr.copyWithin(((to * h + head) * bs) * d, src, src + positions * d);
        }
      }
    }
  }
}
