// The benchmark chart, SVG written by hand: three panels against the load level (max
// concurrency or request rate): output token throughput, TTFT p50/p99 and TPOT p50/p99.
// Load levels are spaced evenly (1, 4, 16, 64 read as a log scale) and labelled with their values.

export interface ChartPoint {
  /** the load level as printed on the x axis: "4", "inf", "2.5" */
  label: string;
  outputThroughput: number;
  ttftP50: number;
  ttftP99: number;
  tpotP50: number;
  tpotP99: number;
}

export interface ChartOptions {
  title: string;
  /** a second line under the title (model, prompt and output lengths) */
  subtitle?: string;
  /** x axis name, e.g. "max concurrency" */
  xLabel: string;
}

interface Series {
  name: string;
  color: string;
  dashed: boolean;
  values: number[];
}

const PANEL_W = 340;
const PANEL_H = 260;
const MARGIN = { left: 64, right: 16, top: 48, bottom: 52 };
const COLORS = { throughput: '#1f77b4', p50: '#2ca02c', p99: '#d62728' };

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** A round axis maximum and tick step for values up to max (5 or so ticks). */
export function niceScale(max: number): { max: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { max: 1, step: 0.2 };
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw)!;
  return { max: Math.ceil(max / step - 1e-9) * step, step };
}

function fmt(v: number, step: number): string {
  let d = 0;
  while (d < 6 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-9) d++;
  return v.toFixed(d);
}

function num(v: number): string {
  return Number.isFinite(v) ? String(Math.round(v * 100) / 100) : '0';
}

function panel(x0: number, y0: number, title: string, unit: string, labels: string[], series: Series[], xLabel: string): string {
  const w = PANEL_W - MARGIN.left - MARGIN.right;
  const h = PANEL_H - MARGIN.top - MARGIN.bottom;
  const left = x0 + MARGIN.left;
  const top = y0 + MARGIN.top;
  const finite = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v));
  const { max, step } = niceScale(Math.max(0, ...finite));
  const inset = 18; // keep the first and last points off the axes
  const xs = labels.map((_, i) => left + (labels.length === 1 ? w / 2 : inset + (i * (w - 2 * inset)) / (labels.length - 1)));
  const y = (v: number) => top + h - (Math.max(0, Number.isFinite(v) ? v : 0) / max) * h;
  const out: string[] = [`<g class="panel">`];
  out.push(`<text x="${num(x0 + PANEL_W / 2)}" y="${num(y0 + 18)}" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(title)}</text>`);
  // grid and y ticks
  for (let v = 0; v <= max + step / 2; v += step) {
    const yy = num(y(v));
    out.push(`<line x1="${num(left)}" y1="${yy}" x2="${num(left + w)}" y2="${yy}" stroke="#e0e0e0" stroke-width="1"/>`);
    out.push(`<text x="${num(left - 6)}" y="${yy}" text-anchor="end" dominant-baseline="middle" font-size="10">${fmt(v, step)}</text>`);
  }
  out.push(`<text transform="translate(${num(x0 + 14)},${num(top + h / 2)}) rotate(-90)" text-anchor="middle" font-size="11">${escapeXml(unit)}</text>`);
  // axes
  out.push(`<line x1="${num(left)}" y1="${num(top)}" x2="${num(left)}" y2="${num(top + h)}" stroke="#333" stroke-width="1"/>`);
  out.push(`<line x1="${num(left)}" y1="${num(top + h)}" x2="${num(left + w)}" y2="${num(top + h)}" stroke="#333" stroke-width="1"/>`);
  labels.forEach((l, i) => {
    out.push(`<line x1="${num(xs[i]!)}" y1="${num(top + h)}" x2="${num(xs[i]!)}" y2="${num(top + h + 4)}" stroke="#333" stroke-width="1"/>`);
    out.push(`<text x="${num(xs[i]!)}" y="${num(top + h + 16)}" text-anchor="middle" font-size="10">${escapeXml(l)}</text>`);
  });
  out.push(`<text x="${num(left + w / 2)}" y="${num(top + h + 34)}" text-anchor="middle" font-size="11">${escapeXml(xLabel)}</text>`);
  // series
  series.forEach((s, si) => {
    const pts = s.values.map((v, i) => `${num(xs[i]!)},${num(y(v))}`).join(' ');
    out.push(`<g class="series" data-name="${escapeXml(s.name)}">`);
    out.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    s.values.forEach((v, i) => {
      out.push(`<circle cx="${num(xs[i]!)}" cy="${num(y(v))}" r="3" fill="${s.color}"><title>${escapeXml(`${s.name} at ${xLabel} ${labels[i]}: ${num(v)} ${unit}`)}</title></circle>`);
    });
    out.push('</g>');
    // legend: one row between the panel's title and its plot
    const lx = left + si * 100;
    const ly = y0 + 34;
    out.push(`<line x1="${num(lx)}" y1="${num(ly)}" x2="${num(lx + 20)}" y2="${num(ly)}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${num(lx + 24)}" y="${num(ly)}" dominant-baseline="middle" font-size="10">${escapeXml(s.name)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** The whole SVG document. */
export function renderChart(points: readonly ChartPoint[], o: ChartOptions): string {
  const labels = points.map((p) => p.label);
  const header = o.subtitle ? 52 : 34;
  const width = PANEL_W * 3;
  const height = header + PANEL_H;
  const parts = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<title>${escapeXml(o.title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(o.title)}</text>`,
  ];
  if (o.subtitle) parts.push(`<text x="${width / 2}" y="42" text-anchor="middle" font-size="12" fill="#555">${escapeXml(o.subtitle)}</text>`);
  parts.push(panel(0, header, 'Output token throughput', 'tokens/s', labels,
    [{ name: 'output tok/s', color: COLORS.throughput, dashed: false, values: points.map((p) => p.outputThroughput) }], o.xLabel));
  parts.push(panel(PANEL_W, header, 'Time to first token', 'ms', labels, [
    { name: 'TTFT p50', color: COLORS.p50, dashed: false, values: points.map((p) => p.ttftP50) },
    { name: 'TTFT p99', color: COLORS.p99, dashed: true, values: points.map((p) => p.ttftP99) },
  ], o.xLabel));
  parts.push(panel(PANEL_W * 2, header, 'Time per output token', 'ms', labels, [
    { name: 'TPOT p50', color: COLORS.p50, dashed: false, values: points.map((p) => p.tpotP50) },
    { name: 'TPOT p99', color: COLORS.p99, dashed: true, values: points.map((p) => p.tpotP99) },
  ], o.xLabel));
  parts.push('</svg>', '');
  return parts.join('\n');
}
