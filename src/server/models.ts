// GET /v1/models, and chat completions (refused: the shipped bundles carry no chat template).
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';
import { notFound } from './errors.js';

export function registerModels(app: FastifyInstance, ctx: ServerContext): void {
  const created = Math.floor(ctx.startedAt / 1000);
  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: ctx.served.id, object: 'model', created, owned_by: 'calm-serve', kind: ctx.served.kind, context_tokens: ctx.engine.info.contextTokens }],
  }));
  app.get('/v1/models/:id', async (req) => {
    const { id } = req.params as { id: string };
    if (id !== ctx.served.id) throw notFound(`The model ${JSON.stringify(id)} does not exist; this server serves ${JSON.stringify(ctx.served.id)}.`, 'model_not_found');
    return { id, object: 'model', created, owned_by: 'calm-serve' };
  });
  app.post('/v1/chat/completions', async () => {
    throw notFound(
      `The model ${JSON.stringify(ctx.served.id)} has no chat template (its bundle manifest defines none): it is a plain ` +
        'language model. Use POST /v1/completions.',
      'chat_template_missing',
    );
  });
}
