// The HTTP edges no route sees: what Node's parser refuses (malformed framing, Content-Length
// with Transfer-Encoding, headers over the size limit), requests read too slowly, URLs fastify
// cannot decode, and the one rule for request bodies: UTF-8 JSON, uncompressed (415 otherwise).
// Every refusal is a response in OpenAI's error shape, like the routes' own.
import { maxHeaderSize, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyError, FastifyHttpOptions, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  type ApiError,
  headersTooLarge,
  invalidUrl,
  invalidUtf8,
  malformedHttp,
  requestReadTimeout,
  unsupportedCharset,
  unsupportedEncoding,
} from './errors.js';
import { pathOf, redactUrl } from './logging.js';

const answered = new WeakSet<Socket>();

/** Node's code for a request not read within `requestTimeout`/`headersTimeout`. */
const READ_TIMEOUT = 'ERR_HTTP_REQUEST_TIMEOUT';

/** The refusal for an error Node's HTTP server reports on a connection (null: nothing to answer). */
export function clientError(err: Error & { code?: string; reason?: string }, readTimeoutMs: number): ApiError | null {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return null;
  if (err.code === READ_TIMEOUT) return requestReadTimeout(readTimeoutMs);
  if (err.code === 'HPE_HEADER_OVERFLOW') return headersTooLarge(maxHeaderSize);
  // llhttp's reason names the fault ("Content-Length can't be present with Transfer-Encoding").
  return malformedHttp(err.reason ?? err.message);
}

/**
 * Fastify options for the edges. `log` is read when an error happens (the logger exists only
 * once fastify does). A client's mistake is logged at info, without a stack: it is no fault of
 * the server's.
 */
export function protocolOptions(readTimeoutMs: number, log: () => FastifyBaseLogger): FastifyHttpOptions<Server> {
  return {
    // The whole request, headers and body, must arrive within the read timeout; the response may
    // take as long as the generation does (Node stops this clock once the request is read).
    requestTimeout: readTimeoutMs,
    http: {
      headersTimeout: readTimeoutMs,
      requestTimeout: readTimeoutMs,
      // Node checks for expired requests this often (30 s by default, too coarse for the bound).
      connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(readTimeoutMs / 4))),
    },
    clientErrorHandler: (err, socket: Socket) => {
      const api = clientError(err, readTimeoutMs);
      // Once answered, the bytes a client keeps sending only add parse errors: one answer, one line.
      if (!api || socket.destroyed || answered.has(socket)) return;
      answered.add(socket);
      log().info({ status: api.status, code: api.code, reason: err.message, remote: socket.remoteAddress }, 'refused a malformed or slow request');
      if (socket.writable) socket.end(api.rawResponse());
      // A client that does not read its answer must not hold the socket.
      setTimeout(() => socket.destroy(), 1000).unref();
    },
    frameworkErrors,
  };
}

/** Errors fastify raises before routing: a URL it cannot decode (`/v1/%ZZ`), a route constraint that failed. */
function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  // (the path only: a query may hold a key)
  const api = err.code === 'FST_ERR_BAD_URL' ? invalidUrl(`${JSON.stringify(pathOf(req.url))} is not valid percent-encoding`) : malformedHttp(err.message);
  // (no route, so no onResponse hook either: its one log line is written here)
  req.log.info({ method: req.method, url: redactUrl(req.url), status: api.status, code: api.code }, 'request');
  void reply.code(api.status).headers(api.headers).send(api.body);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The charset parameter of a Content-Type, lower-cased and unquoted; undefined when absent. */
export function charsetOf(contentType: string | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*("?)([^";\s]*)\1/i.exec(contentType ?? '');
  return m ? m[2]!.toLowerCase() : undefined;
}

/**
 * Bodies are JSON: application/json, UTF-8 (the charset may be absent, utf-8 or utf8), with no
 * content coding. Anything else is a 415 that says what to send: text/plain used to be parsed as
 * a string and refused later as "not an object"; other charsets were decoded as UTF-8 silently;
 * gzip arrived as invalid JSON. Compressed bodies are refused rather than inflated: OpenAI's
 * clients send none, and inflating would need its own bound against decompression bombs.
 */
export function registerBodyParsing(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const encoding = req.headers['content-encoding']?.trim();
    if (encoding && encoding.toLowerCase() !== 'identity') return done(unsupportedEncoding(encoding), undefined);
    const charset = charsetOf(req.headers['content-type']);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') return done(unsupportedCharset(charset), undefined);
    let text: string;
    try {
      text = UTF8.decode(body as Buffer);
    } catch {
      return done(invalidUtf8(), undefined);
    }
    parseJson(req, text, done);
  });
}
