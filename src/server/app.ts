// The HTTP server: fastify with the OpenAI-compatible routes, WebSocket streaming, health,
// metrics, authentication, CORS and one error shape for everything.
import cors from '@fastify/cors';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { registerAuth } from './auth.js';
import { registerCompletions } from './completions.js';
import type { ServerContext } from './context.js';
import { ApiError, invalidRequest, notFound, serverError } from './errors.js';
import { registerHealth } from './health.js';
import { type Metrics, registerMetricsRoute } from './metrics.js';
import { registerModels } from './models.js';
import { registerStreamRoute } from './stream-ws.js';

function toApiError(err: FastifyError | Error): ApiError {
  if (err instanceof ApiError) return err;
  const code = (err as FastifyError).code;
  const status = (err as FastifyError).statusCode;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ApiError(413, 'invalid_request_error', 'The request body is too large.', null, 'body_too_large');
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new ApiError(415, 'invalid_request_error', 'Send the request body as application/json.', null, 'unsupported_media_type');
  }
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return invalidRequest('The request body is empty; send a JSON object.', null, 'invalid_json');
  if (err instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return invalidRequest(`The request body is not valid JSON: ${err.message}`, null, 'invalid_json');
  }
  if (status && status >= 400 && status < 500) return new ApiError(status, 'invalid_request_error', err.message, null, code ?? null);
  return serverError('The server failed while handling this request.');
}

export async function buildApp(ctx: ServerContext, metrics: Metrics): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: ctx.config.logLevel, redact: ['req.headers.authorization'] },
    bodyLimit: ctx.config.bodyLimitBytes,
    requestIdHeader: 'x-request-id',
  });
  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    const api = toApiError(err);
    if (api.status >= 500) req.log.error({ err }, 'request failed');
    if (api.retryAfter !== undefined) void reply.header('retry-after', String(api.retryAfter));
    void reply.code(api.status).send(api.body);
  });
  app.setNotFoundHandler((req, reply) => {
    const api = notFound(`No route ${req.method} ${req.url.split('?')[0]}.`, 'route_not_found');
    void reply.code(404).send(api.body);
  });
  if (ctx.config.corsOrigins.length > 0) {
    const any = ctx.config.corsOrigins.includes('*');
    await app.register(cors, { origin: any ? true : ctx.config.corsOrigins, methods: ['GET', 'POST', 'OPTIONS'], exposedHeaders: ['retry-after', 'x-request-id'] });
  }
  registerAuth(app, ctx.config.apiKeys);
  registerHealth(app, ctx);
  registerModels(app, ctx);
  registerCompletions(app, ctx);
  registerMetricsRoute(app, ctx, metrics);
  await registerStreamRoute(app, ctx);
  return app;
}
