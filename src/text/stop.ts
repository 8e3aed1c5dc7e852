// Stop strings over a stream of text deltas. A stop string may straddle deltas, so text that
// could be the start of one is held back until it is known not to be; the returned text
// always ends before the stop string.

export interface StopResult {
  /** text safe to emit now */
  text: string;
  /** the stop string that matched, if any; the stream must end */
  stopped: string | null;
}

export class StopMatcher {
  private pending = '';
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = stops.reduce((n, s) => Math.max(n, s.length), 0);
  }

  push(delta: string): StopResult {
    if (this.stops.length === 0) return { text: delta, stopped: null };
    const text = this.pending + delta;
    let cut = -1;
    let which: string | null = null;
    for (const s of this.stops) {
      const at = text.indexOf(s);
      if (at !== -1 && (cut === -1 || at < cut)) {
        cut = at;
        which = s;
      }
    }
    if (which !== null) {
      this.pending = '';
      return { text: text.slice(0, cut), stopped: which };
    }
    const hold = this.heldSuffix(text);
    this.pending = text.slice(text.length - hold);
    return { text: text.slice(0, text.length - hold), stopped: null };
  }

  /** The rest of the text once the stream ends for another reason. */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return rest;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
  private heldSuffix(text: string): number {
    for (let n = Math.min(this.longest - 1, text.length); n > 0; n--) {
      const tail = text.slice(text.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) return n;
    }
    return 0;
  }
}
