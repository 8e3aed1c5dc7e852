// Resident memory of a served process over many short requests (docs/benchmarks.md, "Memory"):
//   npm run build && node scripts/rss-soak.mjs [requests=10000] [concurrency=8] [-- extra serve flags]
// Starts `node dist/cli.js serve` on a free local port, sends short completions (8 tokens,
// T = 1, prompts of varying length), and prints the server's RSS (from /proc) every 1,000.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const [requests = 10000, concurrency = 8] = process.argv.slice(2).filter((a) => /^\d+$/.test(a)).map(Number);
const extra = process.argv.includes('--') ? process.argv.slice(process.argv.indexOf('--') + 1) : [];
const port = await new Promise((resolve) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
const server = spawn(process.execPath, ['dist/cli.js', 'serve', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warn', ...extra], { stdio: ['ignore', 'inherit', 'inherit'] });
const url = `http://127.0.0.1:${port}`;
for (;;) {
  try { if ((await fetch(`${url}/ready`)).ok) break; } catch { /* not yet */ }
  await new Promise((r) => setTimeout(r, 200));
}
const model = (await (await fetch(`${url}/v1/models`)).json()).data[0].id;
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))[1]) / 1024;
// the main thread's V8 heap and ArrayBuffers, from the server's own metrics
async function heap() {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
  return `${get('nodejs_heap_size_used_bytes').toFixed(0)} | ${get('nodejs_external_memory_bytes').toFixed(0)}`;
}
const words = 'And God said let there be light and there was light and God saw the light that it was good'.split(' ');
console.log('| requests | RSS (MB) | main-thread heap used (MB) | external (MB) |\n|---:|---:|---:|---:|');
console.log(`| 0 | ${rss().toFixed(0)} | ${await heap()} |`);
let sent = 0;
let failed = 0;
async function worker() {
  while (sent < requests) {
    const i = sent++;
    const prompt = words.slice(0, 1 + (i % words.length)).join(' ') + ` ${i}`;
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt, max_tokens: 8, temperature: 1, ignore_eos: true }) });
    if (!res.ok) failed++;
    await res.arrayBuffer();
    if ((i + 1) % 1000 === 0) console.log(`| ${i + 1} | ${rss().toFixed(0)} | ${await heap()} |`);
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
console.log(`failed: ${failed}`);
server.kill('SIGTERM');
