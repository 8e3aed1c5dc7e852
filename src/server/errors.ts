// The error catalog: every failure a client can see, in OpenAI's shape
// {"error": {"message", "type", "param", "code"}}, with its HTTP status.

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
  ) {
    super(message);
  }

  get body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = 'invalid_value') =>
  new ApiError(400, 'invalid_request_error', message, param, code);

export const unauthorized = () =>
  new ApiError(401, 'authentication_error', 'Incorrect or missing API key: send it as "Authorization: Bearer <key>".', null, 'invalid_api_key');

export const notFound = (message: string, code = 'not_found') => new ApiError(404, 'not_found_error', message, null, code);

export const queueFull = (retryAfter: number) =>
  new ApiError(429, 'rate_limit_exceeded', 'The server is at capacity: too many requests are waiting. Retry later.', null, 'queue_full', retryAfter);

export const draining = () =>
  new ApiError(503, 'service_unavailable', 'The server is shutting down and accepts no new requests.', null, 'draining', 5);

export const engineUnavailable = (detail = 'the engine thread is not running') =>
  new ApiError(503, 'service_unavailable', `The model engine is unavailable (${detail}); the server is restarting.`, null, 'engine_unavailable', 5);

export const timedOut = (ms: number) =>
  new ApiError(504, 'timeout_error', `The request did not finish within the server's ${ms} ms timeout.`, null, 'timeout');

export const serverError = (message: string) => new ApiError(500, 'server_error', message, null, 'internal_error');
