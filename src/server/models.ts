// GET /v1/models, and chat completions (refused: the shipped bundles carry no chat template).
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';
import { modelNotFound, notFound } from './errors.js';

export function registerModels(app: FastifyInstance, ctx: ServerContext): void {
  const created = Math.floor(ctx.startedAt / 1000);
  const ids = ctx.models.map((m) => m.id);
  app.get('/v1/models', async () => ({
    object: 'list',
    data: ctx.models.map((m) => ({ id: m.id, object: 'model', created, owned_by: 'calm-serve', kind: m.kind, context_tokens: m.engine.info.contextTokens })),
  }));
  app.get('/v1/models/:id', async (req) => {
    const { id } = req.params as { id: string };
    if (!ids.includes(id)) throw modelNotFound(id, ids);
    return { id, object: 'model', created, owned_by: 'calm-serve' };
  });
  app.post('/v1/chat/completions', async () => {
    const names = ids.map((id) => JSON.stringify(id)).join(', ');
    throw notFound(
      ids.length === 1
        ? `The model ${names} has no chat template (its bundle manifest defines none): it is a plain language model. Use POST /v1/completions.`
        : `The models ${names} have no chat template (their bundle manifests define none): they are plain language models. Use POST /v1/completions.`,
      'chat_template_missing',
    );
  });
}
