/**
 * The one error the sampling stage throws for bad input. `code` is stable so the server can map it
 * to a 400 with `param` without parsing messages.
 */
export type SamplingErrorCode = 'temperature_above_one' | 'invalid_temperature' | 'invalid_argument';

export class SamplingError extends Error {
  override name = 'SamplingError';
  readonly code: SamplingErrorCode;
  /** The request parameter at fault, when there is one (OpenAI error shape's `param`). */
  readonly param: string | undefined;

  constructor(code: SamplingErrorCode, message: string, param?: string) {
    super(message);
    this.code = code;
    this.param = param;
  }
}
