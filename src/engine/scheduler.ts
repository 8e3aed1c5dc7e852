// Plans each engine step under its budgets, and owns the KV block accounting of every sequence.
//
// Order of a plan (vLLM's): first the running sequences get the blocks their next position
// needs, preempting the youngest running sequences when the pool is dry (they give their blocks
// back and are recomputed later, their random stream untouched); then waiting sequences are
// admitted, first come first served, while their prompt's blocks (less what the prefix cache
// already holds) fit above a small reserve; then positions are handed out: one to every decoding
// sequence, and what is left of the step's position budget to prefills, in admission order.
// While any sequence decodes, prefill gets at most `maxPrefillPositions` a step, so a burst of
// long prompts cannot stretch the decoding streams' steps; with nothing decoding it gets the
// whole budget.
import { BlockManager, blockHash } from './block-manager.js';
import type { Sequence } from './sequence.js';

export interface SchedulerLimits {
  /** sequences in the running batch at most */
  maxRunning: number;
  /** backbone positions per step at most (decode and prefill together; at least maxRunning) */
  maxBatchedPositions: number;
  /** prefill positions per step while sequences decode */
  maxPrefillPositions: number;
}

export interface PrefillPiece {
  seq: Sequence;
  positions: number;
}

export interface StepPlan {
  /** one new position each */
  decode: Sequence[];
  prefill: PrefillPiece[];
  /** no backbone position this step: their sampler continues drawing */
  drawing: Sequence[];
  /** sequences that lost their blocks this step (back in the queue) */
  preempted: Sequence[];
}

export class Scheduler {
  readonly waiting: Sequence[] = [];
  /** in admission order */
  private runningList: Sequence[] = [];
  private admissions = 0;
  preemptions = 0;
  /** positions admissions looked up in the prefix cache, and those found there */
  prefixQueried = 0;
  prefixHits = 0;
  /** blocks admission keeps free for running sequences to grow into */
  readonly reserveBlocks: number;

  constructor(readonly blocks: BlockManager, readonly limits: SchedulerLimits) {
    this.reserveBlocks = Math.max(1, Math.floor(blocks.blocks / 100));
  }

  get running(): readonly Sequence[] {
    return this.runningList;
  }

  enqueue(seq: Sequence): void {
    this.waiting.push(seq);
  }

  /** Takes a sequence out of the engine (finished, cancelled or failed) and frees its blocks. */
  remove(seq: Sequence): void {
    if (seq.state === 'waiting') {
      const i = this.waiting.indexOf(seq);
      if (i !== -1) this.waiting.splice(i, 1);
    } else if (seq.state === 'running') {
      this.runningList = this.runningList.filter((s) => s !== seq);
    }
    this.freeBlocks(seq);
    seq.state = 'finished';
  }

  schedule(now: number): StepPlan {
    const preempted: Sequence[] = [];
    // 1. Room for the running sequences' next position.
    for (const seq of [...this.runningList]) {
      if (seq.state !== 'running' || seq.pending === 0) continue;
      while (seq.state === 'running' && this.blocks.blocksFor(seq.known) > seq.blocks.length) {
        const block = this.blocks.allocate();
        if (block !== null) {
          seq.blocks.push(block);
          continue;
        }
        const victim = this.runningList[this.runningList.length - 1]!;
        this.preempt(victim);
        preempted.push(victim);
      }
    }
    // 2. Admission.
    for (let i = 0; i < this.waiting.length && this.runningList.length < this.limits.maxRunning;) {
      const seq = this.waiting[i]!;
      const outcome = this.tryAdmit(seq, now);
      if (outcome === 'admitted') this.waiting.splice(i, 1);
      else if (outcome === 'deferred') i++;
      else break;
    }
    // 3. Positions.
    const decode: Sequence[] = [];
    const drawing: Sequence[] = [];
    const prefilling: Sequence[] = [];
    for (const seq of this.runningList) {
      if (seq.pending === 1) decode.push(seq);
      else if (seq.pending === 0) drawing.push(seq);
      else prefilling.push(seq);
    }
    let budget = this.limits.maxBatchedPositions - decode.length;
    if (decode.length > 0) budget = Math.min(budget, this.limits.maxPrefillPositions);
    const prefill: PrefillPiece[] = [];
    for (const seq of prefilling) {
      if (budget <= 0) break;
      const positions = Math.min(seq.pending, budget);
      prefill.push({ seq, positions });
      budget -= positions;
    }
    return { decode, prefill, drawing, preempted };
  }

  /** After a backbone call wrote `positions` more positions of `seq`: publish its newly full blocks to the prefix cache. */
  computed(seq: Sequence, positions: number): void {
    const bs = this.blocks.blockSize;
    const before = Math.floor(seq.computed / bs);
    seq.computed += positions;
    const full = Math.floor(seq.computed / bs);
    for (let j = before; j < full; j++) {
      if (j < seq.hashes.length) {
        this.blocks.markReady(seq.blocks[j]!);
        continue;
      }
      const hash = blockHash(j > 0 ? seq.hashes[j - 1]! : null, seq.inputs(j * bs, bs));
      seq.hashes.push(hash);
      this.blocks.register(seq.blocks[j]!, hash, true);
    }
  }

  /**
   * Admits a waiting sequence if its blocks fit. The prefix cache gives it every full block of
   * its known inputs that is cached, except the one holding its last position, which it must
   * compute to get the hidden state it samples from. A block another sequence is computing right
   * now (the n choices of one prompt, or the same prompt twice) defers it until that is done.
   */
  private tryAdmit(seq: Sequence, now: number): 'admitted' | 'deferred' | 'no_room' {
    const bm = this.blocks;
    const bs = bm.blockSize;
    const fullKnown = Math.floor(seq.known / bs);
    // A sequence's inputs never change, so the hashes of its full blocks are computed once (a
    // deferred or queued sequence tries admission every step).
    const hashes = seq.hashes;
    for (let j = hashes.length; j < fullKnown; j++) hashes.push(blockHash(j > 0 ? hashes[j - 1]! : null, seq.inputs(j * bs, bs)));
    const hittable = Math.floor((seq.known - 1) / bs);
    const hits: number[] = [];
    for (let j = 0; j < hittable; j++) {
      const found = bm.lookup(hashes[j]!);
      if (!found) break;
      if (!found.ready) return 'deferred';
      hits.push(found.block);
    }
    const need = bm.blocksFor(seq.known) - hits.length;
    // Cached blocks it would share are counted in `available` while unreferenced.
    const sharedFree = hits.filter((b) => bm.refCount(b) === 0).length;
    if (bm.available - sharedFree - need < this.reserveBlocks) return 'no_room';
    for (const b of hits) bm.share(b);
    seq.blocks = hits.slice();
    for (let j = hits.length; j < need + hits.length; j++) {
      seq.blocks.push(bm.allocate()!);
      // Publish the blocks it will compute, as pending, so that an identical prefix waits for them.
      if (j < fullKnown) bm.register(seq.blocks[j]!, hashes[j]!, false);
    }
    seq.computed = hits.length * bs;
    this.prefixQueried += hittable * bs;
    this.prefixHits += seq.computed;
    seq.cachedPositions = Math.max(seq.cachedPositions, seq.computed);
    seq.state = 'running';
    seq.admission = ++this.admissions;
    if (seq.admittedAt === 0) seq.admittedAt = now;
    this.runningList.push(seq);
    return 'admitted';
  }

  /** Gives a running sequence's blocks back; it waits at the head of the queue to be recomputed. */
  private preempt(seq: Sequence): void {
    this.runningList = this.runningList.filter((s) => s !== seq);
    this.freeBlocks(seq);
    seq.state = 'waiting';
    seq.preemptions++;
    this.preemptions++;
    this.waiting.unshift(seq);
  }

  private freeBlocks(seq: Sequence): void {
    this.blocks.release(seq.blocks);
    seq.blocks = [];
    seq.computed = 0;
  }
}
