// Incremental detokenization: turns a growing list of token ids into text deltas without
// re-decoding the whole output each step, and without ever emitting half a UTF-8 character
// (a character whose bytes straddle two chunks waits until its last byte arrives).
//
// It decodes a short window of recent ids. Once the window's text ends on a whole character,
// that text is a prefix of every later decode of the same window (UTF-8 is self-synchronising
// and byte-level decoding is concatenation), so the delta is the new decode minus the cached
// window text: one decode per step, plus one whenever the window slides forward.

export interface Decoder {
  decode(ids: readonly number[]): string;
}

const REPLACEMENT = '\uFFFD';
/** ids decoded at most before the window slides */
const WINDOW = 16;
/** ids kept when it slides (enough context for byte-level merges and leading spaces) */
const KEEP = 4;

export class IncrementalDetokenizer {
  private readonly ids: number[] = [];
  private windowStart = 0;
  /** decode of ids[windowStart, emittedEnd): text already emitted */
  private windowText = '';

  constructor(private readonly decoder: Decoder) {}

  /** Appends ids and returns the newly completed text (possibly ''). */
  push(newIds: readonly number[]): string {
    for (const id of newIds) this.ids.push(id);
    const text = this.decoder.decode(this.ids.slice(this.windowStart));
    if (text.length <= this.windowText.length || text.endsWith(REPLACEMENT)) return '';
    const delta = text.slice(this.windowText.length);
    if (this.ids.length - this.windowStart > WINDOW) {
      this.windowStart = this.ids.length - KEEP;
      this.windowText = this.decoder.decode(this.ids.slice(this.windowStart));
    } else {
      this.windowText = text;
    }
    return delta;
  }

  /** Whatever is still held back (an incomplete character at the very end), as is. */
  flush(): string {
    const text = this.decoder.decode(this.ids.slice(this.windowStart));
    const rest = text.length > this.windowText.length ? text.slice(this.windowText.length) : '';
    this.windowStart = this.ids.length;
    this.windowText = '';
    return rest;
  }
}
