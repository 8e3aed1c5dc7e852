// Evaluation's view of the paged KV pool: a fixed number of rows, row r owning the blocks
// [r * perRow, (r + 1) * perRow). A row can start from another row's prefix: it borrows the
// prefix's full blocks through its block table and gets a copy of the partial last one, so a
// fork costs at most one block copy whatever the prefix length.
import { KvPool, type KvGeometry } from '../model/kv-pool.js';
import type { BackboneBatch } from '../model/runner.js';

const BLOCK_SIZE = 16;

export class RowCache {
  readonly pool: KvPool;
  private readonly perRow: number;
  private readonly tables: number[][];

  constructor(geometry: KvGeometry, rows: number, positions: number) {
    this.perRow = Math.ceil(positions / BLOCK_SIZE);
    this.pool = new KvPool(geometry, rows * this.perRow, BLOCK_SIZE);
    this.tables = Array.from({ length: rows }, (_, r) => this.own(r));
  }

  /** Row `to` continues row `from`'s first `length` positions. */
  fork(from: number, to: number, length: number): void {
    const full = Math.floor(length / BLOCK_SIZE);
    const table = [...this.tables[from]!.slice(0, full), ...this.own(to).slice(full)];
    const rest = length - full * BLOCK_SIZE;
    if (rest > 0) this.pool.copyBlock(this.tables[from]![full]!, table[full]!, rest);
    this.tables[to] = table;
  }

  /** Row `row` back on its own blocks. */
  reset(row: number): void {
    this.tables[row] = this.own(row);
  }

  /** A backbone batch over `rows`, each with `newLen` inputs in `ids`. */
  batch(rows: readonly number[], ids: BigInt64Array, newLen: number, pastLen: number[], valid: number[]): BackboneBatch {
    const width = Math.max(1, ...rows.map((_, i) => Math.ceil((pastLen[i]! + valid[i]!) / BLOCK_SIZE)));
    const blockTable = new BigInt64Array(rows.length * width);
    rows.forEach((row, i) => {
      for (let j = 0; j < width; j++) blockTable[i * width + j] = BigInt(this.tables[row]![j]!);
    });
    return { ids, rows: rows.length, newLen, pastLen, valid, blockTable, width };
  }

  private own(row: number): number[] {
    return Array.from({ length: this.perRow }, (_, j) => row * this.perRow + j);
  }
}
