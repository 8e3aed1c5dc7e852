// GET /health: the engine loop is alive (fails when it is stuck, not only when the process is
// down). GET /ready: the model is loaded and the server is not draining.
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';
import { draining } from './errors.js';
import { recordFailure } from './logging.js';

export function registerHealth(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/health', async (_req, reply) => {
    const age = Date.now() - ctx.engine.lastHeartbeat;
    if (!ctx.engine.alive) return reply.code(503).send({ status: 'engine thread has exited' });
    if (age > ctx.config.healthStallMs) {
      return reply.code(503).send({ status: `engine loop has shown no progress for ${Math.round(age / 1000)} s`, heartbeat_age_s: age / 1000 });
    }
    return { status: 'ok', heartbeat_age_s: age / 1000 };
  });
  app.get('/ready', async (req, reply) => {
    if (ctx.admission.draining) {
      recordFailure(req, draining());
      return reply.code(503).send({ status: 'draining' });
    }
    if (!ctx.engine.alive) return reply.code(503).send({ status: 'engine thread has exited' });
    return { status: 'ready', model: ctx.served.id };
  });
}
