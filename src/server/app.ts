// The HTTP server: fastify with the OpenAI-compatible routes, WebSocket streaming, health,
// metrics, authentication, CORS and one error shape for everything, the protocol edges included.
import cors from '@fastify/cors';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest, LogController } from 'fastify';
import { registerAuth } from './auth.js';
import { registerCompletions } from './completions.js';
import type { ServerContext } from './context.js';
import { ApiError, bodyTooLarge, invalidRequest, notFound, serverError, unsupportedMediaType } from './errors.js';
import { registerHealth } from './health.js';
import { recordFailure, redactUrl, registerRequestLog } from './logging.js';
import { type Metrics, registerMetricsRoute } from './metrics.js';
import { registerModels } from './models.js';
import { protocolOptions, registerBodyParsing } from './protocol.js';
import { registerStreamRoute } from './stream-ws.js';

function toApiError(err: FastifyError | Error, req: FastifyRequest, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  const code = (err as FastifyError).code;
  const status = (err as FastifyError).statusCode;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return bodyTooLarge(bodyLimit);
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return unsupportedMediaType(req.headers['content-type']);
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return invalidRequest('The request body is empty; send a JSON object.', null, 'invalid_json');
  if (err instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return invalidRequest(`The request body is not valid JSON: ${err.message}`, null, 'invalid_json');
  }
  if (status && status >= 400 && status < 500) return new ApiError(status, 'invalid_request_error', err.message, null, code ?? null);
  return serverError('The server failed while handling this request.');
}

export async function buildApp(ctx: ServerContext, metrics: Metrics): Promise<FastifyInstance> {
  const { config } = ctx;
  const app: FastifyInstance = Fastify({
    logger: {
      level: config.logLevel,
      // A request is logged as its method and URL (no headers, so no Authorization), secrets in the query redacted.
      serializers: { req: (req: { method: string; url: string }) => ({ method: req.method, url: redactUrl(req.url) }) },
    },
    // registerRequestLog writes one line per request instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    requestIdHeader: 'x-request-id',
    ...protocolOptions(config.readTimeoutMs, () => app.log),
  });
  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    const api = toApiError(err, req, config.bodyLimitBytes);
    recordFailure(req, api, err instanceof ApiError || api.status < 500 ? undefined : err);
    if (api.retryAfter !== undefined) void reply.header('retry-after', String(api.retryAfter));
    void reply.code(api.status).headers(api.headers).send(api.body);
  });
  app.setNotFoundHandler((req, reply) => {
    const api = notFound(`No route ${req.method} ${req.url.split('?')[0]}.`, 'route_not_found');
    recordFailure(req, api);
    void reply.code(404).send(api.body);
  });
  registerBodyParsing(app);
  registerRequestLog(app);
  if (config.corsOrigins.length > 0) {
    const any = config.corsOrigins.includes('*');
    await app.register(cors, { origin: any ? true : config.corsOrigins, methods: ['GET', 'POST', 'OPTIONS'], exposedHeaders: ['retry-after', 'x-request-id'] });
  }
  registerAuth(app, config.apiKeys);
  registerHealth(app, ctx);
  registerModels(app, ctx);
  registerCompletions(app, ctx);
  registerMetricsRoute(app, ctx, metrics);
  await registerStreamRoute(app, ctx);
  return app;
}
