// Time of one backbone call of the shipped CALM bundle by shape (rows x new positions at a past length), through
// the paged pool, median of 40 after 5 warm-up calls: `node --import tsx scripts/backbone-cost.ts [threads]`.
import { loadBundle } from '../src/model/bundle.js';
import { KvPool } from '../src/model/kv-pool.js';
import { ModelRunner } from '../src/model/runner.js';
import { openSessions } from '../src/model/sessions.js';
const b = loadBundle('models/bundles/calm-k4'); const m = b.manifest;
const threads = Number(process.argv[2] ?? 1);
const s = await openSessions(b, { device: 'cpu', intraOpThreads: threads, interOpThreads: 1 });
const pool = new KvPool({ layers: 4, kvHeads: 4, headDim: 64, dtype: 'float32' }, 8192, 16);
const r = new ModelRunner(m, s, pool);
async function t(rows: number, newLen: number, past: number) {
  const width = Math.ceil((past + newLen) / 16);
  const table = BigInt64Array.from({ length: rows * width }, (_, i) => BigInt(i));
  const ids = BigInt64Array.from({ length: rows * newLen * 4 }, (_, i) => BigInt(5 + (i % 3000)));
  const batch = { ids, rows, newLen, pastLen: Array(rows).fill(past), valid: Array(rows).fill(newLen), blockTable: table, width };
  for (let i = 0; i < 5; i++) await r.backbone(batch);
  const xs: number[] = [];
  for (let i = 0; i < 40; i++) { const t0 = performance.now(); await r.backbone(batch); xs.push(performance.now() - t0); }
  xs.sort((a, b) => a - b);
  console.log(`rows ${rows} new ${newLen} past ${past}: median ${xs[20]!.toFixed(2)} ms, p10 ${xs[4]!.toFixed(2)}, p90 ${xs[36]!.toFixed(2)}`);
}
await t(4, 1, 20); await t(4, 1, 200); await t(1, 8, 200); await t(1, 16, 200); await t(1, 32, 200); await t(1, 64, 200); await t(5, 16, 200); await t(8, 1, 20); await t(8, 1, 1125);
