import { checkK, chunkCount } from './chunks.js';

const EMPTY = -1;
const MIN_CAPACITY = 64;

/**
 * Counts the distinct chunks of a pool with an open-addressing hash table over the K ids.
 * The hash only picks a slot; membership is decided by comparing all K ids, so two different
 * chunks are never merged, whatever the hash does. Tables are reused across pools, and only the
 * slots used last time are cleared, so a steady-state count allocates nothing.
 */
export class ChunkCounter {
  /** Per slot: pool index of the chunk's first occurrence, or EMPTY. */
  private slots = new Int32Array(0);
  private slotCounts = new Int32Array(0);
  /** Slot of the j-th distinct chunk, in order of first appearance (deterministic iteration). */
  private order = new Int32Array(0);
  private mask = 0;
  private distinct = 0;
  private max = 0;

  /** Counts the pool's chunks; returns the number of distinct ones. */
  count(pool: Int32Array, k: number): number {
    checkK(k);
    const size = chunkCount(pool, k);
    for (let j = 0; j < this.distinct; j++) this.slots[this.order[j]!] = EMPTY;
    this.reserve(size);
    const slots = this.slots;
    const counts = this.slotCounts;
    const mask = this.mask;
    let distinct = 0;
    let max = 0;
    for (let i = 0; i < size; i++) {
      const base = i * k;
      let h = 0x9e3779b9 ^ k;
      for (let t = 0; t < k; t++) {
        h = Math.imul(h ^ pool[base + t]!, 0x85ebca6b);
        h ^= h >>> 13;
      }
      h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35);
      h ^= h >>> 16;
      let slot = h & mask;
      for (;;) {
        const rep = slots[slot]!;
        if (rep === EMPTY) {
          slots[slot] = i;
          counts[slot] = 1;
          this.order[distinct++] = slot;
          if (max < 1) max = 1;
          break;
        }
        if (equalAt(pool, rep * k, base, k)) {
          const c = counts[slot]! + 1;
          counts[slot] = c;
          if (c > max) max = c;
          break;
        }
        slot = (slot + 1) & mask;
      }
    }
    this.distinct = distinct;
    this.max = max;
    return distinct;
  }

  /** Distinct chunks in the last counted pool. */
  get size(): number {
    return this.distinct;
  }

  /** Highest count in the last counted pool. */
  get maxCount(): number {
    return this.max;
  }

  /** Pool index of the first occurrence of the j-th distinct chunk (0 <= j < size). */
  representative(j: number): number {
    return this.slots[this.order[j]!]!;
  }

  /** How many times the j-th distinct chunk occurs in the pool. */
  countOf(j: number): number {
    return this.slotCounts[this.order[j]!]!;
  }

  private reserve(size: number): void {
    // Load factor <= 1/2 keeps linear probing short.
    if (this.slots.length >= 2 * size && this.order.length >= size) return;
    let capacity = MIN_CAPACITY;
    while (capacity < 2 * size) capacity *= 2;
    this.slots = new Int32Array(capacity).fill(EMPTY);
    this.slotCounts = new Int32Array(capacity);
    this.order = new Int32Array(capacity);
    this.mask = capacity - 1;
    this.distinct = 0;
  }
}

function equalAt(pool: Int32Array, a: number, b: number, k: number): boolean {
  for (let t = 0; t < k; t++) if (pool[a + t] !== pool[b + t]) return false;
  return true;
}
