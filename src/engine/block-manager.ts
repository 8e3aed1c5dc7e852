// Block accounting for the paged KV pool (the memory itself is src/model/kv-pool.ts): which
// blocks are free, how many sequences reference each, and the prefix cache, which maps the hash
// of a full block's contents (and of everything before it) to the block that holds its keys and
// values, so that a prompt seen before is not computed again.
//
// A block whose last reference goes away keeps its contents and its hash and becomes
// evictable: it is reused for a new allocation only when no never-used or uncached block is
// left, least recently released first. Free blocks are handed out lowest id first, so the pool
// memory actually touched stays as small as the peak use.
import { createHash } from 'node:crypto';

/** Hash of a full block: its input ids and the hash of the block before it (null for the first). */
export function blockHash(parent: string | null, ids: Int32Array): string {
  const h = createHash('sha256');
  if (parent !== null) h.update(parent);
  h.update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
  return h.digest('base64url').slice(0, 22);
}

export interface CachedBlock {
  block: number;
  /** false while the sequence that will compute it has not done so yet */
  ready: boolean;
}

export class BlockManager {
  private readonly refs: Int32Array;
  private readonly hashes: (string | null)[];
  private readonly ready: Uint8Array;
  private readonly byHash = new Map<string, number>();
  /** never-used or uncached free blocks, as a stack whose top is the lowest id */
  private readonly free: number[] = [];
  /** unreferenced blocks that still hold a cached prefix, least recently released first */
  private readonly evictable = new Set<number>();

  constructor(readonly blocks: number, readonly blockSize: number) {
    this.refs = new Int32Array(blocks);
    this.hashes = new Array<string | null>(blocks).fill(null);
    this.ready = new Uint8Array(blocks);
    for (let b = blocks - 1; b >= 0; b--) this.free.push(b);
  }

  /** Blocks a new allocation can take (free plus evictable). */
  get available(): number {
    return this.free.length + this.evictable.size;
  }

  /** Blocks referenced by at least one sequence. */
  get used(): number {
    return this.blocks - this.available;
  }

  blocksFor(positions: number): number {
    return Math.ceil(positions / this.blockSize);
  }

  /** A block for a new sequence position, or null when the pool is dry. */
  allocate(): number | null {
    let block = this.free.pop();
    if (block === undefined) {
      const oldest = this.evictable.values().next();
      if (oldest.done) return null;
      block = oldest.value;
      this.evictable.delete(block);
      this.forget(block);
    }
    this.refs[block] = 1;
    return block;
  }

  /** Drops one reference to each block. */
  release(blocks: readonly number[]): void {
    for (const block of blocks) {
      const refs = --this.refs[block]!;
      if (refs > 0) continue;
      if (refs < 0) throw new Error(`block ${block} released more often than it was referenced`);
      if (this.hashes[block] !== null && this.ready[block] === 1) this.evictable.add(block);
      else {
        this.forget(block);
        this.free.push(block);
      }
    }
  }

  /** The cached block with this hash, if any. */
  lookup(hash: string): CachedBlock | undefined {
    const block = this.byHash.get(hash);
    return block === undefined ? undefined : { block, ready: this.ready[block] === 1 };
  }

  /** One more reference to a cached block found by lookup. */
  share(block: number): void {
    if (this.refs[block] === 0) this.evictable.delete(block);
    this.refs[block]!++;
  }

  /**
   * Publishes a block under its hash: ready once its contents are written, or pending (another
   * sequence with the same prefix then waits for it instead of computing it twice). A hash that
   * another block already holds stays with that block.
   */
  register(block: number, hash: string, ready: boolean): void {
    const owner = this.byHash.get(hash);
    if (owner !== undefined && owner !== block) return;
    this.byHash.set(hash, block);
    this.hashes[block] = hash;
    if (ready) this.ready[block] = 1;
  }

  /** Marks a block's contents as written (a pending registration becomes a usable cache entry). */
  markReady(block: number): void {
    this.ready[block] = 1;
  }

  refCount(block: number): number {
    return this.refs[block]!;
  }

  private forget(block: number): void {
    const hash = this.hashes[block] ?? null;
    if (hash !== null && this.byHash.get(hash) === block) this.byHash.delete(hash);
    this.hashes[block] = null;
    this.ready[block] = 0;
  }
}
