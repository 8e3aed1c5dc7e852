// The error catalog: every failure a client can see, in OpenAI's shape
// {"error": {"message", "type", "param", "code"}}, with its HTTP status. That includes what
// Node's HTTP parser and the WebSocket handshake refuse before any route runs (protocol.ts).
import { STATUS_CODES } from 'node:http';

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'rate_limit_exceeded'
  | 'server_error'
  | 'service_unavailable'
  | 'timeout_error';

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** seconds, for 429 and 503 */
    readonly retryAfter?: number,
    /** response headers the status calls for (Upgrade with 426, Accept-Encoding with 415...) */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  get body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  /** The whole HTTP/1.1 response, for a socket no route owns (a parse error, a refused handshake); it closes the connection. */
  rawResponse(): string {
    const body = JSON.stringify(this.body);
    const headers: Record<string, string> = {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(body)),
      Connection: 'close',
      ...this.headers,
    };
    if (this.retryAfter !== undefined) headers['Retry-After'] = String(this.retryAfter);
    const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
    return `HTTP/1.1 ${this.status} ${STATUS_CODES[this.status] ?? ''}\r\n${lines.join('\r\n')}\r\n\r\n${body}`;
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = 'invalid_value') =>
  new ApiError(400, 'invalid_request_error', message, param, code);

export const unauthorized = () =>
  new ApiError(401, 'authentication_error', 'Incorrect or missing API key: send it as "Authorization: Bearer <key>".', null, 'invalid_api_key');

export const notFound = (message: string, code = 'not_found') => new ApiError(404, 'not_found_error', message, null, code);

/**
 * A request naming no served model (an unknown id, or none while several are served). It lists
 * the served ids, so a client can correct itself without another round trip to /v1/models.
 */
export const modelNotFound = (requested: string | null, served: readonly string[]) => {
  const ids = served.map((id) => JSON.stringify(id)).join(', ');
  const message = requested === null
    ? `This server serves several models (${ids}): name one in the "model" field.`
    : `The model ${JSON.stringify(requested)} does not exist; this server serves ${ids}.`;
  // (param null, as OpenAI sends it with model_not_found)
  return new ApiError(404, 'not_found_error', message, null, 'model_not_found');
};

export const queueFull = (retryAfter: number) =>
  new ApiError(429, 'rate_limit_exceeded', 'The server is at capacity: too many requests are waiting. Retry later.', null, 'queue_full', retryAfter);

export const draining = () =>
  new ApiError(503, 'service_unavailable', 'The server is shutting down and accepts no new requests.', null, 'draining', 5);

export const engineUnavailable = (detail = 'the engine thread is not running') =>
  new ApiError(503, 'service_unavailable', `The model engine is unavailable (${detail}); the server is restarting.`, null, 'engine_unavailable', 5);

export const timedOut = (ms: number) =>
  new ApiError(504, 'timeout_error', `The request did not finish within the server's ${ms} ms timeout.`, null, 'timeout');

export const serverError = (message: string) => new ApiError(500, 'server_error', message, null, 'internal_error');

// Before any route: the URL, the HTTP framing, the request's read time and size, the body's
// media type and coding, the WebSocket handshake.

export const invalidUrl = (detail: string) =>
  new ApiError(400, 'invalid_request_error', `The request URL is malformed: ${detail}.`, null, 'invalid_url');

export const malformedHttp = (reason: string) =>
  new ApiError(400, 'invalid_request_error', `The request is not valid HTTP/1.1: ${reason}.`, null, 'malformed_request');

export const headersTooLarge = (limit: number) =>
  new ApiError(431, 'invalid_request_error', `The request headers are too large (${limit} bytes at most in all).`, null, 'headers_too_large');

export const requestReadTimeout = (ms: number) =>
  new ApiError(408, 'invalid_request_error', `The request (headers and body) was not received within ${ms} ms.`, null, 'request_timeout');

export const bodyTooLarge = (limit: number) =>
  new ApiError(413, 'invalid_request_error', `The request body is larger than this server's limit of ${limit} bytes (--body-limit).`, null, 'body_too_large');

export const unsupportedMediaType = (given: string | undefined) =>
  new ApiError(415, 'invalid_request_error',
    `Send the request body as application/json (UTF-8)${given ? `, not ${JSON.stringify(given)}` : '; the request has no Content-Type'}.`,
    null, 'unsupported_media_type');

export const unsupportedCharset = (charset: string) =>
  new ApiError(415, 'invalid_request_error', `The request body must be UTF-8 JSON; charset ${JSON.stringify(charset)} is not accepted.`, null, 'unsupported_charset');

export const unsupportedEncoding = (encoding: string) =>
  new ApiError(415, 'invalid_request_error',
    `Content-Encoding ${JSON.stringify(encoding)} is not accepted: send the JSON body uncompressed.`, null, 'unsupported_content_encoding',
    undefined, { 'Accept-Encoding': 'identity' });

export const invalidUtf8 = () => new ApiError(400, 'invalid_request_error', 'The request body is not valid UTF-8.', null, 'invalid_json');

export const upgradeRequired = (path: string) =>
  new ApiError(426, 'invalid_request_error', `${path} is a WebSocket endpoint: open it with a WebSocket client (an HTTP/1.1 Upgrade: websocket request).`,
    null, 'websocket_upgrade_required', undefined, { Upgrade: 'websocket', Connection: 'Upgrade' });

export const notUpgradable = (path: string, wsPath: string) =>
  new ApiError(400, 'invalid_request_error', `${path} does not accept a WebSocket upgrade; only ${wsPath} does.`, null, 'websocket_not_supported');

export const badHandshake = (reason: string) =>
  new ApiError(400, 'invalid_request_error', `The WebSocket handshake is invalid: ${reason}.`, null, 'invalid_websocket_handshake',
    undefined, /version/i.test(reason) ? { 'Sec-WebSocket-Version': '13, 8' } : {});
