// GET /health: every engine loop is alive (fails when one is stuck, not only when the process is
// down). GET /ready: every model is loaded and the server is not draining. A server is one unit
// for its probes: a model that cannot serve makes the whole pod unready or restarted.
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';
import { draining } from './errors.js';
import { recordFailure } from './logging.js';

/** Names the model in a status only when there are several: one model's statuses stay as they were. */
function whose(ctx: ServerContext, id: string): string {
  return ctx.models.length > 1 ? ` (model ${id})` : '';
}

export function registerHealth(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/health', async (_req, reply) => {
    let oldest = 0;
    for (const { id, engine } of ctx.models) {
      const age = Date.now() - engine.lastHeartbeat;
      if (!engine.alive) return reply.code(503).send({ status: `engine thread has exited${whose(ctx, id)}` });
      if (age > ctx.config.healthStallMs) {
        return reply.code(503).send({ status: `engine loop has shown no progress for ${Math.round(age / 1000)} s${whose(ctx, id)}`, heartbeat_age_s: age / 1000 });
      }
      oldest = Math.max(oldest, age);
    }
    return { status: 'ok', heartbeat_age_s: oldest / 1000 };
  });
  app.get('/ready', async (req, reply) => {
    if (ctx.admission.draining) {
      recordFailure(req, draining());
      return reply.code(503).send({ status: 'draining' });
    }
    const dead = ctx.models.find((m) => !m.engine.alive);
    if (dead) return reply.code(503).send({ status: `engine thread has exited${whose(ctx, dead.id)}` });
    return ctx.models.length === 1 ? { status: 'ready', model: ctx.served.id } : { status: 'ready', models: ctx.models.map((m) => m.id) };
  });
}
