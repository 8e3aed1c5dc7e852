// WebSocket streaming (docs/websocket.md): `GET /v1/stream`. A client sends JSON messages
// ({"type":"generate"|"cancel"|"ping", "id", ...}); each generation streams one `chunk` message
// per decode step and ends with `done` or `error`. Several generations share one socket; a bad
// message is answered with an `error` and disturbs nothing else; closing the socket cancels
// everything it started. Requests are validated exactly as POST /v1/completions validates them.
import type { Socket } from 'node:net';
import websocket from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import type { DoneEvent } from '../engine/types.js';
import type { ServedModel, ServerContext } from './context.js';
import { ApiError, badHandshake, invalidRequest, notUpgradable, serverError, upgradeRequired } from './errors.js';
import { admit, type Generation, startGeneration } from './generation.js';
import { logCompletion, redactUrl } from './logging.js';
import { engineRequests, parseCompletion, routeModel } from './request.js';

export const STREAM_PATH = '/v1/stream';
export const MAX_CLIENT_ID_LENGTH = 256;

export interface StreamRouteOptions {
  /** server pings this often and terminates a socket that did not answer the previous ping; 0: off */
  pingIntervalMs?: number;
  /** largest message a client may send (bytes; default: the HTTP body limit); beyond it the socket is closed with 1009 */
  maxPayload?: number;
  /** a client that lets this much unread output pile up is disconnected (its generations are cancelled) */
  maxBufferedBytes?: number;
}

export const STREAM_DEFAULTS: Required<StreamRouteOptions> = {
  pingIntervalMs: 30_000,
  maxPayload: 1 << 20,
  maxBufferedBytes: 16 << 20,
};

// Messages the server sends.
export interface ChunkMessage {
  type: 'chunk';
  id: string;
  index: number;
  token_ids: number[];
  text: string;
  /** with `confidence: true` (CALM): the chunk's frequency in its sample pool, its standard error, the pool size */
  confidence?: { frequency: number; stderr: number; pool: number };
}

export interface DoneMessage {
  type: 'done';
  id: string;
  index: number;
  finish_reason: DoneEvent['finishReason'];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  seed: number;
}

export interface ErrorMessage {
  type: 'error';
  id: string | null;
  /** the choice that failed; absent when the whole message was refused */
  index?: number;
  error: { message: string; type: string; param: string | null; code: string | null };
  /** seconds, when the server is at capacity (429) or draining (503) */
  retry_after?: number;
}

export interface PongMessage {
  type: 'pong';
  id: string | null;
}

export type ServerMessage = ChunkMessage | DoneMessage | ErrorMessage | PongMessage;

/** One client generation: its choices (n x prompts) and how many have not ended yet. */
interface Live {
  generations: Generation[];
  open: number;
}

function text(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

function errorMessage(id: string | null, err: ApiError, index?: number): ErrorMessage {
  return {
    type: 'error',
    id,
    ...(index !== undefined ? { index } : {}),
    error: err.body.error,
    ...(err.retryAfter !== undefined ? { retry_after: err.retryAfter } : {}),
  };
}

/** Fields of a generate message that belong to the protocol, not to the completion request. */
const PROTOCOL_FIELDS = ['type', 'id', 'stream', 'stream_options'];

/**
 * Registers @fastify/websocket and `GET /v1/stream`. Call it on the root instance before
 * `listen`/`ready`; global onRequest hooks (authentication) run before the upgrade.
 */
export async function registerStreamRoute(app: FastifyInstance, ctx: ServerContext, options: StreamRouteOptions = {}): Promise<void> {
  const opts = { ...STREAM_DEFAULTS, maxPayload: ctx.config.bodyLimitBytes || STREAM_DEFAULTS.maxPayload, ...options };
  await app.register(websocket, {
    options: { maxPayload: opts.maxPayload },
    // ws reports a client's protocol violations (a frame over maxPayload, invalid UTF-8) as
    // errors with a WS_ERR_ code after it has started the close handshake with the matching
    // status (1009, 1007): the client's mistake, logged without a stack, and the close is left
    // to finish. Anything else is unexpected.
    errorHandler: (err, socket, request) => {
      const code = (err as Error & { code?: string }).code;
      if (code?.startsWith('WS_ERR_')) {
        request.log.info({ code, reason: err.message }, 'websocket client broke the protocol; closing');
        return;
      }
      request.log.error({ err }, 'websocket failed');
      socket.terminate();
    },
  });
  // ws refuses a bad handshake (a missing key, an unknown version...) with a text/html answer of
  // its own unless someone listens here: answer in the API's error shape instead.
  app.websocketServer.on('wsClientError', (err: Error, socket: Socket, req: { url?: string }) => {
    const api = badHandshake(err.message.charAt(0).toLowerCase() + err.message.slice(1));
    app.log.info({ url: redactUrl(req.url ?? ''), code: api.code, reason: err.message }, 'refused a websocket handshake');
    if (socket.writable) socket.end(api.rawResponse());
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  // Only this route upgrades: elsewhere @fastify/websocket would accept the socket and drop it.
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (request.ws && route !== undefined && route !== STREAM_PATH) throw notUpgradable(route, STREAM_PATH);
  });
  // An upgrade refused with an HTTP response (401 from the auth hook, 429, 404...) must close its
  // socket: Node detached it from the HTTP parser, so nothing else will. @fastify/websocket does
  // it only when its own onRequest hook ran, which a hook registered before it (authentication)
  // prevents by failing first; the socket then lingered and app.close() waited for it forever.
  app.addHook('onResponse', (request, _reply, done) => {
    const socket = request.raw.socket as Socket | null;
    // (IncomingMessage.upgrade: true for a request Node handed to the 'upgrade' event; untyped)
    const upgrade = (request.raw as { upgrade?: boolean }).upgrade === true;
    if (upgrade && socket && !socket.destroyed) socket.destroy();
    done();
  });

  // Keep-alive: one timer for all sockets of this route, running while there are any.
  const sockets = new Map<WebSocket, { alive: boolean }>();
  let pinger: NodeJS.Timeout | undefined;
  const pingAll = () => {
    for (const [socket, state] of sockets) {
      if (!state.alive) {
        socket.terminate();
        continue;
      }
      state.alive = false;
      if (socket.readyState === socket.OPEN) socket.ping();
    }
  };
  const track = (socket: WebSocket) => {
    const state = { alive: true };
    sockets.set(socket, state);
    socket.on('pong', () => (state.alive = true));
    if (!pinger && opts.pingIntervalMs > 0) {
      pinger = setInterval(pingAll, opts.pingIntervalMs);
      pinger.unref();
    }
  };
  const untrack = (socket: WebSocket) => {
    sockets.delete(socket);
    if (sockets.size === 0 && pinger) {
      clearInterval(pinger);
      pinger = undefined;
    }
  };
  app.addHook('onClose', (_instance, done) => {
    if (pinger) clearInterval(pinger);
    pinger = undefined;
    done();
  });

  let socketSeq = 0;

  const onSocket = (socket: WebSocket, request: FastifyRequest): void => {
    // Engine ids are unique server-wide: socket number, generation number, then the client's id.
    const prefix = `ws-${++socketSeq}`;
    let generationSeq = 0;
    const live = new Map<string, Live>();
    track(socket);

    const send = (msg: ServerMessage) => {
      if (socket.readyState !== socket.OPEN) return;
      socket.send(JSON.stringify(msg));
      if (socket.bufferedAmount > opts.maxBufferedBytes) {
        request.log.warn({ buffered: socket.bufferedAmount }, 'websocket client does not read its stream; disconnecting');
        socket.terminate();
      }
    };

    const generate = (id: string, msg: Record<string, unknown>) => {
      if (live.has(id)) {
        throw invalidRequest(`a generation with id ${JSON.stringify(id)} is still running on this socket; ids must be unique among running generations`, 'id', 'duplicate_id');
      }
      const body: Record<string, unknown> = { ...msg };
      for (const key of PROTOCOL_FIELDS) delete body[key];
      let model: ServedModel | undefined;
      let requests;
      let params;
      try {
        model = routeModel(body, ctx.models);
        admit(model.generation, 1);
        params = parseCompletion(body, model.id, ctx.config.maxN, true);
        if (params.echo) throw invalidRequest('echo is not supported on the WebSocket stream: the client has its prompt', 'echo', 'unsupported_parameter');
        requests = engineRequests(params, `${prefix}.${++generationSeq}-${id}`, model.engine.input, model.generation.capacity);
        admit(model.generation, requests.length);
      } catch (err) {
        // (a message that names no served model is no model's refusal)
        model?.metrics.refused();
        throw err;
      }
      const served = model;
      const engineId = requests[0]!.id.replace(/-0$/, '');
      const results: (DoneEvent | ApiError)[] = [];
      const promptTokens = (n: number) => results.reduce((sum, r, i) => (i % n === 0 && !(r instanceof ApiError) ? sum + r.usage.promptTokens : sum), 0);
      const entry: Live = { generations: [], open: requests.length };
      live.set(id, entry);
      requests.forEach((req, index) => {
        const g = startGeneration(served.generation, req, (e) => {
          if (e.text.length === 0 && e.tokenIds.length === 0) return;
          send({ type: 'chunk', id, index, token_ids: e.tokenIds, text: e.text, ...(e.confidence ? { confidence: e.confidence } : {}) });
        });
        entry.generations.push(g);
        void g.finished.then((result) => {
          if (result instanceof ApiError) {
            send(errorMessage(id, result, index));
          } else {
            const { promptTokens, completionTokens } = result.usage;
            send({
              type: 'done',
              id,
              index,
              finish_reason: result.finishReason,
              usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
              seed: result.seed,
            });
          }
          results[index] = result;
          if (--entry.open > 0) return;
          if (live.get(id) === entry) live.delete(id);
          logCompletion(request.log, { id: engineId, model: served.id, transport: 'websocket', results, promptTokens: promptTokens(params.n) });
        });
      });
    };

    const handle = (raw: string) => {
      let msg: unknown;
      try {
        msg = JSON.parse(raw);
      } catch (err) {
        throw invalidRequest(`the message is not valid JSON: ${(err as Error).message}`, null, 'invalid_json');
      }
      if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw invalidRequest('a message must be a JSON object', null, 'invalid_type');
      const m = msg as Record<string, unknown>;
      const rawId = m.id;
      const id = typeof rawId === 'string' && rawId.length > 0 && rawId.length <= MAX_CLIENT_ID_LENGTH ? rawId : null;
      const fail = (err: ApiError) => send(errorMessage(id, err));
      try {
        if (m.type === 'ping') {
          send({ type: 'pong', id });
          return;
        }
        if (m.type !== 'generate' && m.type !== 'cancel') {
          throw invalidRequest(`unknown message type ${JSON.stringify(m.type ?? null)}: expected "generate", "cancel" or "ping"`, 'type', 'unknown_message_type');
        }
        if (id === null) {
          throw rawId === undefined || rawId === null
            ? invalidRequest(`id is required in a ${m.type} message`, 'id', 'missing_required_parameter')
            : invalidRequest(`id must be a non-empty string of at most ${MAX_CLIENT_ID_LENGTH} characters`, 'id', 'invalid_type');
        }
        if (m.type === 'cancel') {
          // An id that is not running (unknown, or just finished) is ignored: the race is normal.
          for (const g of live.get(id)?.generations ?? []) g.cancel();
          return;
        }
        generate(id, m);
      } catch (err) {
        if (err instanceof ApiError) fail(err);
        else {
          request.log.error({ err }, 'websocket message failed');
          fail(serverError('The server failed while handling this message.'));
        }
      }
    };

    socket.on('message', (data) => {
      try {
        handle(text(data));
      } catch (err) {
        send(errorMessage(null, err instanceof ApiError ? err : serverError('The server failed while handling this message.')));
      }
    });

    socket.on('close', () => {
      untrack(socket);
      // Cancelled generations leave the engine's batch (and free their cache row) at its next step.
      let cancelled = 0;
      for (const entry of live.values()) {
        for (const g of entry.generations) {
          g.cancel();
          cancelled++;
        }
      }
      live.clear();
      request.log.debug({ cancelled }, 'websocket closed');
    });
  };

  app.route({
    method: 'GET',
    url: STREAM_PATH,
    // A plain GET (no Upgrade): say what this endpoint is, in the API's error shape.
    handler: async () => {
      throw upgradeRequired(STREAM_PATH);
    },
    wsHandler: onSocket,
  });
}
