// Continuous batching: which sequences run this step, and where their cache rows are.
// FIFO admission up to a cap on running sequences (the cache has one row per running
// sequence). Rows are kept ordered: decoding sequences in rows [0, D), prefilling ones in
// [D, D + P), so each of the two backbone calls of a step reads one contiguous block of the
// cache without copying it. Leaving or promotion reorders rows by moving only the rows that must.
import type { KvCache } from './kv-cache.js';
import type { Sequence } from './sequence.js';

export class Scheduler {
  readonly waiting: Sequence[] = [];
  /** running sequences, in row order */
  private rows: Sequence[] = [];

  constructor(private readonly kv: KvCache, readonly maxRunning: number) {}

  get running(): readonly Sequence[] {
    return this.rows;
  }

  get decoding(): Sequence[] {
    return this.rows.filter((s) => s.state === 'decode');
  }

  get prefilling(): Sequence[] {
    return this.rows.filter((s) => s.state === 'prefill');
  }

  /** positions held by running sequences */
  get usedPositions(): number {
    return this.rows.reduce((n, s) => n + s.pastLen, 0);
  }

  enqueue(seq: Sequence): void {
    this.waiting.push(seq);
  }

  /** Removes a waiting sequence; false if it is not waiting. */
  dropWaiting(seq: Sequence): boolean {
    const i = this.waiting.indexOf(seq);
    if (i === -1) return false;
    this.waiting.splice(i, 1);
    return true;
  }

  /** Moves waiting sequences into free rows, first come first served. */
  admit(now: number): Sequence[] {
    const admitted: Sequence[] = [];
    while (this.waiting.length > 0 && this.rows.length < this.maxRunning) {
      const seq = this.waiting.shift()!;
      seq.state = 'prefill';
      seq.row = this.rows.length;
      seq.admittedAt = now;
      this.rows.push(seq);
      admitted.push(seq);
    }
    return admitted;
  }

  /** Drops finished sequences, then restores the row order [decode..., prefill...]. */
  settle(): void {
    for (const s of this.rows) if (s.state === 'finished') s.row = -1;
    const live = this.rows.filter((s) => s.state !== 'finished');
    const decode = live.filter((s) => s.state === 'decode');
    const prefill = live.filter((s) => s.state === 'prefill');
    const target = new Map<Sequence, number>();
    const place = (group: Sequence[], start: number) => {
      const end = start + group.length;
      const taken = new Set<number>();
      for (const s of group) if (s.row >= start && s.row < end) {
        target.set(s, s.row);
        taken.add(s.row);
      }
      let hole = start;
      for (const s of group) {
        if (target.has(s)) continue;
        while (taken.has(hole)) hole++;
        target.set(s, hole);
        taken.add(hole++);
      }
    };
    place(decode, 0);
    place(prefill, decode.length);
    // Apply the permutation: each swap or move puts at least one sequence in its final row.
    const occupant = new Map<number, Sequence>();
    for (const s of live) occupant.set(s.row, s);
    for (const s of live) {
      while (s.row !== target.get(s)) {
        const dest = target.get(s)!;
        const other = occupant.get(dest);
        if (other) {
          this.kv.swapRows(s.row, dest, s.pastLen, other.pastLen);
          occupant.set(s.row, other);
          other.row = s.row;
        } else {
          this.kv.moveRow(s.row, dest, s.pastLen);
          occupant.delete(s.row);
        }
        occupant.set(dest, s);
        s.row = dest;
      }
    }
    // Batches are built in list order, so the list must follow the rows.
    this.rows = live.sort((a, b) => a.row - b.row);
  }
}
