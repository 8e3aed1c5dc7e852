// API keys: `Authorization: Bearer <key>`, compared in constant time. Health, readiness and
// metrics stay open so that probes and Prometheus need no secret.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { unauthorized } from './errors.js';

export const OPEN_PATHS = new Set(['/health', '/ready', '/metrics']);

const digest = (s: string) => createHash('sha256').update(s).digest();

export function registerAuth(app: FastifyInstance, keys: readonly string[]): void {
  if (keys.length === 0) return;
  // Hashing first gives equal-length buffers, so the comparison leaks neither content nor length.
  const allowed = keys.map(digest);
  app.addHook('onRequest', async (req) => {
    if (req.method === 'OPTIONS' || OPEN_PATHS.has(req.url.split('?')[0]!)) return;
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    const given = digest(m ? m[1]!.trim() : '');
    let ok = false;
    for (const key of allowed) ok = timingSafeEqual(key, given) || ok;
    if (!ok) throw unauthorized();
  });
}
