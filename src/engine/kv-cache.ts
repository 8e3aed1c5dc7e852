// The KV cache, owned by the server. One array per layer for keys and one for values, laid
// out [row, kv_head, position, head_dim]. A running sequence owns one row; the scheduler keeps
// the rows it batches together contiguous, so the backbone's `past_*` inputs are views of
// these arrays (no copy), and only the new positions a step produces are written back.
//
// Capacity per row grows in powers of two up to `maxPositions`, so attention runs over at most
// twice the longest live sequence, and memory is allocated only as sequences grow.

export type KvDtype = 'float32' | 'float16';
export type KvArray = Float32Array | Uint16Array;

export interface KvGeometry {
  layers: number;
  kvHeads: number;
  headDim: number;
  dtype: KvDtype;
}

export interface KvLimits {
  /** rows (concurrent sequences) */
  maxRows: number;
  /** positions per row: the context limit, in backbone positions (chunks for CALM) */
  maxPositions: number;
  initialCapacity?: number;
}

export function bytesPerPosition(g: KvGeometry): number {
  return g.layers * 2 * g.kvHeads * g.headDim * (g.dtype === 'float16' ? 2 : 4);
}

export class KvCache {
  readonly maxRows: number;
  readonly maxPositions: number;
  private cap: number;
  private keys: KvArray[] = [];
  private values: KvArray[] = [];

  constructor(readonly geometry: KvGeometry, limits: KvLimits) {
    this.maxRows = limits.maxRows;
    this.maxPositions = limits.maxPositions;
    this.cap = Math.min(limits.initialCapacity ?? 64, this.maxPositions);
    this.allocate(this.cap);
  }

  /** Positions every row can hold right now (the `past` size fed to the backbone). */
  get capacity(): number {
    return this.cap;
  }

  get bytesAllocated(): number {
    return this.keys.reduce((n, a) => n + a.byteLength, 0) * 2;
  }

  /** Grows (copying live rows) so that every row can hold `positions`. */
  ensureCapacity(positions: number, liveRows: number): void {
    if (positions <= this.cap) return;
    if (positions > this.maxPositions) throw new RangeError(`${positions} positions exceed the cache limit ${this.maxPositions}`);
    let next = this.cap;
    while (next < positions) next *= 2;
    next = Math.min(next, this.maxPositions);
    const { kvHeads: h, headDim: d } = this.geometry;
    const oldCap = this.cap;
    const oldKeys = this.keys;
    const oldValues = this.values;
    this.allocate(next);
    for (let l = 0; l < this.geometry.layers; l++) {
      for (const [src, dst] of [[oldKeys[l]!, this.keys[l]!], [oldValues[l]!, this.values[l]!]] as const) {
        for (let block = 0; block < liveRows * h; block++) {
          dst.set(src.subarray(block * oldCap * d, (block + 1) * oldCap * d), block * next * d);
        }
      }
    }
  }

  /** The `past_key.l` / `past_value.l` input for rows [rowStart, rowStart + rows): a view. */
  view(layer: number, kind: 'key' | 'value', rowStart: number, rows: number): KvArray {
    const block = this.geometry.kvHeads * this.cap * this.geometry.headDim;
    const arr = (kind === 'key' ? this.keys : this.values)[layer]!;
    return arr.subarray(rowStart * block, (rowStart + rows) * block);
  }

  /**
   * Writes a step's new rows: `out` is the graph's new_key.l/new_value.l, [rows, kv_heads, newLen, head_dim];
   * row r's first `valid[r]` positions go to positions pastLen[r].. of cache row rowStart + r.
   */
  write(layer: number, kind: 'key' | 'value', rowStart: number, out: KvArray, newLen: number, pastLen: ArrayLike<number>, valid: ArrayLike<number>): void {
    const { kvHeads: h, headDim: d } = this.geometry;
    const dst = (kind === 'key' ? this.keys : this.values)[layer]!;
    for (let r = 0; r < pastLen.length; r++) {
      const n = valid[r]! * d;
      if (n === 0) continue;
      if (pastLen[r]! + valid[r]! > this.cap) throw new RangeError(`row ${rowStart + r}: ${pastLen[r]! + valid[r]!} positions exceed capacity ${this.cap}`);
      for (let head = 0; head < h; head++) {
        const src = ((r * h + head) * newLen) * d;
        dst.set(out.subarray(src, src + n), (((rowStart + r) * h + head) * this.cap + pastLen[r]!) * d);
      }
    }
  }

  /** Copies the first `length` positions of row `from` into row `to`. */
  moveRow(from: number, to: number, length: number): void {
    if (from === to || length === 0) return;
    const { kvHeads: h, headDim: d } = this.geometry;
    for (const arrays of [this.keys, this.values]) {
      for (const arr of arrays) {
        for (let head = 0; head < h; head++) {
          const src = ((from * h + head) * this.cap) * d;
          arr.copyWithin(((to * h + head) * this.cap) * d, src, src + length * d);
        }
      }
    }
  }

  /** Exchanges rows a and b (their first lenA / lenB positions). */
  swapRows(a: number, b: number, lenA: number, lenB: number): void {
    if (a === b) return;
    const spare = this.maxRows; // the extra row allocated as scratch
    this.moveRow(a, spare, lenA);
    this.moveRow(b, a, lenB);
    this.moveRow(spare, b, lenA);
  }

  private allocate(cap: number): void {
    const { layers, kvHeads: h, headDim: d, dtype } = this.geometry;
    const size = (this.maxRows + 1) * h * cap * d; // +1: scratch row for swaps
    const make = (): KvArray => (dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size));
    this.keys = Array.from({ length: layers }, make);
    this.values = Array.from({ length: layers }, make);
    this.cap = cap;
  }
}
