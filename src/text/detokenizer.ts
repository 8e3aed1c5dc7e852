// Incremental detokenization: turns a growing list of token ids into text deltas without
// re-decoding the whole output each step, and without ever emitting half a UTF-8 character
// (a character whose bytes straddle two chunks waits until its last byte arrives).

export interface Decoder {
  decode(ids: readonly number[]): string;
}

const REPLACEMENT = '\uFFFD';

export class IncrementalDetokenizer {
  private readonly ids: number[] = [];
  /** ids before this index are already fully emitted and no longer decoded */
  private prefixStart = 0;
  /** ids[prefixStart, readStart) decode to text already emitted */
  private readStart = 0;

  constructor(private readonly decoder: Decoder) {}

  /** Appends ids and returns the newly completed text (possibly ''). */
  push(newIds: readonly number[]): string {
    for (const id of newIds) this.ids.push(id);
    // Decoding from a few tokens back keeps byte-level merges and leading spaces right.
    const prefixText = this.decoder.decode(this.ids.slice(this.prefixStart, this.readStart));
    const fullText = this.decoder.decode(this.ids.slice(this.prefixStart));
    if (fullText.length <= prefixText.length || fullText.endsWith(REPLACEMENT)) return '';
    const delta = fullText.slice(prefixText.length);
    this.prefixStart = this.readStart;
    this.readStart = this.ids.length;
    return delta;
  }

  /** Whatever is still held back (an incomplete character at the very end), as is. */
  flush(): string {
    const prefixText = this.decoder.decode(this.ids.slice(this.prefixStart, this.readStart));
    const fullText = this.decoder.decode(this.ids.slice(this.prefixStart));
    this.prefixStart = this.readStart = this.ids.length;
    return fullText.slice(prefixText.length);
  }
}
