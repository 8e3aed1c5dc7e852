// Progress on stderr with an ETA: a redrawn bar on a terminal, a line every tenth otherwise
// (logs of CI jobs and `nohup` runs stay short).

export interface ProgressIO {
  stderr: (s: string) => void;
  stderrIsTTY: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export class ProgressBar {
  private done = 0;
  private lastDraw = 0;
  private lastTenth = 0;
  private readonly started = performance.now();

  constructor(private readonly io: ProgressIO | null, private readonly title: string, private readonly total: number, private readonly unit: string) {
    this.draw(true);
  }

  advance(n: number): void {
    this.done += n;
    this.draw(this.done >= this.total);
  }

  end(): void {
    if (!this.io) return;
    const elapsed = formatDuration((performance.now() - this.started) / 1000);
    if (this.io.stderrIsTTY) this.io.stderr('\n');
    else this.io.stderr(`${this.title}: ${this.done} ${this.unit} in ${elapsed}\n`);
  }

  /** "12/384 windows, 0:31 elapsed, ETA 1:05" */
  status(now = performance.now()): string {
    const elapsed = (now - this.started) / 1000;
    const eta = this.done > 0 ? (elapsed / this.done) * (this.total - this.done) : NaN;
    return `${this.done}/${this.total} ${this.unit}, ${formatDuration(elapsed)} elapsed, ETA ${formatDuration(eta)}`;
  }

  private draw(force: boolean): void {
    if (!this.io) return;
    const now = performance.now();
    if (this.io.stderrIsTTY) {
      if (!force && now - this.lastDraw < 200) return;
      this.lastDraw = now;
      const width = 30;
      const filled = this.total > 0 ? Math.min(width, Math.round((this.done / this.total) * width)) : width;
      this.io.stderr(`\r${this.title} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.status(now)}   `);
      return;
    }
    const tenth = this.total > 0 ? Math.floor((this.done / this.total) * 10) : 10;
    if (this.done === 0 ? force : tenth > this.lastTenth) {
      this.lastTenth = tenth;
      this.io.stderr(`${this.title}: ${this.status(now)}\n`);
    }
  }
}
